"""nemo_model against the Entity Store simulator: check mode, create, rerun, patch (in-process), and the bad
input case through Ansible (`ansible localhost -m`)."""

import pytest

from tests.harness import run_module
from tests.sim.entity_store.simulator import start


@pytest.fixture
def store():
    srv = start()
    yield srv
    srv.shutdown()


def run(args, check=False, via=None):
    return run_module("nemo_model", args, check=check, diff=True, via=via)


def test_register_check_mode_rerun_and_patch(store):
    args = {
        "entity_store_url": store.url,
        "namespace": "meta",
        "name": "llama-3.2-1b-instruct",
        "nim_service": "llama-3-2-1b-instruct",
        "nim_namespace": "nim",
        "spec": {"num_parameters": 1000000000, "context_size": 8192, "num_virtual_tokens": 0, "is_chat": True},
    }
    dry = run(args, check=True)
    assert dry["changed"] is True and store.state.models == {} and store.state.namespaces == {}
    first = run(args)
    assert first["changed"] is True and first["namespace_created"] is True
    held = store.state.models[("meta", "llama-3.2-1b-instruct")]
    assert held["api_endpoint"] == {
        "url": "http://llama-3-2-1b-instruct.nim.svc.cluster.local:8000/v1",
        "model_id": "meta/llama-3.2-1b-instruct",
        "format": "nim",
    }
    assert run(args)["changed"] is False
    moved = run(dict(args, nim_namespace="nim2"))
    assert moved["changed"] is True
    assert moved["diff"]["before"]["api_endpoint"]["url"].endswith(".nim.svc.cluster.local:8000/v1")
    assert held["api_endpoint"]["url"] == "http://llama-3-2-1b-instruct.nim2.svc.cluster.local:8000/v1"
    assert store.stats["POST /v1/models"] == 1


def test_bad_input_changes_nothing(store):
    bad = run(
        {
            "entity_store_url": store.url,
            "namespace": "meta",
            "name": "m",
            "nim_service": "x",
            "nim_namespace": "nim",
            "spec": {"context_size": 1},
        },
        via="ansible",
    )
    assert bad["failed"] is True and "spec is missing num_parameters" in bad["msg"]
    noscheme = run({"entity_store_url": "store:8000", "namespace": "meta", "name": "m", "api_endpoint_url": "http://a"})
    assert "entity_store_url='store:8000' must start with http://" in noscheme["msg"]
    assert store.state.namespaces == {} and store.stats.get("total", 0) == 0
