"""nemo_customization_job_info through Ansible against the NeMo platform SIMULATOR: poll to
completion, "pending" with NotEnoughResources, the seed's "training job is pending", attach by nmp_uri."""

from __future__ import annotations

import pytest

from tests.integration.flywheel_sim import run_module
from tests.integration.nemo_sim import call, seed_job, stats
from tests.sim.nemo_platform.simulator import start

BODY = {
    "config": "dfwbp/llama-3.2-1b-instruct@v1.0.0+dfw",
    "dataset": {"name": "flywheel-train-primary_assistant-1760089098", "namespace": "dfwbp"},
    "hyperparameters": {"training_type": "sft", "finetuning_type": "lora", "epochs": 2, "batch_size": 16},
    "output_model": "dfwbp/customized-meta-llama-3.2-1b-instruct",
}


@pytest.fixture
def nemo():
    server = start(unit_seconds=0.2)
    yield server
    server.shutdown()


def info(nemo, **args):
    return run_module("nemo_customization_job_info", {"nemo_base_url": nemo.url, "wait_sleep": 1, **args})


def test_created_job_polled_to_completion(nemo):
    status, job = call(nemo.url + "/v1/customization/jobs", "POST", BODY)
    assert status == 200 and job["status"] == "created"
    done = info(nemo, job_id=job["id"], wait=True, wait_timeout=60)
    assert not done.get("failed"), done
    assert done["changed"] is False and done["status"] == "completed"
    assert done["percentage_done"] == 100.0 and done["epochs_completed"] == 2 and done["steps_completed"] == 50
    assert done["output_model"] == f"dfwbp/customized-meta-llama-3.2-1b-instruct@{job['id']}"
    assert [e["message"] for e in done["status_logs"]][-2:] == ["TrainingJobCompleted", "completed"]
    assert done["diagnosis"]["hint"] is None
    # the customizer registered the adapter in the Entity Store
    assert call(f"{nemo.url}/v1/models/dfwbp/customized-meta-llama-3.2-1b-instruct@{job['id']}")[0] == 200


def test_pending_job_shows_not_enough_resources_with_the_scheduler_message(nemo):
    seed_job(nemo, "customization", "cust-KpXGmM8hN2g4kg33tjJfxK", scenario="not_enough_resources", age_units=3)
    now = info(nemo, job_id="cust-KpXGmM8hN2g4kg33tjJfxK")
    assert now["status"] == "pending" and now["percentage_done"] == 0.0
    assert now["diagnosis"]["cause"].endswith(
        "NotEnoughResources: 0/3 nodes are available: "
        "1 node(s) didn't match Pod's node affinity/selector, "
        "2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: "
        "3 No preemption victims found."
    )
    assert "nvidia.com/gpu" in now["diagnosis"]["hint"]
    waited = info(nemo, job_id="cust-KpXGmM8hN2g4kg33tjJfxK", wait=True, wait_timeout=2)
    assert waited["failed"] and "Timed out after 2s" in waited["msg"]
    assert "pending; customizer status log:" in waited["msg"] and "Insufficient nvidia.com/gpu" in waited["msg"]
    assert waited["status_logs"][-1]["message"] == "NotEnoughResources"


def test_seed_training_job_is_pending_attached_by_nmp_uri(nemo):
    seed_job(nemo, "customization", "cust-9NAvCSuV18nJi3M9u3AdB1", scenario="training_pending", age_units=5)
    uri = "http://df-generic-service.data-flywheel.svc.cluster.local:8000/v1/customization/jobs/cust-9NAvCSuV18nJi3M9u3AdB1"
    seen = info(nemo, nmp_uri=uri, log_entries=3)
    assert seen["status"] == "failed" and len(seen["status_logs"]) == 3
    assert seen["diagnosis"]["cause"].endswith("failed: The training job is pending")
    assert "/scratch" in seen["diagnosis"]["hint"] and "entity-handler" in seen["diagnosis"]["hint"]
    strict = info(nemo, nmp_uri=uri, fail_on_failure=True)
    assert strict["failed"] and "failed: The training job is pending" in strict["msg"]


def test_unknown_job_and_bad_input(nemo):
    missing = info(nemo, job_id="cust-doesnotexist")
    assert missing["failed"] and "not found" in missing["msg"]
    wrong = info(nemo, nmp_uri=f"{nemo.url}/v1/evaluation/jobs/eval-1")
    assert wrong["failed"] and "nemo_evaluation_job" in wrong["msg"]
    assert stats(nemo).get("total", 0) == 1  # only the lookup of the unknown id
