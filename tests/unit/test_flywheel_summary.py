"""What the modules make of a job detail, checked on the details upstream's API really returned
(the recorded phases of flywheel-api-contract.json) and on hand-made ones for the edge cases."""

from __future__ import annotations

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_summary import stage, summarize, table
from tests import upstream

JOB_ID = "6650a1b2c3d4e5f6a7b8c9d0"
FILLERS = {
    "<timestamp>": "2026-12-04T11:50:25.527000",
    "<float>": 1.5,
    "<int>": 3,
}


def filled(value):
    """A recorded body with its placeholders replaced by plausible values."""
    if isinstance(value, str):
        if value in FILLERS:
            return FILLERS[value]
        return (
            value.replace("{job_id_last8}", JOB_ID[-8:]).replace("{job_id}", JOB_ID).replace("<unix_ts>", "1764849025")
        )
    if isinstance(value, list):
        return [filled(v) for v in value]
    if isinstance(value, dict):
        return {k: filled(v) for k, v in value.items()}
    return value


def recorded(name: str) -> dict:
    exchanges = {e["name"]: e for e in upstream.api_contract()["exchanges"]}
    return filled(exchanges[name]["body"])


@pytest.mark.parametrize(
    ("phase", "words"),
    [
        ("get_job_pending_queued", "pending (jobs run one at a time"),
        ("get_job_phase_creating_datasets", "preparing datasets"),
        ("get_job_phase_judge_deploying", "waiting for the LLM judge (local meta/llama-3.3-70b-instruct: pending)"),
        ("get_job_phase_nim_deploying", "meta/llama-3.2-1b-instruct: deploying NIM (pending, 1s)"),
        ("get_job_phase_evals_running", "meta/llama-3.2-1b-instruct: base-eval 0%, icl-eval 0%, customization 0%"),
        ("get_job_phase_customized_eval_running", "meta/llama-3.2-1b-instruct: customized-eval 0%"),
        ("get_job_phase_second_nim_deploying", "meta/llama-3.1-8b-instruct: deploying NIM"),
        ("get_job_phase_finalizing", "finalizing (every NIM is done"),
        ("get_job_completed", "completed"),
        ("get_job_cancelled", "cancelled by the user"),
    ],
)
def test_the_stage_says_what_the_recorded_job_was_doing(phase, words):
    assert stage(recorded(phase)).startswith(words), stage(recorded(phase))


def test_no_phase_before_the_nims_says_deploying():
    """While datasets are made and the judge starts, every NIM is `pending`: that is not a deploy."""
    for phase in ("get_job_uppercase_id", "get_job_phase_creating_datasets", "get_job_phase_judge_deploying"):
        assert "deploying NIM" not in stage(recorded(phase))


def test_a_user_cancel_is_not_a_failure_of_parts():
    summary = summarize(recorded("get_job_cancelled"))
    assert summary["failures"] == []
    parts = [c["part"] for c in summary["cancelled_parts"]]
    assert parts == [
        "meta/llama-3.2-1b-instruct base-eval",
        "meta/llama-3.2-1b-instruct icl-eval",
        "meta/llama-3.2-1b-instruct customization",
        "meta/llama-3.2-1b-instruct",
        "meta/llama-3.1-8b-instruct",
    ]
    early = summarize(recorded("get_job_cancelled_during_dataset_creation"))
    assert early["failures"] == [] and len(early["cancelled_parts"]) == 2


def test_a_part_that_failed_before_the_cancel_stays_a_failure():
    job = recorded("get_job_cancelled")
    job["nims"][0]["evaluations"][0]["error"] = "Error running base-eval evaluation: 404 Not Found"
    summary = summarize(job)
    assert [f["part"] for f in summary["failures"]] == ["meta/llama-3.2-1b-instruct base-eval"]


def test_a_worker_restart_is_a_failure_of_the_job_only():
    job = recorded("get_job_cancelled")
    job["error"] = "Cancelled by cleanup manager"
    summary = summarize(job)
    assert [f["part"] for f in summary["failures"]] == ["job"]
    assert "worker restarted" in summary["failures"][0]["error"]
    assert stage(job) == "cancelled: Cancelled by cleanup manager"


def test_completed_jobs_hide_failed_parts():
    assert [f["part"] for f in summarize(recorded("get_job_completed_with_failed_nim_deployment"))["failures"]] == [
        "meta/llama-3.1-8b-instruct"
    ]
    assert [f["part"] for f in summarize(recorded("get_job_completed_with_failed_customization"))["failures"]] == [
        "meta/llama-3.1-8b-instruct customization"
    ]
    evals = summarize(recorded("get_job_completed_with_failed_evaluation"))
    assert [f["part"] for f in evals["failures"]] == ["meta/llama-3.2-1b-instruct icl-eval"]
    failed = summarize(recorded("get_job_failed_at_dataset_creation"))
    assert failed["failures"][0]["part"] == "job" and "Not enough records" in failed["failures"][0]["error"]


def test_table_has_a_row_per_nim_and_evaluation():
    rows = table(summarize(recorded("get_job_completed")))
    assert len(rows) == 6 and {r["eval_type"] for r in rows} == {"base-eval", "icl-eval", "customized-eval"}
    assert all(r["function_name"] == 1.5 for r in rows)
