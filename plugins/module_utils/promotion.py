# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Which customized model, if any, a flywheel job's results justify promoting (pure, no I/O).

A candidate is a NIM's customized model (its customization finished without error and has a
`customized_model`) with a `customized-eval` score. It beats its base when
`customized - baseline >= margin` on the chosen metric, the baseline being the same NIM's
`base-eval` (or `icl-eval`) score. The winner is the eligible candidate with the highest score
(ties: the larger lead). The decision lists every candidate with its scores or why it was left
out, so a refusal says exactly how far each one fell short.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

BASELINES = ("base-eval", "icl-eval")


class PromotionError(Exception):
    pass


def _nims(results):
    """NIMs as (model_name, {eval_type: scores}, {eval_type: error}, [customizations]) from a job
    detail (nims[].evaluations[]) or a flywheel_job summary (nims[].scores)."""
    out = []
    for nim in (results or {}).get("nims") or []:
        scores, errors = {}, {}
        if "evaluations" in nim:
            for ev in nim.get("evaluations") or []:
                scores[ev.get("eval_type")] = dict(ev.get("scores") or {})
                if ev.get("error"):
                    errors[ev.get("eval_type")] = ev["error"]
        else:
            for eval_type, values in (nim.get("scores") or {}).items():
                scores[eval_type] = dict(values or {})
        out.append((nim.get("model_name"), scores, errors, list(nim.get("customizations") or [])))
    return out


def _fmt(number):
    """A score as a person writes it: up to 4 significant digits, no trailing zeros."""
    return "%.4g" % number


def _num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def decide(results, metric="function_name_and_args_accuracy", margin=0.05, baseline="base-eval"):
    if baseline not in BASELINES:
        raise PromotionError("baseline=%r must be one of %s" % (baseline, ", ".join(BASELINES)))
    margin = _num(margin)
    if margin is None or margin < 0:
        raise PromotionError("margin must be a number >= 0 (the lead over the baseline score)")
    nims = _nims(results)
    if not nims:
        raise PromotionError("the results have no NIMs: pass a flywheel job detail or summary with nims[]")
    available = sorted(set(k for _n, s, _e, _c in nims for scores in s.values() for k in scores))
    if metric not in available:
        raise PromotionError(
            "metric %r is not in the results; the evaluations scored: %s" % (metric, ", ".join(available) or "nothing")
        )
    candidates = []
    for model, scores, errors, customs in nims:
        done = [c for c in customs if c.get("customized_model") and not c.get("error")]
        failed = [c for c in customs if c.get("error")]
        row = {
            "base_model": model,
            "customized_model": done[-1]["customized_model"] if done else None,
            "baseline": baseline,
            "baseline_score": _num((scores.get(baseline) or {}).get(metric)),
            "customized_score": _num((scores.get("customized-eval") or {}).get(metric)),
            "lead": None,
            "eligible": False,
            "reason": "",
        }
        if not done:
            row["reason"] = (
                "customization failed: %s" % failed[-1]["error"] if failed else "no customized model in the results"
            )
        elif errors.get("customized-eval"):
            row["reason"] = "customized-eval failed: %s" % errors["customized-eval"]
        elif row["customized_score"] is None:
            row["reason"] = "no customized-eval %s score" % metric
        elif row["baseline_score"] is None:
            row["reason"] = "no %s %s score to compare with" % (baseline, metric)
        else:
            score, base = float(row["customized_score"]), float(row["baseline_score"])
            lead = round(score - base, 6)
            row["lead"] = lead
            row["eligible"] = lead >= round(margin, 6)
            row["reason"] = "customized %s vs %s %s (%s %s margin %s)" % (
                _fmt(score),
                baseline,
                _fmt(base),
                ("+" if lead >= 0 else "") + _fmt(lead),
                ">=" if row["eligible"] else "<",
                _fmt(margin),
            )
        candidates.append(row)
    eligible = [c for c in candidates if c["eligible"]]
    winner = sorted(eligible, key=lambda c: (c["customized_score"], c["lead"]))[-1] if eligible else None
    lines = ["%s: %s" % (c["customized_model"] or c["base_model"], c["reason"]) for c in candidates]
    if winner:
        message = "promote %s (%s %s); candidates: %s" % (
            winner["customized_model"],
            metric,
            winner["reason"],
            "; ".join(lines),
        )
    else:
        message = "no customized model beats its %s by the margin %s on %s, nothing promoted. Scores: %s" % (
            baseline,
            _fmt(margin),
            metric,
            "; ".join(lines),
        )
    return {
        "promote": winner is not None,
        "winner": winner,
        "metric": metric,
        "margin": margin,
        "baseline": baseline,
        "job_id": (results or {}).get("id"),
        "workload_id": (results or {}).get("workload_id"),
        "client_id": (results or {}).get("client_id"),
        "candidates": candidates,
        "message": message,
    }
