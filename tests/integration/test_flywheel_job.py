"""flywheel_job / flywheel_job_info through Ansible against the Data Flywheel API simulator."""

from __future__ import annotations

import time

import pytest

from tests.integration.flywheel_sim import control, run_module
from tests.sim.flywheel_api.simulator import start


@pytest.fixture
def sim():
    server = start(unit_seconds=0.15)
    yield server
    server.shutdown()


def job(sim, **args):
    return run_module("flywheel_job", {"api_url": sim.url, "wait_sleep": 1, **args})


def posts(sim) -> int:
    return control(sim, "/_sim/stats").get("POST /api/jobs", 0)


def slow(sim, unit=30.0):
    """Jobs that outlast the test (10 units) however loaded the machine is; `slow(sim, 0.15)` lets
    the queued jobs finish (the simulator reschedules them at the new pace)."""
    control(sim, "/_sim/config", {"unit_seconds": unit})


def test_start_wait_complete_and_rerun_reuses(sim):
    slow(sim)
    first = job(sim, workload_id="aiva-1", client_id="dev")
    assert first["changed"] is True and first["attempts"] == 1
    assert first["job"]["status"] in ("pending", "running")  # POST said "queued"; the API stores "pending"
    rerun = job(sim, workload_id="aiva-1", client_id="dev")  # still pending/running: reused
    assert rerun["changed"] is False and rerun["job"]["id"] == first["job"]["id"]
    slow(sim, 0.15)
    done = job(sim, workload_id="aiva-1", client_id="dev", job_id=first["job"]["id"], wait=True)
    assert done["job"]["status"] == "completed" and done["summary"]["failures"] == []
    assert {r["eval_type"] for r in done["table"]} == {"base-eval", "icl-eval", "customized-eval"}
    assert len(control(sim, "/_sim/jobs")["jobs"]) == 1


def test_check_mode_never_posts(sim):
    result = run_module("flywheel_job", {"api_url": sim.url, "workload_id": "aiva-2", "client_id": "dev"}, check=True)
    assert result["changed"] is True
    assert posts(sim) == 0


def test_invalid_data_split_config_names_the_field_and_sends_nothing(sim):
    result = job(
        sim, workload_id="aiva-1", client_id="dev", data_split_config={"eval_size": 100, "min_total_records": 50}
    )
    assert result["failed"] and "data_split_config.eval_size=100" in result["msg"]
    result = job(sim, workload_id="aiva-1", client_id="dev", data_split_config={"val_ratio": 1})
    assert result["failed"] and "data_split_config.val_ratio" in result["msg"]
    assert control(sim, "/_sim/stats").get("total", 0) == 0


def test_cancel_is_idempotent(sim):
    slow(sim)
    started = job(sim, workload_id="aiva-1", client_id="dev")
    cancelled = job(sim, state="cancelled", job_id=started["job"]["id"], wait=True)
    assert cancelled["changed"] is True and cancelled["job"]["status"] == "cancelled"
    again = job(sim, state="cancelled", job_id=started["job"]["id"])
    assert again["changed"] is False and not again.get("failed")


def test_delete_refused_while_running_then_cancel_and_delete(sim):
    slow(sim)
    started = job(sim, workload_id="aiva-1", client_id="dev")
    refused = job(sim, state="absent", job_id=started["job"]["id"])
    assert refused["failed"] and "Cancel them first" in refused["msg"]
    deleted = job(sim, state="absent", job_id=started["job"]["id"], cancel_running=True)
    assert deleted["changed"] is True
    assert control(sim, "/_sim/jobs")["jobs"] == []  # gone, not only marked
    assert job(sim, state="absent", job_id=started["job"]["id"])["changed"] is False


@pytest.mark.parametrize(
    ("scenario", "part"),
    [
        ("nim_failed", "meta/llama-3.2-3b-instruct"),
        ("eval_failed", "icl-eval"),
        ("customization_failed", "customization"),
    ],
)
def test_completed_job_with_failed_parts_fails_the_task(sim, scenario, part):
    control(sim, "/_sim/config", {"workloads": {"w": {"scenario": scenario}}})
    result = job(sim, workload_id="w", client_id="dev", wait=True)
    assert result["failed"], result
    assert result["job"]["status"] == "completed"
    assert part in result["msg"] and result["summary"]["failures"]
    lenient = job(sim, workload_id="w", client_id="dev", job_id=result["job"]["id"], fail_on_failed_parts=False)
    assert not lenient.get("failed") and any("failed" in w for w in lenient["_warnings"])


def test_job_failure_and_worker_restart_fail_with_the_reason(sim):
    control(
        sim,
        "/_sim/config",
        {"workloads": {"few": {"scenario": "job_failed", "records": 10}, "restart": {"scenario": "worker_restart"}}},
    )
    failed = job(sim, workload_id="few", client_id="dev", wait=True)
    assert failed["failed"] and "Not enough records" in failed["msg"]
    restarted = job(sim, workload_id="restart", client_id="dev", wait=True)
    assert restarted["failed"] and "Cancelled by cleanup manager" in restarted["msg"]


def test_timeout_says_where_the_job_is(sim):
    control(sim, "/_sim/config", {"unit_seconds": 5})
    result = job(sim, workload_id="slow", client_id="dev", wait=True, wait_timeout=2)
    assert result["failed"] and "Timed out after 2s" in result["msg"]
    assert "deploying NIM" in result["msg"] or "preparing datasets" in result["msg"]
    assert "Traceback" not in result["msg"]


def test_info_waits_for_many_jobs_with_one_list_request_per_poll(sim):
    ids = [job(sim, workload_id=f"w{i}", client_id="bench")["job"]["id"] for i in range(4)]
    control(sim, "/_sim/stats", method="DELETE")
    info = run_module("flywheel_job_info", {"api_url": sim.url, "client_id": "bench", "wait": True, "wait_sleep": 1})
    assert sorted(j["id"] for j in info["jobs"]) == sorted(ids)
    assert all(j["status"] == "completed" for j in info["jobs"])
    stats = control(sim, "/_sim/stats")
    polls = stats["GET /api/jobs"]
    assert stats["GET /api/jobs/{id}"] == len(ids)  # details read once per job, at the end
    assert info["requests"] == polls + len(ids)
    assert len(info["table"]) == 4 * 6


def test_faults_never_create_duplicate_jobs(sim):
    # one run without faults: what a module run costs on this machine now (seconds at load 1, far more at 15)
    started = time.monotonic()
    assert not job(sim, workload_id="calm", client_id="dev").get("failed")
    baseline = time.monotonic() - started
    control(sim, "/_sim/faults", {"error_rate": 0.3, "latency": 0.02, "drop_post_rate": 0.5, "seed": 7})
    started = time.monotonic()
    for i in range(6):
        result = job(sim, workload_id=f"flaky-{i}", client_id="dev", retries=8)
        assert not result.get("failed"), result.get("msg")
    records = control(sim, "/_sim/jobs")["jobs"]
    per_workload = {}
    for rec in records:
        per_workload[rec["workload_id"]] = per_workload.get(rec["workload_id"], 0) + 1
    assert per_workload == {"calm": 1, **{f"flaky-{i}": 1 for i in range(6)}}
    assert posts(sim) >= 7
    # the retries' back-off stays bounded: six runs cost at most twice a calm one each, plus 60 s of waits
    assert time.monotonic() - started < 6 * 2 * baseline + 60
