"""Real helm (and the helm-diff plugin) against the local cluster."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from kubernetes import client

pytestmark = pytest.mark.cluster

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: probe\nversion: 0.1.0\n",
    "values.yaml": "message: hello\n",
    "templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  message: {{ .Values.message | quote }}\n"
    ),
}


def helm(env: dict, *args: str) -> str:
    proc = subprocess.run(["helm", *args], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_helm_release_and_diff(vanilla, vanilla_kubeconfig, tool_env, namespace, tmp_path: Path):
    for rel, text in CHART.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    env = {**tool_env, "KUBECONFIG": vanilla_kubeconfig}
    release = f"probe-{uuid.uuid4().hex[:5]}"
    helm(env, "install", release, str(tmp_path), "-n", namespace, "--wait", "--timeout", "60s")

    cm = client.CoreV1Api(vanilla).read_namespaced_config_map(f"{release}-cm", namespace)
    assert cm.data == {"message": "hello"}
    # the release record is a real helm Secret (gzip+base64 JSON inside the Secret's base64)
    secret = client.CoreV1Api(vanilla).read_namespaced_secret(f"sh.helm.release.v1.{release}.v1", namespace)
    record = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(secret.data["release"]))))
    assert record["info"]["status"] == "deployed"

    assert "diff" in helm(env, "plugin", "list")
    same = helm(env, "diff", "upgrade", release, str(tmp_path), "-n", namespace, "--detailed-exitcode=false")
    assert same.strip() == ""
    changed = helm(env, "diff", "upgrade", release, str(tmp_path), "-n", namespace, "--set", "message=bye")
    assert '-   message: "hello"' in changed and '+   message: "bye"' in changed
