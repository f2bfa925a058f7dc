"""The flywheel_run role's log stage: load the logs, check the counts, and only then start jobs.

Logs go into a REAL search engine (OpenSearch, tests/sim/search_engine); jobs go to the Data
Flywheel API SIMULATOR, which is how the tests see that no job was started.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.integration.flywheel_sim import control, run_module, run_playbook
from tests.sim.flywheel_api.simulator import start
from tests.sim.sample_logs import generate, write


@pytest.fixture
def sim():
    server = start(unit_seconds=0.1)
    yield server
    server.shutdown()


def play(tmp_path, sim, engine, index, jobs, logs, **extra):
    playbook = tmp_path / "run.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: dataflywheel.blueprint.flywheel_run\n"
    )
    variables = {
        "flywheel_run_api_url": sim.url,
        "flywheel_run_es_url": engine.url,
        "flywheel_run_es_index": index,
        "flywheel_run_jobs": jobs,
        "flywheel_run_logs": logs,
        "flywheel_run_artifacts_dir": str(tmp_path / "reports"),
        "flywheel_run_progress_interval": 1,
        "flywheel_run_wait_sleep": 1,
        **extra,
    }
    return run_playbook(playbook, variables)


def recap(proc) -> dict:
    line = next(x for x in proc.stdout.splitlines() if x.startswith("localhost") and "ok=" in x)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def counts(engine, index) -> dict:
    info = run_module("flywheel_logs_info", {"es_url": engine.url, "index": index})
    return {(c["workload_id"], c["client_id"]): c["records"] for c in info["counts"]}


def test_refuses_to_start_jobs_below_the_minimum_and_says_how_many(tmp_path, sim, search_engine):
    index = f"flywheel-run-{uuid.uuid4().hex[:8]}"
    path = str(write(tmp_path / "aiva.jsonl", 1000))
    jobs = [{"workload_id": "pa", "client_id": "aiva-1"}, {"workload_id": "pa", "client_id": "aiva-3"}]
    logs = [
        {"path": path, "workload_id": "pa", "client_id": "aiva-1", "max_records": 30},
        {"path": path, "workload_id": "pa", "client_id": "aiva-3"},
    ]
    proc = play(tmp_path, sim, search_engine, index, jobs, logs)
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "No job was started: 1 of 2 job(s) have too few records in index " + index in out
    assert "pa/aiva-1: 30 records in the log index, needs at least 100 (min_total_records=50, eval_size=100)" in out
    assert control(sim, "/_sim/jobs")["jobs"] == []  # nothing was started
    assert control(sim, "/_sim/stats").get("total", 0) == 0  # the API was not even asked
    assert counts(search_engine, index) == {("pa", "aiva-1"): 30, ("pa", "aiva-3"): 1000}  # loaded first

    # a job-level data_split_config that fits the data lets the run go on; reloading changes nothing
    jobs[0]["data_split_config"] = {"min_total_records": 20, "eval_size": 20}
    proc = play(tmp_path, sim, search_engine, index, jobs, logs)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "pa/aiva-1: 30 records in the log index, enough for 20" in proc.stdout
    assert len(control(sim, "/_sim/jobs")["jobs"]) == 2
    again = play(tmp_path, sim, search_engine, index, jobs, logs)
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-3000:]
    assert counts(search_engine, index) == {("pa", "aiva-1"): 30, ("pa", "aiva-3"): 1000}


def test_logs_without_an_es_url_are_refused_by_name(tmp_path, sim, search_engine):
    path = str(write(tmp_path / "a.jsonl", 5))
    proc = play(
        tmp_path,
        sim,
        search_engine,
        "flywheel",
        [{"workload_id": "pa", "client_id": "x"}],
        [{"path": path}],
        flywheel_run_es_url="",
    )
    assert proc.returncode != 0
    assert "flywheel_run_es_url (or FLYWHEEL_ES_URL) must be the flywheel's Elasticsearch URL" in " ".join(
        proc.stdout.split()
    )
    assert control(sim, "/_sim/stats").get("total", 0) == 0


def test_invalid_log_file_stops_the_run_before_any_job(tmp_path, sim, search_engine):
    index = f"flywheel-run-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(r) for r in generate(3)]
    record = json.loads(lines[1])
    record["response"]["choices"] = "none"
    lines[1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    proc = play(tmp_path, sim, search_engine, index, [{"workload_id": "pa", "client_id": "x"}], [{"path": str(path)}])
    assert proc.returncode != 0
    assert "line 2: response.choices: must be a non-empty list" in proc.stdout
    assert control(sim, "/_sim/stats").get("total", 0) == 0


def test_without_the_check_the_flywheel_fails_the_job_itself(tmp_path, search_engine):
    """What the check saves: the API simulator, given the real index (--es-url), counts the job's
    records there and fails it with the flywheel's own message, after the job was started."""
    index = f"flywheel-run-{uuid.uuid4().hex[:8]}"
    sim = start(unit_seconds=0.1, es_url=search_engine.url, es_index=index)
    try:
        path = str(write(tmp_path / "aiva.jsonl", 30))
        proc = play(
            tmp_path,
            sim,
            search_engine,
            index,
            [{"workload_id": "pa", "client_id": "aiva-1"}],
            [{"path": path, "workload_id": "pa", "client_id": "aiva-1"}],
            flywheel_run_check_records=False,
        )
        assert proc.returncode != 0
        assert "Record check skipped: flywheel_run_check_records is false" in " ".join(proc.stdout.split())
        assert len(control(sim, "/_sim/jobs")["jobs"]) == 1  # started, then failed in the flywheel
        assert "A minimum of 50 records is required, but only 30 were found." in proc.stdout
    finally:
        sim.shutdown()
