"""Container logs on the local cluster: kwok plays kubelet and serves a container's log from a file a kwok `Logs`
object names (tests/sim/cluster.py enables the CRD). The API server's pods/log subresource reads it from kwok's
kubelet endpoint like from a real kubelet, so what a client reads went through the real kube-apiserver.

The file is in the CRI log format a kubelet reads (`<RFC 3339 time> <stream> F <line>`); rewriting it changes
what the next read returns, as a container writing on does.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client

GROUP, VERSION, PLURAL = "kwok.x-k8s.io", "v1alpha1", "logs"


def write_log(path: Path, lines: list[str], stream: str = "stdout") -> Path:
    """The container's whole log so far, one CRI entry a line."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path.write_text("".join(f"{stamp} {stream} F {line}\n" for line in lines))
    return path


def serve_logs(
    api: client.ApiClient, namespace: str, pod: str, logs: dict[str, list[str]], directory: Path, timeout: float = 60
) -> dict[str, Path]:
    """Make `logs` ({container: lines}) the containers' logs of Pod namespace/pod: one file a container under
    `directory`, the Pod's Logs object naming them (created or replaced), then wait until the API server serves
    the last line of each (kwok picks Logs objects up by watch; the Pod must be bound to a node)."""
    files = {c: write_log(directory / f"{namespace}_{pod}_{c}.log", lines) for c, lines in logs.items()}
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Logs",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"logs": [{"containers": [c], "logsFile": str(path)} for c, path in files.items()]},
    }
    custom = client.CustomObjectsApi(api)
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        body["metadata"]["resourceVersion"] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, pod
        )["metadata"]["resourceVersion"]
        custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, pod, body)
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    for container, lines in logs.items():
        while True:
            try:
                text = core.read_namespaced_pod_log(pod, namespace, container=container)
                if not lines or text.splitlines()[-1:] == lines[-1:]:
                    break
                last = f"the log ends {text.splitlines()[-1:]}"
            except client.ApiException as exc:
                last = f"{exc.status} {exc.reason}: {exc.body}"
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"kwok did not serve the log of {namespace}/{pod} {container} in {timeout}s: {last}"
                )
            time.sleep(0.5)
    return files
