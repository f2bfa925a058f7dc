"""The flywheel_promote role (playbooks/flywheel_promote.yml) against the NeMo platform SIMULATOR
(Deployment Management, Entity Store, NIM proxy) and the Data Flywheel API SIMULATOR: picks the
right model from a results fixture, refuses below the margin with the scores, deploys only when
approved, waits for readiness, smoke-tests one chat completion, and changes nothing on rerun."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.harness import run_playbook
from tests.integration.flywheel_sim import control
from tests.integration.nemo_sim import call, register_model, stats
from tests.sim.flywheel_api.simulator import start as start_flywheel
from tests.sim.nemo_platform.simulator import start as start_nemo

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "flywheel_promote.yml"
RESULTS = json.loads((ROOT / "tests/fixtures/promotion/job_results.json").read_text())
WINNER = "dfwbp/customized-meta-llama-3.2-3b-instruct@cust-MBwhJ3rRdBDKMuoxeSPxkC"
DEPLOYMENT = "flywheel-promoted-meta-llama-3-2-3b-instruct"


@pytest.fixture
def nemo():
    server = start_nemo(unit_seconds=0.3)
    # the NIM lists the adapters only from its third model listing after it is ready
    call(server.url + "/_sim/config", "POST", {"peft_after_lists": 2})
    # what the customizer left in the Entity Store: the adapters of the fixture's jobs
    for nim in RESULTS["nims"]:
        model = nim["customizations"][0]["customized_model"]
        ns, name = model.split("/", 1)
        register_model(server, ns, name, base_model=nim["model_name"], peft={"finetuning_type": "lora"})
    call(server.url + "/_sim/stats", "DELETE")
    yield server
    server.shutdown()


def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(
        "all:\n  children:\n    flywheel_clusters:\n      hosts:\n        local-cluster:\n"
        "          ansible_connection: local\n"
        "          ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
    )
    return path


def promote(tmp_path: Path, nemo, **extra):
    variables = {
        "flywheel_promote_results": RESULTS,
        "flywheel_promote_nemo_base_url": nemo.url,
        "flywheel_promote_nim_url": nemo.nim.url,
        "flywheel_promote_entity_store_url": "http://nemo-entity-store.nemo.svc:8000",
        "flywheel_promote_artifacts_dir": str(tmp_path / "reports"),
        "flywheel_promote_wait_sleep": 1,
        **extra,
    }
    return run_playbook_with_inventory(tmp_path, variables)


def run_playbook_with_inventory(tmp_path, variables):
    return run_playbook(PLAYBOOK, variables, inventory=inventory(tmp_path))


def text(proc) -> str:
    """The output with the callback's line wrapping undone."""
    return re.sub(r"\s+", " ", proc.stdout)


def recap(proc) -> dict:
    line = next(x for x in proc.stdout.splitlines() if x.startswith("local-cluster") and "ok=" in x)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_decide_approve_deploy_smoke_test_and_rerun_changes_nothing(tmp_path, nemo):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "report.json").write_text(json.dumps({"jobs": [], "table": [], "failures": []}))

    # 1. without approval: the decision and the report, nothing deployed
    pending = promote(tmp_path, nemo)
    assert pending.returncode == 0, pending.stdout[-3000:]
    assert f"NOT deployed: {WINNER} awaits approval" in text(pending)
    assert "**Outcome: awaiting approval**" in (reports / "promotion.md").read_text()
    assert stats(nemo).get("POST /v1/deployment/model-deployments", 0) == 0

    # 2. approved (as the AWX workflow hands it on): deploy, wait until ready and served, one chat
    approved = promote(tmp_path, nemo, flywheel_promote_approved=True, flywheel_promote_expected_model=WINNER)
    assert approved.returncode == 0, approved.stdout[-3000:]
    status, dep = call(f"{nemo.url}/v1/deployment/model-deployments/dfwbp/{DEPLOYMENT}")
    assert status == 200 and dep["status_details"]["status"] == "ready"
    assert dep["config"]["model"] == "meta/llama-3.2-3b-instruct"
    assert dep["config"]["nim_deployment"]["additional_envs"] == {
        "NIM_PEFT_SOURCE": "http://nemo-entity-store.nemo.svc:8000",
        "NIM_PEFT_REFRESH_INTERVAL": "30",
    }
    counts = stats(nemo)
    assert counts[f"GET /v1/deployment/model-deployments/dfwbp/{DEPLOYMENT}"] >= 3  # polled until ready
    assert stats(nemo.nim)["GET /v1/models"] == 3  # polled until the adapter appeared after a refresh
    assert stats(nemo.nim)["POST /v1/chat/completions"] == 1
    assert f"Simulated answer from {WINNER}" in text(approved)
    evidence = json.loads((reports / "promotion.json").read_text())
    assert evidence["outcome"] == "deployed" and evidence["approved"] is True
    assert evidence["deployment"]["status"] == "ready" and evidence["smoke_test"]["passed"] is True
    assert WINNER in evidence["smoke_test"]["served_models"]
    assert [c["eligible"] for c in evidence["decision"]["candidates"]] == [True, True, False, False]
    assert json.loads((reports / "report.json").read_text())["promotion"] == evidence
    md = (reports / "promotion.md").read_text()
    assert "**Outcome: deployed** - " + WINNER in md and "| meta/llama-3.1-8b-instruct |" in md

    # 3. rerun with the same winner: nothing changes, nothing is redeployed
    again = promote(tmp_path, nemo, flywheel_promote_approved=True, flywheel_promote_expected_model=WINNER)
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again)["changed"] == 0, again.stdout[-3000:]
    assert stats(nemo)["POST /v1/deployment/model-deployments"] == 1
    assert stats(nemo).get(f"DELETE /v1/deployment/model-deployments/dfwbp/{DEPLOYMENT}", 0) == 0


def test_refuses_below_the_margin_with_the_scores(tmp_path, nemo):
    proc = promote(tmp_path, nemo, flywheel_promote_margin=0.35, flywheel_promote_approved=True)
    assert proc.returncode != 0
    out = text(proc)
    assert "Nothing promoted: no customized model beats its base-eval by the margin 0.35" in out
    for fragment in ("customized 0.86 vs base-eval 0.55 (+0.31 < margin 0.35)", "customized 0.88 vs base-eval 0.84"):
        assert fragment in out
    assert "**Outcome: refused**" in (tmp_path / "reports" / "promotion.md").read_text()
    assert stats(nemo).get("total", 0) == 0 and stats(nemo.nim).get("total", 0) == 0


def test_approval_for_another_model_deploys_nothing(tmp_path, nemo):
    other = RESULTS["nims"][0]["customizations"][0]["customized_model"]
    proc = promote(tmp_path, nemo, flywheel_promote_approved=True, flywheel_promote_expected_model=other)
    assert proc.returncode != 0 and f"but {other} was approved" in text(proc)
    assert stats(nemo).get("POST /v1/deployment/model-deployments", 0) == 0


def test_failed_deployment_stops_with_the_service_description(tmp_path, nemo):
    call(nemo.url + "/_sim/config", "POST", {"deployment": "failed"})
    proc = promote(tmp_path, nemo, flywheel_promote_approved=True)
    assert proc.returncode != 0
    assert "is failed: Back-off pulling image: ImagePullBackOff" in text(proc)
    assert "Traceback" not in text(proc)
    assert stats(nemo.nim).get("POST /v1/chat/completions", 0) == 0


def test_bad_input_changes_nothing(tmp_path, nemo):
    proc = promote(tmp_path, nemo, flywheel_promote_margin=-0.1)
    assert proc.returncode != 0 and "flywheel_promote_margin >= 0 (got -0.1)" in text(proc)
    proc = promote(tmp_path, nemo, flywheel_promote_method="helm")
    assert proc.returncode != 0 and "flywheel_promote_method" in text(proc)
    assert stats(nemo).get("total", 0) == 0


def test_decides_from_a_flywheel_job_by_id(tmp_path, nemo):
    flywheel = start_flywheel(unit_seconds=0.05)
    try:
        control(flywheel, "/_sim/config", {"workloads": {"pa/aiva-3": {"records": 1000}}})
        status, created = call(flywheel.url + "/api/jobs", "POST", {"workload_id": "pa", "client_id": "aiva-3"})
        assert status == 200
        time.sleep(1.0)  # 10 units: the job completes
        proc = promote(
            tmp_path,
            nemo,
            flywheel_promote_api_url=flywheel.url,
            flywheel_promote_job_id=created["id"],
            flywheel_promote_results={},
        )
        assert proc.returncode == 0, proc.stdout[-3000:]
        # the simulator's 3b model leads its base by more than the 1b one and scores higher
        assert "NOT deployed: dfwbp/customized-meta-llama-3.2-3b-instruct@cust-" in text(proc)
    finally:
        flywheel.shutdown()
