"""A failed customization inside a flywheel job (seed 000, "The training job is pending") is
reported with the customizer's own status log line: flywheel_job, and the flywheel_run role's
report, against the Data Flywheel API SIMULATOR and the NeMo platform SIMULATOR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.flywheel_sim import control, run_module, run_playbook
from tests.integration.nemo_sim import seed_job
from tests.sim.flywheel_api.simulator import customization_id
from tests.sim.flywheel_api.simulator import start as start_flywheel
from tests.sim.nemo_platform.simulator import start as start_nemo

STATUS_LINE = "failed: The training job is pending"


@pytest.fixture
def sims():
    flywheel = start_flywheel(unit_seconds=0.2, nims=["meta/llama-3.2-1b-instruct"])
    nemo = start_nemo(unit_seconds=0.2)
    control(
        flywheel,
        "/_sim/config",
        {"nemo_base_url": nemo.url, "workloads": {"pa": {"scenario": "customization_pending"}}},
    )
    yield flywheel, nemo
    flywheel.shutdown()
    nemo.shutdown()


def start_job(flywheel, nemo, client_id):
    started = run_module("flywheel_job", {"api_url": flywheel.url, "workload_id": "pa", "client_id": client_id})
    job_id = started["job"]["id"]
    # what the flywheel did on NeMo: a customization that failed like the seed's
    seed_job(nemo, "customization", customization_id(job_id, 0), scenario="training_pending", age_units=5)
    return job_id


def test_flywheel_job_failure_carries_the_customizer_status_log(sims):
    flywheel, nemo = sims
    job_id = start_job(flywheel, nemo, "aiva-1")
    plain = run_module("flywheel_job", {"api_url": flywheel.url, "job_id": job_id, "wait": True, "wait_sleep": 1})
    assert plain["failed"] and "The training job is pending" in plain["msg"]
    assert "customizer status log" not in plain["msg"]  # without nemo_base_url: the flywheel's words only
    enriched = run_module(
        "flywheel_job",
        {"api_url": flywheel.url, "job_id": job_id, "wait": True, "wait_sleep": 1, "nemo_base_url": nemo.url},
    )
    assert enriched["failed"] and enriched["job"]["status"] == "completed"
    assert "customizer status log: " in enriched["msg"] and STATUS_LINE in enriched["msg"]
    failure = enriched["summary"]["failures"][0]
    assert failure["part"] == "meta/llama-3.2-1b-instruct customization"
    assert failure["diagnosis"]["job_id"] == customization_id(job_id, 0)
    assert failure["diagnosis"]["cause"].endswith(STATUS_LINE)
    assert "/scratch" in failure["diagnosis"]["hint"]


def test_unreachable_nemo_keeps_the_failure_and_warns(sims):
    flywheel, nemo = sims
    job_id = start_job(flywheel, nemo, "aiva-2")
    result = run_module(
        "flywheel_job",
        {
            "api_url": flywheel.url,
            "job_id": job_id,
            "wait": True,
            "wait_sleep": 1,
            "nemo_base_url": "http://127.0.0.1:9",
            "fail_on_failed_parts": False,
        },
    )
    assert not result.get("failed") and "The training job is pending" in result["summary"]["failures"][0]["error"]
    assert any("no NeMo diagnosis" in w for w in result["_warnings"])


def test_run_role_report_has_the_customizer_status_log_line(tmp_path: Path, sims):
    flywheel, nemo = sims
    start_job(flywheel, nemo, "aiva-3")
    playbook = tmp_path / "run.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: dataflywheel.blueprint.flywheel_run\n"
    )
    artifacts = tmp_path / "reports"
    proc = run_playbook(
        playbook,
        {
            "flywheel_run_api_url": flywheel.url,
            "flywheel_run_nemo_base_url": nemo.url,
            "flywheel_run_jobs": [{"workload_id": "pa", "client_id": "aiva-3"}],
            "flywheel_run_artifacts_dir": str(artifacts),
            "flywheel_run_progress_interval": 1,
            "flywheel_run_wait_sleep": 1,
        },
    )
    assert proc.returncode != 0, proc.stdout[-3000:]  # the failed part fails the play, after the report
    assert "Write report.json" in proc.stdout, proc.stdout[-3000:]
    assert STATUS_LINE in proc.stdout
    report = json.loads((artifacts / "report.json").read_text())
    assert any(STATUS_LINE in f for f in report["failures"])
    assert STATUS_LINE in (artifacts / "report.md").read_text()
    assert STATUS_LINE in (artifacts / "report.html").read_text()


def test_bad_nemo_base_url_is_refused_before_a_job_starts(sims):
    flywheel, _nemo = sims
    result = run_module(
        "flywheel_job", {"api_url": flywheel.url, "workload_id": "pa", "client_id": "x", "nemo_base_url": "nemo.test"}
    )
    assert result["failed"] and "nemo_url='nemo.test' must start with http://" in result["msg"]
    assert control(flywheel, "/_sim/stats").get("total", 0) == 0
