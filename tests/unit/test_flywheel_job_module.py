"""flywheel_job and flywheel_job_info, run in this process (no ansible fork), against the Data
Flywheel API SIMULATOR, which the contract replay holds to upstream's recorded answers, and the NeMo
platform SIMULATOR. The behaviours of the real API the modules must get right: data_split_config
as the API validates it, a job stored by a POST that failed (orphaned), unknown and upper-case ids,
what the job is doing, a user's cancel, and the NeMo customization a cancel leaves running."""

from __future__ import annotations

import functools
import time

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_client, flywheel_module
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient
from tests.integration.flywheel_sim import control, run_module
from tests.integration.nemo_sim import call, seed_job
from tests.sim.flywheel_api.simulator import VirtualClock, customization_id
from tests.sim.flywheel_api.simulator import start as start_flywheel
from tests.sim.nemo_platform.simulator import start as start_nemo


class JumpClock:
    """Real time plus jumps: the simulator's jobs move on while a module waits, and a test can
    move them to a later phase at once."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock():
    return JumpClock()


@pytest.fixture
def sim(clock):
    server = start_flywheel(unit_seconds=10, clock=clock, cancel_delay=0.2, delete_delay=0.2)
    yield server
    server.shutdown()


def job(sim, check=False, **args):
    return run_module("flywheel_job", {"flywheel_url": sim.url, "wait_sleep": 1, **args}, check=check)


def info(sim, **args):
    return run_module("flywheel_job_info", {"flywheel_url": sim.url, "wait_sleep": 1, **args})


def sim_jobs(sim):
    return control(sim, "/_sim/jobs")["jobs"]


# ------------------------------------------------------------------ 1. data_split_config
def test_the_apis_shipped_data_split_is_accepted_and_sent(sim):
    shipped = job(sim, workload_id="a", client_id="c", data_split_config={"eval_size": 100, "min_total_records": 50})
    zero = job(sim, workload_id="b", client_id="c", data_split_config={"eval_size": "0"})
    assert shipped["changed"] and zero["changed"], (shipped.get("msg"), zero.get("msg"))
    sent = {j["workload_id"]: j["data_split_config"] for j in sim_jobs(sim)}
    assert sent["a"]["eval_size"] == 100 and sent["a"]["min_total_records"] == 50
    assert sent["b"]["eval_size"] == 0 and sent["b"]["limit"] == 10000  # the API's default for a key left out


def test_a_split_every_job_would_fail_on_is_refused_before_sending(sim):
    result = job(sim, workload_id="a", client_id="c", data_split_config={"limit": 40, "min_total_records": 50})
    assert result["failed"] and "data_split_config.limit=40 is below min_total_records=50" in result["msg"]
    assert "nothing was sent" in result["msg"]
    assert control(sim, "/_sim/stats").get("total", 0) == 0


# ------------------------------------------------------------------ 2. orphaned job
def test_a_job_stored_by_a_failed_post_is_reported_orphaned_with_the_way_out(sim):
    control(sim, "/_sim/config", {"broker_down": True})
    started = job(sim, workload_id="w", client_id="c", wait=True, orphan_timeout=1)
    assert started["failed"], started
    assert "no worker picked it up" in started["msg"] and "task broker" in started["msg"]
    assert "replace_orphaned=true" in started["msg"]
    assert started["orphan"]["pending_seconds"] >= 1 and started["job"]["status"] == "pending"
    assert any("POST /api/jobs answered HTTP 500" in w for w in started["_warnings"])
    orphan = started["job"]["id"]
    control(sim, "/_sim/config", {"broker_down": False})
    rerun = job(sim, workload_id="w", client_id="c", orphan_timeout=1)  # a rerun finds it again
    assert rerun["failed"] and "no worker picked it up" in rerun["msg"] and rerun["job"]["id"] == orphan
    fixed = job(sim, workload_id="w", client_id="c", orphan_timeout=1, replace_orphaned=True)
    assert fixed["changed"] and fixed["orphans_replaced"] == [orphan], fixed.get("msg")
    assert fixed["job"]["id"] != orphan and fixed["job"]["status"] in ("pending", "running")
    time.sleep(0.3)  # the API deletes in the background
    assert [j["id"] for j in sim_jobs(sim)] == [fixed["job"]["id"]]


def test_a_job_queued_behind_a_running_one_is_not_an_orphan(sim):
    first = job(sim, workload_id="first", client_id="c")
    second = job(sim, workload_id="second", client_id="c", wait=True, wait_timeout=3, orphan_timeout=1)
    assert second["failed"] and "Timed out after 3s" in second["msg"] and "orphan" not in second
    assert "pending (jobs run one at a time" in second["msg"]
    assert first["job"]["id"] != second["job"]["id"]


# ------------------------------------------------------------------ 3. unknown job id
def test_info_on_an_unknown_job_fails_or_says_so(sim):
    known = job(sim, workload_id="w", client_id="c")["job"]["id"]
    unknown = "ffffffffffffffffffffffff"
    failed = info(sim, job_id=unknown, wait=True)
    assert failed["failed"] and f"job(s) {unknown} do not exist" in failed["msg"]
    told = info(sim, job_ids=[known, unknown], fail_on_missing=False)
    assert not told.get("failed") and told["missing"] == [unknown] and [j["id"] for j in told["jobs"]] == [known]
    assert any("do not exist" in w for w in told["_warnings"])


# ------------------------------------------------------------------ 4. upper-case ids
def test_upper_case_job_ids_are_accepted(sim):
    job_id = job(sim, workload_id="w", client_id="c")["job"]["id"]
    attached = job(sim, job_id=job_id.upper())
    assert not attached.get("failed") and attached["job"]["id"] == job_id and attached["changed"] is False
    listed = info(sim, job_ids=[job_id.upper()])
    assert [j["id"] for j in listed["jobs"]] == [job_id]


# ------------------------------------------------------------------ 5. what the job is doing
def test_the_stage_follows_the_workflow(sim, clock):
    control(sim, "/_sim/config", {"unit_seconds": 100})  # the seconds these calls take do not count
    job_id = job(sim, workload_id="w", client_id="c")["job"]["id"]
    seen = []
    # at 0.2, 0.55, 0.75, 1.25, 2.25 and 3.55 units: datasets, judge created, judge pending, the first
    # NIM deploying, its evaluations, its customized-eval
    for units in (0.2, 0.35, 0.2, 0.5, 1.0, 1.3):
        clock.jump(units * 100)
        seen.append(info(sim, job_id=job_id)["summaries"][0]["stage"])
    clock.jump(5.5 * 100)  # both NIMs done, the finalize step
    seen.append(info(sim, job_id=job_id)["summaries"][0]["stage"])
    assert seen[0] == "preparing datasets"
    assert seen[1].startswith("waiting for the LLM judge (local meta/llama-3.3-70b-instruct: created")
    assert seen[2].startswith("waiting for the LLM judge") and seen[2].endswith("pending)")
    assert seen[3].startswith("meta/llama-3.2-1b-instruct: deploying NIM (pending")
    assert seen[4].startswith("meta/llama-3.2-1b-instruct: base-eval ")
    assert seen[5].startswith("meta/llama-3.2-1b-instruct: customized-eval ")
    assert seen[6].startswith("finalizing")


# ------------------------------------------------------------------ 6. a user's cancel
def test_a_cancel_is_not_reported_as_failed_parts(sim, clock):
    job_id = job(sim, workload_id="w", client_id="c")["job"]["id"]
    clock.jump(2.5 * 10)  # the first NIM's evaluations and customization run
    cancelled = job(sim, state="cancelled", job_id=job_id, wait=True)
    assert cancelled["changed"] and cancelled["job"]["status"] == "cancelled"
    assert not [w for w in cancelled["_warnings"] if "failed" in w], cancelled["_warnings"]
    assert cancelled["summary"]["failures"] == []
    time.sleep(0.5)  # the workflow's tasks mark what they stopped a moment later
    summary = info(sim, job_id=job_id)["summaries"][0]
    assert summary["failures"] == [] and "meta/llama-3.2-1b-instruct customization" in [
        c["part"] for c in summary["cancelled_parts"]
    ]


def test_a_worker_restart_fails_with_the_reason(sim):
    control(sim, "/_sim/config", {"unit_seconds": 0.1, "workloads": {"restart": {"scenario": "worker_restart"}}})
    result = job(sim, workload_id="restart", client_id="c", wait=True)
    assert result["failed"] and "Cancelled by cleanup manager" in result["msg"] and "worker restarted" in result["msg"]


# ------------------------------------------------------------------ NeMo customization on cancel / delete
@pytest.fixture
def nemo():
    server = start_nemo(unit_seconds=30)
    yield server
    server.shutdown()


@pytest.mark.parametrize("state", ["cancelled", "absent"])
def test_cancel_or_delete_also_cancels_the_nemo_customization(sim, clock, nemo, state):
    control(sim, "/_sim/config", {"nemo_base_url": nemo.url})
    job_id = job(sim, workload_id="w", client_id="c")["job"]["id"]
    cust = customization_id(job_id, 0)
    seed_job(nemo, "customization", cust, age_units=1.5)  # what the flywheel started there: training
    clock.jump(2.2 * 10)
    assert call(f"{nemo.url}/v1/customization/jobs/{cust}/status")[1]["status"] == "running"
    # the path the flywheel's own cancel posts to: NeMo has no such route, the training goes on
    assert call(f"{nemo.url}/v1/customizations/{cust}/cancel", "POST")[0] == 404
    args = {"state": state, "job_id": job_id, "nemo_url": nemo.url}
    result = job(sim, **(dict(args, wait=True) if state == "cancelled" else dict(args, cancel_running=True)))
    assert not result.get("failed"), result.get("msg")
    assert call(f"{nemo.url}/v1/customization/jobs/{cust}/status")[1]["status"] == "cancelled"
    [entry] = result["nemo_customizations"]
    assert entry["job_id"] == cust and entry["cancelled"] and entry["gpu_released"] is True
    assert "its GPU is released" in entry["message"]


def test_without_the_nemo_url_the_busy_gpu_is_said(sim, clock):
    job_id = job(sim, workload_id="w", client_id="c")["job"]["id"]
    clock.jump(2.2 * 10)
    result = job(sim, state="cancelled", job_id=job_id)
    [entry] = result["nemo_customizations"]
    assert entry["gpu_released"] is None and "set nemo_url" in entry["message"]
    assert any("may still hold a GPU" in w for w in result["_warnings"])


# ------------------------------------------------------------------ the module's contract in general
@pytest.fixture
def fast():
    server = start_flywheel(unit_seconds=0.15)
    yield server
    server.shutdown()


def posts(sim) -> int:
    return control(sim, "/_sim/stats").get("POST /api/jobs", 0)


def slow(sim, unit=30.0):
    """Jobs that outlast the test (10 units) however loaded the machine is; `slow(sim, 0.15)` lets
    the queued jobs finish (the simulator reschedules them at the new pace)."""
    control(sim, "/_sim/config", {"unit_seconds": unit})


def test_start_wait_complete_and_rerun_reuses(fast):
    slow(fast)
    first = job(fast, workload_id="aiva-1", client_id="dev")
    assert first["changed"] is True and first["attempts"] == 1
    assert first["job"]["status"] in ("pending", "running")  # POST said "queued"; the API stores "pending"
    rerun = job(fast, workload_id="aiva-1", client_id="dev")  # still pending/running: reused
    assert rerun["changed"] is False and rerun["job"]["id"] == first["job"]["id"]
    slow(fast, 0.15)
    done = job(fast, workload_id="aiva-1", client_id="dev", job_id=first["job"]["id"], wait=True)
    assert done["job"]["status"] == "completed" and done["summary"]["failures"] == []
    assert {r["eval_type"] for r in done["table"]} == {"base-eval", "icl-eval", "customized-eval"}
    assert len(control(fast, "/_sim/jobs")["jobs"]) == 1


def test_check_mode_never_posts(fast):
    result = run_module(
        "flywheel_job", {"flywheel_url": fast.url, "workload_id": "aiva-2", "client_id": "dev"}, check=True
    )
    assert result["changed"] is True
    assert posts(fast) == 0


def test_invalid_data_split_config_names_the_field_and_sends_nothing(fast):
    result = job(fast, workload_id="aiva-1", client_id="dev", data_split_config={"eval_size": "ten"})
    assert result["failed"] and "data_split_config.eval_size='ten'" in result["msg"]
    result = job(fast, workload_id="aiva-1", client_id="dev", data_split_config={"val_ratio": 1})
    assert result["failed"] and "data_split_config.val_ratio" in result["msg"]
    assert control(fast, "/_sim/stats").get("total", 0) == 0


def test_cancel_is_idempotent(fast):
    slow(fast)
    started = job(fast, workload_id="aiva-1", client_id="dev")
    cancelled = job(fast, state="cancelled", job_id=started["job"]["id"], wait=True)
    assert cancelled["changed"] is True and cancelled["job"]["status"] == "cancelled"
    again = job(fast, state="cancelled", job_id=started["job"]["id"])
    assert again["changed"] is False and not again.get("failed")


def test_delete_refused_while_running_then_cancel_and_delete(fast):
    slow(fast)
    started = job(fast, workload_id="aiva-1", client_id="dev")
    refused = job(fast, state="absent", job_id=started["job"]["id"])
    assert refused["failed"] and "Cancel them first" in refused["msg"]
    deleted = job(fast, state="absent", job_id=started["job"]["id"], cancel_running=True)
    assert deleted["changed"] is True
    assert control(fast, "/_sim/jobs")["jobs"] == []  # gone, not only marked
    assert job(fast, state="absent", job_id=started["job"]["id"])["changed"] is False


@pytest.mark.parametrize(
    ("scenario", "part"),
    [
        ("nim_failed", "meta/llama-3.2-3b-instruct"),
        ("eval_failed", "icl-eval"),
        ("customization_failed", "customization"),
    ],
)
def test_completed_job_with_failed_parts_fails_the_task(fast, scenario, part):
    control(fast, "/_sim/config", {"workloads": {"w": {"scenario": scenario}}})
    result = job(fast, workload_id="w", client_id="dev", wait=True)
    assert result["failed"], result
    assert result["job"]["status"] == "completed"
    assert part in result["msg"] and result["summary"]["failures"]
    lenient = job(fast, workload_id="w", client_id="dev", job_id=result["job"]["id"], fail_on_failed_parts=False)
    assert not lenient.get("failed") and any("failed" in w for w in lenient["_warnings"])


def test_job_failure_fails_with_the_reason(fast):
    control(fast, "/_sim/config", {"workloads": {"few": {"records": 10}}})
    failed = job(fast, workload_id="few", client_id="dev", wait=True)
    assert failed["failed"] and "Error creating datasets: Not enough records found" in failed["msg"]


def test_timeout_says_where_the_job_is(fast):
    control(fast, "/_sim/config", {"unit_seconds": 20})
    result = job(fast, workload_id="slow", client_id="dev", wait=True, wait_timeout=2)
    assert result["failed"] and "Timed out after 2s" in result["msg"]
    assert "it is preparing datasets" in result["msg"]
    assert "Traceback" not in result["msg"]


def test_info_waits_for_many_jobs_with_one_list_request_per_poll(fast):
    ids = [job(fast, workload_id=f"w{i}", client_id="bench")["job"]["id"] for i in range(4)]
    control(fast, "/_sim/stats", method="DELETE")
    info = run_module(
        "flywheel_job_info", {"flywheel_url": fast.url, "client_id": "bench", "wait": True, "wait_sleep": 1}
    )
    assert sorted(j["id"] for j in info["jobs"]) == sorted(ids)
    assert all(j["status"] == "completed" for j in info["jobs"])
    stats = control(fast, "/_sim/stats")
    polls = stats["GET /api/jobs"]
    details = stats["GET /api/jobs/{id}"]
    # details read once per job at the end; when one job is left running, its detail is the poll instead of the
    # list (jobs started further apart, as under load, finish apart): never one read per job per poll
    assert details >= len(ids)
    assert details < len(ids) * polls or polls == 1  # one read per job per list poll would be len(ids) * polls
    assert info["requests"] == polls + details
    assert len(info["table"]) == 4 * 6


def test_info_in_one_minute_steps_polls_no_more_than_one_wait(monkeypatch):
    """The flywheel_run role's wait: flywheel_job_info steps of wait_timeout=60, each handed the last
    one's poll_delay, for a job of 124 s. The steps together send no more requests than one
    uninterrupted client wait (a step's listing is its first poll, not an extra read) but the
    detail read for the last summary, and notice completion within the backoff cap."""
    clock = VirtualClock()
    server = start_flywheel(unit_seconds=12.4, clock=clock)  # 10 units: 124 s
    timed = functools.partial(flywheel_client.FlywheelClient, sleep=clock.sleep, clock=clock)
    monkeypatch.setattr(flywheel_module, "FlywheelClient", timed)
    try:
        one_wait = timed(RestClient(server.url))
        first = one_wait.create_job("w", "one")[0]
        before, started = one_wait.rest.requests_made, clock.t
        one_wait.wait([first], timeout=600, sleep_cap=30)
        one_wait_requests = one_wait.rest.requests_made - before
        assert clock.t - started - 124 <= 30

        job_id = timed(RestClient(server.url)).create_job("w", "steps")[0]
        control(server, "/_sim/stats", method="DELETE")
        started, delay, steps, lines = clock.t, None, 0, []
        while True:
            steps += 1
            args = {"job_ids": [job_id], "wait": True, "wait_timeout": 60, "fail_on_timeout": False}
            step = info(server, **args, wait_sleep=30, **({"poll_delay": delay} if delay else {}))
            assert not step.get("failed"), step.get("msg")
            lines.append(step["summaries"][0]["stage"])
            if not step["timed_out"]:
                break
            delay = step["poll_delay"]
        requests = control(server, "/_sim/stats")["total"]
        assert steps == 3 and step["jobs"][0]["status"] == "completed", lines
        # one wait's last poll is the finished job's detail; the last step's poll is its listing, so the
        # summary's detail is one more read
        assert requests <= one_wait_requests + 1, (requests, one_wait_requests)
        assert requests <= 10 + 124 / 30
        assert clock.t - started - 124 <= 30  # noticed within the backoff cap
    finally:
        server.shutdown()


def test_faults_never_create_duplicate_jobs(fast):
    # one run without faults: what a module run costs on this machine now (seconds at load 1, far more at 15)
    started = time.monotonic()
    assert not job(fast, workload_id="calm", client_id="dev").get("failed")
    baseline = time.monotonic() - started
    control(fast, "/_sim/faults", {"error_rate": 0.3, "latency": 0.02, "drop_post_rate": 0.5, "seed": 7})
    started = time.monotonic()
    for i in range(6):
        result = job(fast, workload_id=f"flaky-{i}", client_id="dev", retries=8)
        assert not result.get("failed"), result.get("msg")
    records = control(fast, "/_sim/jobs")["jobs"]
    per_workload = {}
    for rec in records:
        per_workload[rec["workload_id"]] = per_workload.get(rec["workload_id"], 0) + 1
    assert per_workload == {"calm": 1, **{f"flaky-{i}": 1 for i in range(6)}}
    assert posts(fast) >= 7
    # the retries' back-off stays bounded: six runs cost at most twice a calm one each, plus 60 s of waits
    assert time.monotonic() - started < 6 * 2 * baseline + 60
