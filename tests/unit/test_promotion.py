"""The promotion decision on a results fixture with several candidates."""

import json
from pathlib import Path

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_summary import summarize
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.promotion import PromotionError, decide

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "promotion" / "job_results.json"


@pytest.fixture
def job():
    return json.loads(FIXTURE.read_text())


def test_picks_the_best_eligible_candidate_not_the_best_score(job):
    decision = decide(job, metric="function_name_and_args_accuracy", margin=0.05)
    assert decision["promote"] is True
    assert decision["winner"]["customized_model"] == (
        "dfwbp/customized-meta-llama-3.2-3b-instruct@cust-MBwhJ3rRdBDKMuoxeSPxkC"
    )
    rows = {c["base_model"]: c for c in decision["candidates"]}
    assert rows["meta/llama-3.1-8b-instruct"]["eligible"] is False  # 0.88 is the best score, lead 0.04
    assert rows["meta/llama-3.1-8b-instruct"]["lead"] == pytest.approx(0.04)
    mistral = rows["mistralai/mistral-7b-instruct-v0.3"]
    assert mistral["eligible"] is False and "The training job is pending" in mistral["reason"]
    assert decision["job_id"] == job["id"]


def test_same_decision_from_the_summary_the_modules_return(job):
    assert decide(summarize(job))["winner"] == decide(job)["winner"]


def test_other_metric_and_baseline_change_the_winner(job):
    # on function_name against icl-eval: 1b leads by 0.17, 3b by 0.17 too; 3b scores higher
    decision = decide(job, metric="function_name", margin=0.1, baseline="icl-eval")
    assert decision["winner"]["base_model"] == "meta/llama-3.2-3b-instruct"
    decision = decide(job, metric="tool_calling_correctness", margin=0.285)
    assert decision["winner"]["base_model"] == "meta/llama-3.2-3b-instruct"  # 1b: +0.28 < 0.285; 3b: +0.29


def test_refusal_message_gives_every_score(job):
    decision = decide(job, margin=0.35)
    assert decision["promote"] is False and decision["winner"] is None
    msg = decision["message"]
    assert "margin 0.35" in msg
    assert "customized 0.8 vs base-eval 0.5 (+0.3 < margin 0.35)" in msg
    assert "customized 0.86 vs base-eval 0.55 (+0.31 < margin 0.35)" in msg
    assert "customized 0.88 vs base-eval 0.84 (+0.04 < margin 0.35)" in msg
    assert "customization failed: Error starting customization" in msg


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"metric": "accuracy"}, "metric 'accuracy' is not in the results; the evaluations scored: function_name"),
        ({"margin": -1}, "margin must be a number >= 0"),
        ({"margin": "lots"}, "margin must be a number >= 0"),
        ({"baseline": "customized-eval"}, "baseline='customized-eval' must be one of base-eval, icl-eval"),
    ],
)
def test_bad_parameters_are_named(job, kwargs, text):
    with pytest.raises(PromotionError, match=text.replace("(", r"\(").replace(")", r"\)")):
        decide(job, **kwargs)


def test_no_nims():
    with pytest.raises(PromotionError, match="no NIMs"):
        decide({"id": "x", "nims": []})
