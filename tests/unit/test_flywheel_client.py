"""flywheel_client and rest without Ansible: validation, retries, the at-most-once POST, summaries."""

from __future__ import annotations

import random

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_client as fc
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient, RestError, backoff_delays
from tests.sim.flywheel_api.simulator import start


# ------------------------------------------------------------------ data_split_config
def test_survey_strings_are_coerced():
    got = fc.validate_data_split_config(
        {"eval_size": "20", "val_ratio": "0.1", "min_total_records": 50, "parse_function_arguments": "false"}
    )
    assert got == {"eval_size": 20, "val_ratio": 0.1, "min_total_records": 50, "parse_function_arguments": False}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"val_ratio": 1}, "val_ratio"),
        ({"val_ratio": -0.1}, "val_ratio"),
        ({"eval_size": 0}, "eval_size"),
        ({"eval_size": "ten"}, "eval_size"),
        ({"eval_size": True}, "eval_size"),
        ({"limit": 2.5}, "limit"),
        ({"parse_function_arguments": "maybe"}, "parse_function_arguments"),
        ({"eval_sise": 5}, "eval_sise"),
        ({"eval_size": 60, "min_total_records": 50}, "eval_size=60"),
    ],
)
def test_bad_data_split_config_names_the_field(config, field):
    with pytest.raises(fc.FlywheelError, match=field):
        fc.validate_data_split_config(config)


def test_job_ids_are_object_ids():
    assert fc.is_object_id("6650000000000000000000a1")
    assert not fc.is_object_id("6650000000000000000000A1") and not fc.is_object_id("abc")


# ------------------------------------------------------------------ backoff and retries
def test_backoff_is_jittered_and_capped():
    delays = list(backoff_delays(10, base=0.5, cap=4.0))
    assert len(delays) == 10 and all(0 <= d <= 4.0 for d in delays)
    assert all(d <= 0.5 * 2**n for n, d in enumerate(delays))


def test_get_is_retried_through_5xx_but_4xx_is_not():
    sim = start(unit_seconds=0.1, seed=3)
    try:
        rest = RestClient(sim.url, retries=30, backoff_base=0.001, backoff_cap=0.001)
        rest_post = RestClient(sim.url, retries=30, backoff_base=0.001, backoff_cap=0.001)
        sim.faults.update(error_rate=0.5)
        status, data = rest.request("GET", "/api/jobs")
        assert status == 200 and data == {"jobs": []}
        assert rest.requests_made > 1  # seed 3 fails the first tries
        sim.faults.update(error_rate=0)
        with pytest.raises(RestError) as err:
            rest_post.request("GET", "/api/jobs/not-an-id")
        assert err.value.status == 400 and err.value.detail == "Invalid job_id format"
        assert rest_post.requests_made == 1
    finally:
        sim.shutdown()


def test_connection_refused_is_not_ambiguous():
    rest = RestClient("http://127.0.0.1:9", retries=0)
    with pytest.raises(RestError) as err:
        rest.request("POST", "/api/jobs", body={}, retry=False)
    assert err.value.status is None and err.value.ambiguous is False


# ------------------------------------------------------------------ at-most-once POST
class FakeRest:
    """Answers a scripted sequence; records what was sent."""

    retries, backoff_base, backoff_cap = 3, 0.0, 0.0

    def __init__(self, post_outcomes, jobs_after_post):
        self.rng = random.Random(0)
        self.post_outcomes = list(post_outcomes)
        self.jobs = []
        self.jobs_after_post = jobs_after_post
        self.posts = 0

    def request(self, method, path, body=None, query=None, retry=None, timeout=None):
        if method == "GET" and path == "/api/jobs":
            return 200, {"jobs": list(self.jobs)}
        assert (method, path) == ("POST", "/api/jobs")
        self.posts += 1
        self.jobs = list(self.jobs_after_post)  # the server acted on it
        outcome = self.post_outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return 200, outcome


def test_ambiguous_post_that_created_a_job_is_not_repeated():
    created = {"id": "6650000000000000000000a1", "workload_id": "w", "client_id": "c", "status": "pending"}
    rest = FakeRest([RestError("dropped", ambiguous=True)], [created])
    job_id, attempts = fc.FlywheelClient(rest, sleep=lambda s: None).create_job("w", "c")
    assert (job_id, attempts, rest.posts) == (created["id"], 1, 1)


def test_ambiguous_post_that_created_nothing_is_retried():
    created = {"id": "6650000000000000000000a2", "status": "queued"}
    rest = FakeRest([RestError("5xx", status=500, ambiguous=True), created], [])
    job_id, attempts = fc.FlywheelClient(rest, sleep=lambda s: None).create_job("w", "c")
    assert (job_id, attempts, rest.posts) == (created["id"], 2, 2)


def test_rejected_post_is_raised_at_once():
    rest = FakeRest(
        [RestError("422", status=422, detail=[{"loc": ["body", "client_id"], "msg": "Field required"}])], []
    )
    with pytest.raises(RestError):
        fc.FlywheelClient(rest, sleep=lambda s: None).create_job("w", "c")
    assert rest.posts == 1


# ------------------------------------------------------------------ summaries
def completed_job(**nim_overrides):
    evals = [
        {
            "eval_type": "base-eval",
            "scores": {"function_name": 0.5},
            "progress": 100,
            "finished_at": "t",
            "error": None,
        },
        {"eval_type": "icl-eval", "scores": {}, "progress": 0, "finished_at": "t", "error": "KeyError: 'state'"},
    ]
    nim = {
        "model_name": "m1",
        "status": "completed",
        "deployment_status": "completed",
        "evaluations": evals,
        "customizations": [{"progress": 100, "epochs_completed": 2, "error": None}],
        "error": None,
    }
    nim.update(nim_overrides)
    return {
        "id": "x",
        "workload_id": "w",
        "client_id": "c",
        "status": "completed",
        "error": None,
        "nims": [nim, {"model_name": "m2", "status": "failed", "error": "Deployment failed", "evaluations": []}],
    }


def test_completed_job_failures_are_all_listed():
    summary = fc.summarize(completed_job())
    assert summary["status"] == "completed"
    assert [f["part"] for f in summary["failures"]] == ["m1 icl-eval", "m2"]
    rows = fc.table(summary)
    assert rows == [
        {"workload_id": "w", "client_id": "c", "model": "m1", "eval_type": "base-eval", "function_name": 0.5},
        {"workload_id": "w", "client_id": "c", "model": "m1", "eval_type": "icl-eval"},
    ]


def test_stage_words():
    assert "one at a time" in fc.stage({"status": "pending"})
    running = {
        "status": "running",
        "nims": [
            {
                "model_name": "m1",
                "status": "running-evals",
                "evaluations": [{"eval_type": "base-eval", "progress": 40, "finished_at": None}],
                "customizations": [],
            }
        ],
    }
    assert fc.stage(running) == "m1: base-eval 40%"
