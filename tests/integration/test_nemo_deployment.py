"""nemo_deployment and nim_smoke_test through Ansible against the NeMo platform SIMULATOR
(Deployment Management and the NIM proxy): create, poll until ready, rerun, config change,
failure with the service's description, removal; serving waits and failures."""

from __future__ import annotations

import pytest

from tests.integration.flywheel_sim import run_module
from tests.integration.nemo_sim import call, register_model, stats
from tests.sim.nemo_platform.simulator import start

ARGS = {
    "name": "llama-1b",
    "namespace": "dfwbp",
    "model": "meta/llama-3.2-1b-instruct",
    "image_tag": "1.8.5",
    "additional_envs": {"NIM_PEFT_SOURCE": "http://nemo-entity-store:8000"},
    "wait_sleep": 1,
}
ADAPTER = "dfwbp/customized-meta-llama-3.2-1b-instruct@cust-KpXGmM8hN2g4kg33tjJfxK"


@pytest.fixture
def nemo():
    server = start(unit_seconds=0.3)
    yield server
    server.shutdown()


def deploy(nemo, check=False, **args):
    return run_module("nemo_deployment", {"nemo_base_url": nemo.url, **ARGS, **args}, check=check)


def test_create_wait_ready_rerun_change_and_remove(nemo):
    assert deploy(nemo, check=True)["changed"] is True
    assert stats(nemo).get("POST /v1/deployment/model-deployments", 0) == 0
    first = deploy(nemo)
    assert first["changed"] is True and first["operation"] == "created"
    assert first["deployment"]["status_details"]["status"] == "ready"
    assert first["deployment"]["config"]["nim_deployment"]["image_name"] == "nvcr.io/nim/meta/llama-3.2-1b-instruct"
    assert stats(nemo)["GET /v1/deployment/model-deployments/dfwbp/llama-1b"] >= 3  # polled: created, pending, ready
    again = deploy(nemo)
    assert again["changed"] is False and again["operation"] == "none"
    moved = deploy(nemo, image_tag="1.8.6")
    assert moved["changed"] is True and moved["operation"] == "recreated"
    assert moved["diff"]["before"]["nim_deployment"]["image_tag"] == "1.8.5"
    gone = deploy(nemo, state="absent")
    assert gone["changed"] is True and call(f"{nemo.url}/v1/deployment/model-deployments/dfwbp/llama-1b")[0] == 404
    assert deploy(nemo, state="absent")["changed"] is False


def test_failed_deployment_reports_the_description(nemo):
    call(nemo.url + "/_sim/config", "POST", {"deployment": "failed"})
    result = deploy(nemo)
    assert result["failed"] and "is failed: Back-off pulling image: ImagePullBackOff" in result["msg"]
    assert result["deployment"]["status_details"]["status"] == "failed"


def test_never_ready_times_out_with_the_status(nemo):
    call(nemo.url + "/_sim/config", "POST", {"deployment": "never_ready"})
    result = deploy(nemo, wait_timeout=2)
    assert result["failed"] and "not ready after 2s: status pending" in result["msg"]


def test_smoke_test_waits_for_the_adapter_then_chats(nemo):
    register_model(nemo, "dfwbp", ADAPTER.split("/", 1)[1], base_model=ARGS["model"], peft={"finetuning_type": "lora"})
    call(nemo.url + "/_sim/config", "POST", {"peft_after_lists": 2})
    deploy(nemo)
    smoke = run_module("nim_smoke_test", {"nim_url": nemo.nim.url, "model": ADAPTER, "wait_sleep": 1})
    assert not smoke.get("failed"), smoke
    assert smoke["changed"] is False and smoke["model"] == ADAPTER and ADAPTER in smoke["answer"]
    assert stats(nemo.nim)["GET /v1/models"] == 3 and stats(nemo.nim)["POST /v1/chat/completions"] == 1


def test_smoke_test_failures_say_what_is_served(nemo):
    deploy(nemo)
    missing = run_module(
        "nim_smoke_test", {"nim_url": nemo.nim.url, "model": ADAPTER, "wait_timeout": 2, "wait_sleep": 1}
    )
    assert (
        missing["failed"]
        and f"{ADAPTER} not served after 2s; the NIM lists meta/llama-3.2-1b-instruct" in missing["msg"]
    )
    call(nemo.url + "/_sim/config", "POST", {"chat": "error"})
    broken = run_module("nim_smoke_test", {"nim_url": nemo.nim.url, "model": ARGS["model"]})
    assert broken["failed"] and "the chat completion for meta/llama-3.2-1b-instruct failed" in broken["msg"]
    assert "HTTP 500" in broken["msg"]
