"""The log modules' EXAMPLES run as written, and their auth/TLS options work, against the REAL
search engine. Credentials and the private CA are checked by a small HTTPS gateway on loopback in
front of the engine (like the TLS-terminating, authenticating proxy or the security layer of a
production Elasticsearch): it answers 401 without the right Basic or ApiKey header and forwards
everything else to the engine unchanged."""

from __future__ import annotations

import ast
import base64
import json
import ssl
import threading
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.harness import ansible_doc, run_playbook
from tests.integration.flywheel_sim import run_module
from tests.integration.tls import make_ca_and_server
from tests.sim.sample_logs import write

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["flywheel_logs", "flywheel_logs_info"]
PASSWORD = "Elastic-Pw-7c1e"  # noqa: S105 - test credential, checked to never appear in output
API_KEY = base64.b64encode(b"key-id:Key-Secret-91d").decode()


class Gateway(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def relay(self):
        allowed = ("Basic " + base64.b64encode(f"elastic:{PASSWORD}".encode()).decode(), "ApiKey " + API_KEY)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.server.seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") not in allowed:
            status, raw = (
                401,
                json.dumps(
                    {"error": {"type": "security_exception", "reason": "missing authentication credentials"}}
                ).encode(),
            )
        else:
            req = urllib.request.Request(self.server.upstream + self.path, data=body, method=self.command)
            if self.headers.get("Content-Type"):
                req.add_header("Content-Type", self.headers["Content-Type"])
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - loopback engine
                    status, raw = resp.status, resp.read()
            except urllib.error.HTTPError as err:
                status, raw = err.code, err.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = relay  # noqa: N815


@pytest.fixture(scope="module")
def gateway(search_engine, tmp_path_factory):
    paths = make_ca_and_server(tmp_path_factory.mktemp("tls"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    server.upstream, server.seen = search_engine.url, []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths["cert"], paths["key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"https://127.0.0.1:{server.server_address[1]}"
    server.ca = str(paths["ca"])
    yield server
    server.shutdown()


def examples(module: str) -> list[dict]:
    tree = ast.parse((ROOT / "plugins" / "modules" / f"{module}.py").read_text())
    text = next(n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "EXAMPLES")
    return yaml.safe_load(text)


def test_examples_run_as_written(tmp_path, search_engine, gateway):
    index = f"flywheel-ex-{uuid.uuid4().hex[:8]}"
    data = write(tmp_path / "aiva_primary_assistant_dataset.jsonl", 1000)
    tasks = [t for m in MODULES for t in examples(m)]
    assert len(tasks) >= 5
    text = (
        yaml.safe_dump(tasks)
        .replace("/data/aiva_primary_assistant_dataset.jsonl", str(data))
        .replace("https://elasticsearch.example.com:9200", gateway.url)
        .replace("/etc/pki/flywheel-ca.pem", gateway.ca)
    )
    playbook = tmp_path / "examples.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": {"flywheel_es_url": search_engine.url, "vault_elastic_password": PASSWORD},
                    "tasks": yaml.safe_load(text),
                }
            ]
        )
    )
    # the index comes from ES_COLLECTION_NAME, as the flywheel reads it
    proc = run_playbook(playbook, verbosity=1, env={"ES_COLLECTION_NAME": index})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout
    assert PASSWORD not in proc.stdout + proc.stderr
    info = run_module("flywheel_logs_info", {"es_url": search_engine.url, "index": index})
    # loaded 300/500/1000, one inline record for dev (through the gateway), then aiva-1 removed
    assert {(c["client_id"], c["records"]) for c in info["counts"]} == {("aiva-2", 500), ("aiva-3", 1000), ("dev", 1)}
    assert "aiva-2: 500 records" in proc.stdout


def test_basic_auth_api_key_and_ca_bundle(search_engine, gateway):
    index = f"flywheel-auth-{uuid.uuid4().hex[:8]}"
    base = {"es_url": gateway.url, "index": index}
    no_ca = run_module("flywheel_logs_info", {**base, "es_username": "elastic", "es_password": PASSWORD})
    assert no_ca.get("failed") is True and "TLS verification of" in no_ca["msg"] and "ca_path" in no_ca["msg"]
    no_auth = run_module("flywheel_logs_info", {**base, "ca_path": gateway.ca})
    assert no_auth.get("failed") is True
    assert "returned HTTP 401" in no_auth["msg"] and "set es_username/es_password or es_api_key" in no_auth["msg"]
    wrong = run_module(
        "flywheel_logs_info", {**base, "ca_path": gateway.ca, "es_username": "elastic", "es_password": "nope-123"}
    )
    assert wrong.get("failed") is True and "nope-123" not in json.dumps(wrong)
    with_env = run_module(
        "flywheel_logs",
        {"records": [json.loads(Path(write(Path(gateway.ca).parent / "one.jsonl", 1)).read_text())], "index": index},
        env={
            "FLYWHEEL_ES_URL": gateway.url,
            "FLYWHEEL_ES_USERNAME": "elastic",
            "FLYWHEEL_ES_PASSWORD": PASSWORD,
            "FLYWHEEL_ES_CA_PATH": gateway.ca,
        },
    )
    assert with_env.get("failed") is not True, with_env
    assert with_env["created"] == 1 and PASSWORD not in json.dumps(with_env)
    by_key = run_module("flywheel_logs_info", {**base, "ca_path": gateway.ca, "es_api_key": API_KEY})
    assert by_key["count"] == 1
    assert gateway.seen[-1] == "ApiKey " + API_KEY


def test_ansible_doc_renders_every_option():
    for module in MODULES:
        doc = ansible_doc(f"dataflywheel.blueprint.{module}")[f"dataflywheel.blueprint.{module}"]
        options = doc["doc"]["options"]
        for name in ("es_url", "es_username", "es_password", "es_api_key", "index", "ca_path", "validate_certs"):
            assert options[name]["description"], f"{module}.{name}"
        assert doc["examples"].strip() and doc["return"]
