"""A real validating admission webhook that holds one namespace's Deployment creations until released.

Used to stop a client (helm) in the middle of its work at a known point: the API server calls the
webhook, the webhook waits, and the test acts (kills the client) while the request is held. Requests
from other namespaces are allowed at once (they are how the test learns the API server is calling it).
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kubernetes import client

from tests.integration.tls import make_ca_and_server

PROBE_NAMESPACE = "default"


class AdmissionGate:
    def __init__(self, api, namespace: str, workdir: Path, hold_seconds: float = 20):
        self.api, self.namespace, self.hold_seconds = api, namespace, hold_seconds
        self.held = threading.Event()  # a request of `namespace` is being held
        self.opened = threading.Event()  # from now on every request is allowed at once
        self.probed = threading.Event()
        self.name = f"dfw-test-gate-{namespace}"
        certs = make_ca_and_server(workdir)
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = review["request"]
                if request.get("namespace") == gate.namespace:
                    gate.held.set()
                    gate.opened.wait(gate.hold_seconds)
                else:
                    gate.probed.set()
                body = json.dumps(
                    {
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": {"uid": request["uid"], "allowed": True},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs["cert"], certs["key"])
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._register(base64.b64encode(certs["ca"].read_bytes()).decode())
        self._wait_until_called()

    def _register(self, ca_bundle: str) -> None:
        webhook = {
            "name": "gate.dfw-test.example",
            "clientConfig": {"url": f"https://127.0.0.1:{self.server.server_port}/validate", "caBundle": ca_bundle},
            "rules": [
                {"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}
            ],
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "In",
                        "values": [self.namespace, PROBE_NAMESPACE],
                    }
                ]
            },
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 30,
        }
        client.AdmissionregistrationV1Api(self.api).create_validating_webhook_configuration(
            {"metadata": {"name": self.name}, "webhooks": [webhook]}
        )

    def _wait_until_called(self, timeout: float = 30) -> None:
        """The API server picks up a new webhook configuration asynchronously: dry-run creations in
        the probe namespace until the webhook sees one."""
        apps = client.AppsV1Api(self.api)
        probe = {
            "metadata": {"name": "dfw-gate-probe"},
            "spec": {
                "selector": {"matchLabels": {"app": "probe"}},
                "template": {
                    "metadata": {"labels": {"app": "probe"}},
                    "spec": {"containers": [{"name": "c", "image": "registry.invalid/probe"}]},
                },
            },
        }
        deadline = time.monotonic() + timeout
        while not self.probed.is_set():
            assert time.monotonic() < deadline, f"the API server never called the admission gate in {timeout}s"
            apps.create_namespaced_deployment(PROBE_NAMESPACE, probe, dry_run="All")
            time.sleep(0.1)

    def close(self) -> None:
        """Let every request through and remove the webhook (again: a no-op)."""
        self.opened.set()
        try:
            client.AdmissionregistrationV1Api(self.api).delete_validating_webhook_configuration(self.name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        self.server.shutdown()
        self.server.server_close()
