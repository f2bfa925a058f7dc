"""nemo_evaluation_job through Ansible against the NeMo platform SIMULATOR: create, poll to
completion, failure with diagnosis, attach by nmp_uri, check mode, bad input, timeout."""

from __future__ import annotations

import pytest

from tests.integration.flywheel_sim import run_module
from tests.integration.nemo_sim import call, register_model, seed_job, stats
from tests.sim.nemo_platform.simulator import DEFAULT_SCORES, start

CONFIG = {
    "type": "custom",
    "tasks": {
        "tool-calling": {
            "type": "chat-completion",
            "params": {"limit": 40},
            "dataset": {"files_url": "hf://datasets/dfwbp/flywheel-eval-primary_assistant/eval_data.jsonl"},
            "metrics": {"function_name_and_args_accuracy": {"type": "tool-calling"}},
        }
    },
}
ENDPOINT = {
    "url": "http://meta-llama3-1b-instruct.nim.svc:8000/v1/chat/completions",
    "model_id": "meta/llama-3.2-1b-instruct",
}


@pytest.fixture
def nemo():
    server = start(unit_seconds=0.2)
    yield server
    server.shutdown()


def evaluation(nemo, **args):
    return run_module("nemo_evaluation_job", {"nemo_base_url": nemo.url, "wait_sleep": 1, **args})


def test_create_poll_to_completion_and_rerun_attaches(nemo):
    done = evaluation(nemo, config=CONFIG, api_endpoint=ENDPOINT, wait=True)
    assert not done.get("failed"), done
    assert done["changed"] is True and done["status"] == "completed" and done["progress"] == 100.0
    assert done["scores"] == DEFAULT_SCORES
    assert done["job"]["target"]["model"]["api_endpoint"]["format"] == "nim"  # default sent inline
    assert done["diagnosis"]["summary"] == "completed (40 samples)"
    again = evaluation(nemo, config=CONFIG, api_endpoint=ENDPOINT)
    assert again["changed"] is False and again["job"]["id"] == done["job"]["id"]
    assert stats(nemo)["POST /v1/evaluation/jobs"] == 1


def test_model_by_name_missing_from_entity_store_fails_with_diagnosis_then_works(nemo):
    failed = evaluation(nemo, config=CONFIG, model="meta/llama-3.2-1b-instruct", wait=True)
    assert failed["failed"] and failed["status"] == "failed"
    assert "404 Client Error" in failed["msg"] and "/v1/models/meta/llama-3.2-1b-instruct" in failed["msg"]
    assert "register it" in failed["diagnosis"]["hint"]  # points at nemo_model / the entity_store unit
    assert any("RuntimeError" in line for line in failed["diagnosis"]["log_tail"])
    # the remedy: register the base model; a failed job is not reused, a new one runs
    register_model(nemo, "meta", "llama-3.2-1b-instruct", api_endpoint={"url": ENDPOINT["url"], "model_id": "m"})
    fixed = evaluation(nemo, config=CONFIG, model="meta/llama-3.2-1b-instruct", wait=True)
    assert fixed["status"] == "completed" and fixed["changed"] is True
    assert fixed["job"]["id"] != failed["job"]["id"]


def test_failed_evaluation_returns_status_details_and_log_tail(nemo):
    call(nemo.url + "/_sim/config", "POST", {"evaluation": "failed"})
    failed = evaluation(nemo, config=CONFIG, api_endpoint=ENDPOINT, wait=True, log_lines=3)
    assert failed["failed"] and "401 Unauthorized" in failed["msg"] and "Log tail:" in failed["msg"]
    assert len(failed["diagnosis"]["log_tail"]) == 3
    assert failed["diagnosis"]["task_status"] == {"custom-tool-calling": "failed"}
    lenient = evaluation(nemo, job_id=failed["job"]["id"], fail_on_failure=False)
    assert not lenient.get("failed") and lenient["status"] == "failed" and lenient["diagnosis"]["message"]


def test_attach_by_nmp_uri_of_a_flywheel_result(nemo):
    seed_job(nemo, "evaluation", "eval-J6jgppPsh2eJ2yXKEzujDZ", age_units=10, scores={"function_name": 0.56})
    uri = (
        "http://df-generic-service.data-flywheel.svc.cluster.local:8000/v1/evaluation/jobs/eval-J6jgppPsh2eJ2yXKEzujDZ"
    )
    attached = evaluation(nemo, nmp_uri=uri)  # in-cluster host: only the id is used
    assert attached["changed"] is False and attached["status"] == "completed"
    assert attached["scores"] == {"function_name": 0.56}
    direct = run_module(
        "nemo_evaluation_job", {"nmp_uri": f"{nemo.url}/v1/evaluation/jobs/eval-J6jgppPsh2eJ2yXKEzujDZ"}
    )
    assert direct["status"] == "completed"  # no nemo_base_url: the URI's own base
    assert stats(nemo).get("POST /v1/evaluation/jobs", 0) == 0


def test_check_mode_never_posts(nemo):
    dry = run_module(
        "nemo_evaluation_job", {"nemo_base_url": nemo.url, "config": CONFIG, "api_endpoint": ENDPOINT}, check=True
    )
    assert dry["changed"] is True
    assert stats(nemo).get("POST /v1/evaluation/jobs", 0) == 0


def test_bad_input_is_refused_before_anything_is_sent(nemo):
    no_target = evaluation(nemo, config=CONFIG)
    assert no_target["failed"] and "config needs a target" in no_target["msg"]
    wrong_kind = evaluation(nemo, nmp_uri=f"{nemo.url}/v1/customization/jobs/cust-x")
    assert "nemo_customization_job_info" in wrong_kind["msg"]
    bad_uri = evaluation(nemo, nmp_uri="eval-123")
    assert "is not a NeMo job URL" in bad_uri["msg"]
    bad_url = run_module("nemo_evaluation_job", {"nemo_base_url": "nemo.test", "job_id": "eval-1"})
    assert "nemo_url='nemo.test' must start with http://" in bad_url["msg"]
    assert stats(nemo).get("total", 0) == 0


def test_timeout_says_where_the_job_is(nemo):
    call(nemo.url + "/_sim/config", "POST", {"evaluation": "stalled"})
    result = evaluation(nemo, config=CONFIG, api_endpoint=ENDPOINT, wait=True, wait_timeout=2)
    assert result["failed"] and "Timed out after 2s" in result["msg"] and "running: 40.0%" in result["msg"]
    assert "Traceback" not in result["msg"]
