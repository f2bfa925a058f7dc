"""nemo_client against the Entity Store simulator (loopback)."""

import json
import urllib.request

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_client import (
    ensure_model,
    ensure_namespace,
    nim_api_endpoint,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient, RestError
from tests.sim.entity_store.simulator import start

FIELDS = {
    "base_model": "meta/llama-3.2-1b-instruct",
    "spec": {"num_parameters": 1000000000, "context_size": 8192, "num_virtual_tokens": 0, "is_chat": True},
    "api_endpoint": {
        "url": nim_api_endpoint("llama-3-2-1b", "nim"),
        "model_id": "meta/llama-3.2-1b-instruct",
        "format": "nim",
    },
}


@pytest.fixture
def store():
    srv = start()
    yield srv, RestClient(srv.url, retries=1, backoff_base=0.01)
    srv.shutdown()


def test_endpoint_url():
    assert nim_api_endpoint("llama", "nim") == "http://llama.nim.svc.cluster.local:8000/v1"


def test_broken_state_then_register_then_idempotent(store):
    srv, client = store
    with pytest.raises(RestError) as err:  # the field report: evaluator gets 404 for the base model
        client.request("GET", "/v1/models/meta/llama-3.2-1b-instruct")
    assert err.value.status == 404
    assert ensure_namespace(client, "meta") is True
    changed, before, after = ensure_model(client, "meta", "llama-3.2-1b-instruct", FIELDS)
    assert changed is True and before == {}
    with urllib.request.urlopen(srv.url + "/v1/models/meta/llama-3.2-1b-instruct") as resp:
        assert resp.headers["X-Simulator"].startswith("nemo-entity-store (simulator")
        assert json.load(resp)["api_endpoint"]["url"] == "http://llama-3-2-1b.nim.svc.cluster.local:8000/v1"
    assert ensure_namespace(client, "meta") is False
    assert ensure_model(client, "meta", "llama-3.2-1b-instruct", FIELDS)[0] is False
    assert srv.stats.get("POST /v1/models") == 1


def test_patch_only_differences_and_check_mode(store):
    srv, client = store
    ensure_namespace(client, "meta")
    ensure_model(client, "meta", "m", FIELDS)
    moved = dict(FIELDS, api_endpoint=dict(FIELDS["api_endpoint"], url="http://other.nim.svc.cluster.local:8000/v1"))
    changed, before, after = ensure_model(client, "meta", "m", moved, check_mode=True)
    assert changed is True and after["api_endpoint"]["url"].startswith("http://other.")
    assert "PATCH /v1/models/meta/m" not in srv.stats
    changed, before, after = ensure_model(client, "meta", "m", moved)
    assert changed is True and before["api_endpoint"]["url"] == FIELDS["api_endpoint"]["url"]
    assert srv.state.models[("meta", "m")]["api_endpoint"]["url"].startswith("http://other.")
    assert ensure_model(client, "meta", "m", moved)[0] is False


def test_check_mode_creates_nothing(store):
    srv, client = store
    assert ensure_namespace(client, "meta", check_mode=True) is True
    assert ensure_model(client, "meta", "m", FIELDS, check_mode=True)[0] is True
    assert srv.state.namespaces == {} and srv.state.models == {}


def test_missing_namespace_is_an_error(store):
    _server, client = store
    with pytest.raises(RestError) as err:
        ensure_model(client, "nope", "m", FIELDS)
    assert err.value.status == 422
