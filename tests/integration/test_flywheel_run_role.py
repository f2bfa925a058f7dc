"""The flywheel_run role end to end against the Data Flywheel API simulator."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.flywheel_sim import control, run_playbook
from tests.sim.flywheel_api.simulator import start

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim():
    server = start(unit_seconds=0.1)
    control(server, "/_sim/config", {"workloads": {"pa/aiva-1": {"records": 300}, "pa/aiva-3": {"records": 1000}}})
    yield server
    server.shutdown()


def play(tmp_path: Path, sim, jobs, **extra) -> tuple[subprocess.CompletedProcess, Path]:
    artifacts = tmp_path / "reports"
    playbook = tmp_path / "run.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: dataflywheel.blueprint.flywheel_run\n"
    )
    variables = {
        "flywheel_run_api_url": sim.url,
        "flywheel_run_jobs": jobs,
        "flywheel_run_artifacts_dir": str(artifacts),
        "flywheel_run_progress_interval": 1,
        "flywheel_run_wait_sleep": 1,
        **extra,
    }
    return run_playbook(playbook, variables), artifacts


def recap(proc) -> dict:
    line = next(x for x in proc.stdout.splitlines() if x.startswith("localhost") and "ok=" in x)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_run_report_and_rerun_starts_nothing(tmp_path, sim):
    jobs = [{"workload_id": "pa", "client_id": "aiva-1"}, {"workload_id": "pa", "client_id": "aiva-3"}]
    first, artifacts = play(tmp_path, sim, jobs)
    assert first.returncode == 0, first.stdout[-3000:]
    assert re.search(r"\[\d+s\] pa aiva-1 ", first.stdout), "progress lines are printed while waiting"
    report = json.loads((artifacts / "report.json").read_text())
    assert [j["status"] for j in report["jobs"]] == ["completed", "completed"]
    html = (artifacts / "report.html").read_text()
    assert html.count('class="bar customized-eval"') == 4 and "<svg" in html
    # the story of the seeds: more records, better customized scores
    scores = {
        (r["client_id"], r["model"]): r["function_name_and_args_accuracy"]
        for r in report["table"]
        if r["eval_type"] == "customized-eval"
    }
    assert scores[("aiva-3", "meta/llama-3.2-1b-instruct")] > scores[("aiva-1", "meta/llama-3.2-1b-instruct")]
    assert "| pa | aiva-3 | meta/llama-3.2-3b-instruct | customized-eval |" in (artifacts / "report.md").read_text()

    second, _artifacts = play(tmp_path, sim, jobs)
    assert second.returncode == 0 and recap(second)["changed"] == 0
    assert len(control(sim, "/_sim/jobs")["jobs"]) == 2  # no second job


def test_partial_failure_fails_after_the_report_is_written(tmp_path, sim):
    control(sim, "/_sim/config", {"workloads": {"broken": {"scenario": "nim_failed"}}})
    proc, artifacts = play(tmp_path, sim, [{"workload_id": "broken", "client_id": "t"}])
    assert proc.returncode != 0
    assert "meta/llama-3.2-3b-instruct: Deployment of meta/llama-3.2-3b-instruct failed" in proc.stdout
    assert "Deployment of meta/llama-3.2-3b-instruct failed" in (artifacts / "report.html").read_text()


def test_bad_url_is_refused_before_anything(tmp_path, sim):
    proc, _artifacts = play(tmp_path, sim, [{"workload_id": "x", "client_id": "t"}], flywheel_run_api_url="df-api:8000")
    assert proc.returncode != 0 and "flywheel_run_api_url" in proc.stdout
    assert control(sim, "/_sim/stats").get("total", 0) == 0
