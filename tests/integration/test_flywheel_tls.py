"""The flywheel modules over HTTPS with a private CA: verified by default, clear failure without the CA."""

from __future__ import annotations

import json
import ssl
import urllib.request

import pytest

from tests.integration.flywheel_sim import run_module
from tests.integration.tls import make_ca_and_server
from tests.sim.flywheel_api.simulator import start


@pytest.fixture
def tls_sim(tmp_path):
    paths = make_ca_and_server(tmp_path)
    server = start(unit_seconds=0.1, certfile=str(paths["cert"]), keyfile=str(paths["key"]))
    yield server, paths
    server.shutdown()


def test_https_with_the_private_ca(tls_sim):
    server, paths = tls_sim
    assert server.url.startswith("https://127.0.0.1:")
    result = run_module(
        "flywheel_job",
        {
            "api_url": server.url,
            "ca_path": str(paths["ca"]),
            "workload_id": "w",
            "client_id": "tls",
            "wait": True,
            "wait_sleep": 1,
        },
    )
    assert not result.get("failed"), result.get("msg")
    assert result["job"]["status"] == "completed"


def test_https_without_the_ca_fails_clearly_and_sends_no_job(tls_sim, tmp_path):
    server, paths = tls_sim
    result = run_module("flywheel_job", {"api_url": server.url, "workload_id": "w", "client_id": "tls"})
    assert result["failed"]
    assert "TLS verification" in result["msg"] and "ca_path" in result["msg"]
    assert "Traceback" not in result["msg"]
    # the CA option can come from the environment too (AWX credential injection)
    via_env = run_module("flywheel_job_info", {"api_url": server.url}, env={"FLYWHEEL_API_CA_PATH": str(paths["ca"])})
    assert not via_env.get("failed") and via_env["jobs"] == []
    assert control_jobs(server, paths) == []


def control_jobs(server, paths):
    """The simulator's own job record, read over TLS with the private CA."""
    ctx = ssl.create_default_context(cafile=str(paths["ca"]))
    with urllib.request.urlopen(server.url + "/_sim/jobs", context=ctx, timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())["jobs"]
