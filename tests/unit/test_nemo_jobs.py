"""nemo_jobs: nmp_uri parsing, diagnosis, results flattening, and the enrichment of flywheel
summaries (against the NeMo platform SIMULATOR on loopback)."""

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_summary import summarize
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_deploy import (
    DeploymentClient,
    DeploymentError,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_jobs import (
    NemoJobError,
    NemoJobsClient,
    NemoWaitTimeout,
    diagnose_customization,
    enrich_summary,
    flatten_results,
    parse_nmp_uri,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient
from tests.integration.nemo_sim import call, seed_job
from tests.sim.nemo_platform.simulator import start


@pytest.fixture
def nemo():
    server = start(unit_seconds=0.05)
    yield server, RestClient(server.url, retries=1, backoff_base=0.01)
    server.shutdown()


def test_parse_nmp_uri():
    base, kind, job_id = parse_nmp_uri(
        "http://df-generic-service.data-flywheel.svc.cluster.local:8000/v1/customization/jobs/cust-9NAvCSuV18nJi3M9u3AdB1"
    )
    assert (base, kind, job_id) == (
        "http://df-generic-service.data-flywheel.svc.cluster.local:8000",
        "customization",
        "cust-9NAvCSuV18nJi3M9u3AdB1",
    )
    assert parse_nmp_uri("https://gw/nemo/v1/evaluation/jobs/eval-1/")[0:2] == ("https://gw/nemo", "evaluation")
    for bad in ("hf://datasets/dfwbp/x", "http://nemo.test/v1/models/a/b", "", None):
        with pytest.raises(NemoJobError):
            parse_nmp_uri(bad)


def test_diagnose_customization_prefers_the_entry_with_a_detail():
    status = {
        "status": "pending",
        "status_logs": [
            {"updated_at": "t1", "message": "created"},
            {"updated_at": "t2", "message": "NotEnoughResources", "detail": "0/3 nodes are available"},
            {"updated_at": "t3", "message": "TrainingJobPending"},
        ],
    }
    d = diagnose_customization(status, log_entries=2)
    assert d["cause"] == "t2 NotEnoughResources: 0/3 nodes are available"
    assert d["last_log"] == "t3 TrainingJobPending" and len(d["status_logs"]) == 2
    assert "nvidia.com/gpu" in d["hint"]
    assert diagnose_customization({"status": "running", "percentage_done": 40, "status_logs": []})["hint"] is None


def test_flatten_results():
    scores, full = flatten_results(
        {"tasks": {"t": {"metrics": {"m": {"scores": {"acc": {"value": 0.5}}}}}}, "groups": {"g": {"metrics": {}}}}
    )
    assert scores == {"acc": 0.5} and full == {"t.m.acc": 0.5}


def test_wait_customization_times_out_with_the_status_log(nemo):
    server, rest = nemo
    seed_job(server, "customization", "cust-stuck", scenario="not_enough_resources", age_units=5)
    ticks = iter(range(0, 1000, 10))
    client = NemoJobsClient(rest, sleep=lambda s: None, clock=lambda: next(ticks))
    with pytest.raises(NemoWaitTimeout) as err:
        client.wait_customization("cust-stuck", timeout=25)
    assert "NotEnoughResources" in str(err.value) and err.value.last["status"] == "pending"


def test_enrich_summary_with_the_customizer_status_log(nemo):
    server, rest = nemo
    seed_job(server, "customization", "cust-9NAvCSuV18nJi3M9u3AdB1", scenario="training_pending", age_units=50)
    uri = "http://df-generic-service:8000/v1/customization/jobs/cust-9NAvCSuV18nJi3M9u3AdB1"
    job = {
        "id": "68e8d40a8d56442795349994",
        "status": "completed",
        "nims": [
            {
                "model_name": "meta/llama-3.2-1b-instruct",
                "status": "completed",
                "evaluations": [],
                "customizations": [{"nmp_uri": uri, "error": "Error starting customization: ... pending"}],
            }
        ],
    }
    summary = summarize(job)
    assert enrich_summary(summary, job, NemoJobsClient(rest)) == 1
    failure = summary["failures"][0]
    assert "customizer status log: " in failure["error"] and failure["error"].count("The training job is pending") == 1
    assert failure["diagnosis"]["status"] == "failed"
    # a job the NeMo side does not know keeps its text and says why
    job["nims"][0]["customizations"][0]["nmp_uri"] = uri.replace("cust-9N", "cust-XX")
    summary = summarize(job)
    assert enrich_summary(summary, job, NemoJobsClient(rest)) == 0
    assert "not found" in summary["failures"][0]["diagnosis"]["error"]


def test_dms_duplicate_post_and_failed_deployment(nemo):
    server, rest = nemo
    dms = DeploymentClient(rest, sleep=lambda s: None)
    config = {"model": "meta/llama-3.2-1b-instruct", "nim_deployment": {"gpu": 1}}
    assert dms.ensure("dfwbp", "a", config)[:2] == (True, "created")
    assert dms.ensure("dfwbp", "a", config)[:2] == (False, "none")
    assert dms.create("dfwbp", "a", config)["name"] == "a"  # the 500 "already exists" is taken as success
    changed, action, _dep = dms.ensure("dfwbp", "a", dict(config, model="meta/llama-3.2-3b-instruct"))
    assert (changed, action) == (True, "recreated")
    call(server.url + "/_sim/config", "POST", {"deployment": "failed"})
    dms.ensure("dfwbp", "b", config)
    with pytest.raises(DeploymentError, match="ImagePullBackOff"):
        dms.wait_ready("dfwbp", "b", timeout=60, sleep_cap=0.05)
