"""flywheel_client and rest without Ansible: validation, retries, the at-most-once POST, summaries."""

from __future__ import annotations

import datetime
import random
import re

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_client as fc
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient, RestError, backoff_delays
from tests import upstream
from tests.sim.flywheel_api.simulator import VirtualClock, start


# ------------------------------------------------------------------ data_split_config
def test_survey_strings_are_coerced():
    got = fc.validate_data_split_config(
        {"eval_size": "20", "val_ratio": "0.1", "min_total_records": 50, "parse_function_arguments": "false"}
    )
    assert got == {"eval_size": 20, "val_ratio": 0.1, "min_total_records": 50, "parse_function_arguments": False}


@pytest.mark.parametrize(
    "config",
    [
        {"eval_size": 100, "min_total_records": 50},  # upstream's shipped config.yaml: accepted by the API
        {"eval_size": 100, "val_ratio": 0.1, "min_total_records": 50, "random_seed": None, "limit": 1000},
        {"eval_size": 0},  # no lower bound in the API
        {"eval_size": 0, "min_total_records": 0, "limit": 0},
        {"eval_size": "10", "val_ratio": "0.5"},  # pydantic's lax mode takes numeric strings
        {"limit": "1_000", "random_seed": "7", "parse_function_arguments": "YES"},
    ],
)
def test_what_the_api_accepts_is_accepted(config):
    assert fc.validate_data_split_config(config) is not None


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"val_ratio": 1}, "val_ratio"),
        ({"val_ratio": -0.1}, "val_ratio"),
        ({"val_ratio": "nan"}, "val_ratio"),
        ({"eval_size": "ten"}, "eval_size"),
        ({"eval_size": [100]}, "eval_size"),
        ({"limit": 2.5}, "limit"),
        ({"parse_function_arguments": "maybe"}, "parse_function_arguments"),
        ({"eval_sise": 5}, "eval_sise"),
        # every job would fail in the flywheel's data validator; a key left out counts with the API's default
        ({"limit": 40, "min_total_records": 50}, "limit=40 is below min_total_records=50"),
        ({"limit": 40}, "limit=40 is below min_total_records=50 (a key left out"),
        ({"min_total_records": 20000}, "limit=10000 is below min_total_records=20000"),
    ],
)
def test_bad_data_split_config_names_the_field(config, field):
    with pytest.raises(fc.FlywheelError, match=re.escape(field)):
        fc.validate_data_split_config(config)


def test_negative_sizes_are_accepted_with_a_warning():
    clean = fc.validate_data_split_config({"eval_size": -5})
    assert clean == {"eval_size": -5}
    assert "eval_size=-5 is negative" in fc.data_split_warnings(clean)[0]


def test_the_contracts_data_split_configs_get_the_apis_verdict():
    """Each data_split_config upstream's API was sent: what it answered 422 is refused here, what it
    accepted is accepted (unknown keys aside: Ansible's suboptions refuse those before this code)."""
    seen = 0
    for ex in upstream.api_contract()["exchanges"]:
        body = ex.get("request_body")
        if ex["method"] != "POST" or not isinstance(body, dict) or "data_split_config" not in body:
            continue
        dsc = body["data_split_config"]
        if not isinstance(dsc, dict):
            continue
        locs = [e["loc"] for e in (ex["body"] or {}).get("detail", []) if isinstance(e, dict)]
        split_refused = any(loc[:2] == ["body", "data_split_config"] for loc in locs)
        known = {k: v for k, v in dsc.items() if k in fc.DATA_SPLIT_DEFAULTS}
        if split_refused:
            with pytest.raises(fc.FlywheelError):
                fc.validate_data_split_config(known)
        elif ex["status"] == 200:
            assert set(fc.validate_data_split_config(known)) == set(known)  # accepted, every key kept
        seen += 1
    assert seen >= 15


def test_job_ids_are_object_ids_in_either_case():
    assert fc.is_object_id("6650000000000000000000a1") and fc.is_object_id("6650000000000000000000A1")
    assert fc.normalize_id(" 6650000000000000000000A1") == "6650000000000000000000a1"
    assert not fc.is_object_id("abc") and not fc.is_object_id("6650000000000000000000g1")


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
    job_id, attempts, error = fc.FlywheelClient(rest, sleep=lambda s: None).create_job("w", "c")
    assert (job_id, attempts, rest.posts) == (created["id"], 1, 1)
    assert error  # the POST failed although the job was stored: the caller warns (and watches for an orphan)


def test_ambiguous_post_that_created_nothing_is_retried():
    created = {"id": "6650000000000000000000a2", "status": "queued"}
    rest = FakeRest([RestError("5xx", status=500, ambiguous=True), created], [])
    job_id, attempts, error = fc.FlywheelClient(rest, sleep=lambda s: None).create_job("w", "c")
    assert (job_id, attempts, rest.posts, error) == (created["id"], 2, 2, None)


def test_rejected_post_is_raised_at_once():
    rest = FakeRest(
        [RestError("422", status=422, detail=[{"loc": ["body", "client_id"], "msg": "Field required"}])], []
    )
    with pytest.raises(RestError):
        fc.FlywheelClient(rest, sleep=lambda s: None).create_job("w", "c")
    assert rest.posts == 1


# ------------------------------------------------------------------ waiting


def test_a_wait_split_in_steps_keeps_its_backoff():
    """Ten one-minute steps handing next_delay on poll no more often than one ten-minute wait."""
    clock = VirtualClock()
    sim = start(unit_seconds=60, clock=clock)  # 10 units: 600 s
    try:
        client = fc.FlywheelClient(RestClient(sim.url), sleep=clock.sleep, clock=clock)
        job_id = client.create_job("w", "c")[0]
        before = client.rest.requests_made
        delay, steps = None, 0
        while True:
            steps += 1
            try:
                client.wait([job_id], timeout=60, first_delay=delay)
                break
            except fc.WaitTimeout:
                delay = client.next_delay
        requests = client.rest.requests_made - before
        assert steps >= 10 and delay == 30
        assert requests <= 10 + 600 / 30, requests
        assert clock.t - 600 <= 30  # completion noticed within the backoff cap
        assert client.get_job(job_id, cached=True)["status"] == "completed"  # read by the last poll
        assert client.rest.requests_made - before == requests  # ... so no extra request
    finally:
        sim.shutdown()


def test_orphan_evidence_needs_an_idle_worker():
    now = datetime.datetime(2026, 12, 4, 12, 0, 0)
    job = {"id": "a", "status": "pending", "started_at": "2026-12-04T11:55:00.000000"}
    finished = {"id": "b", "status": "completed", "finished_at": "2026-12-04T11:59:30.123000"}
    running = {"id": "c", "status": "running", "finished_at": None}
    assert fc.orphan_evidence(job, [job], now, 120)["pending_seconds"] == 300
    assert fc.orphan_evidence(job, [job, running], now, 120) is None  # queued behind a running job
    assert fc.orphan_evidence(job, [job, finished], now, 120) is None  # the worker was busy 30 s ago
    assert fc.orphan_evidence(job, [job, finished], now, 20)["idle_seconds"] == 29
    assert fc.orphan_evidence(dict(job, status="running"), [job], now, 1) is None
