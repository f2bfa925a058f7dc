# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What to make of a Data Flywheel job detail: scores, failed parts, and where the job is, in words.

A `completed` job can hide failed NIMs, evaluations and customizations (upstream does not raise
them to the job). A cancelled job marks what it stopped with errors too ("Flywheel run cancelled",
"... Flywheel run <id> was cancelled"): those parts were cancelled, not failed. The workflow runs
in upstream's order: datasets, the LLM judge, then each NIM (deploy, evaluations and
customization), then a finalize step of about a minute with every NIM done.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

TERMINAL = ("completed", "failed", "cancelled")
TOOL_SCORES = ("function_name", "function_name_and_args_accuracy", "tool_calling_correctness")
GENERIC_SCORES = ("similarity",)
USER_CANCEL = "Job cancelled by user"
CLEANUP_CANCEL = "Cancelled by cleanup manager"
# errors the workflow writes on the parts a cancellation stopped
CANCELLED_PART = re.compile(r"Flywheel run (\S+ )?(was )?cancelled")


def cancelled_text(error):
    return bool(error) and bool(CANCELLED_PART.search(str(error)))


def summarize(job):
    """What a person needs from a job detail: per NIM, its state, scores per evaluation type,
    customization progress; every failure hidden inside a job that may say `completed`; and, for
    a cancelled job, the parts the cancellation stopped (`cancelled_parts`, not failures)."""
    failures, cancelled = [], []
    was_cancelled = job.get("status") == "cancelled"

    def failed(part, error):
        if was_cancelled and cancelled_text(error):
            cancelled.append({"part": part, "reason": error})
        else:
            failures.append({"part": part, "error": error})

    if job.get("status") == "failed" or (job.get("error") and job.get("status") != "cancelled"):
        failures.append({"part": "job", "error": job.get("error") or "job failed"})
    elif was_cancelled and job.get("error") and job.get("error") != USER_CANCEL:
        hint = " (the flywheel's worker restarted: pod restart, helm upgrade or node drain)"
        failures.append({"part": "job", "error": job["error"] + (hint if job["error"] == CLEANUP_CANCEL else "")})
    judge = job.get("llm_judge") or {}
    if judge.get("error") or judge.get("deployment_status") == "failed":
        failed("llm_judge %s" % judge.get("model_name"), judge.get("error") or "failed")
    nims = []
    for nim in job.get("nims") or []:
        name = nim.get("model_name")
        scores = {}
        for ev in nim.get("evaluations") or []:
            if ev.get("error"):
                failed("%s %s" % (name, ev.get("eval_type")), ev["error"])
            scores[ev.get("eval_type")] = dict(ev.get("scores") or {})
        customs = []
        for cu in nim.get("customizations") or []:
            if cu.get("error"):
                failed("%s customization" % name, cu["error"])
            customs.append(
                dict(
                    (k, cu.get(k))
                    for k in (
                        "progress",
                        "epochs_completed",
                        "steps_completed",
                        "customized_model",
                        "runtime_seconds",
                        "nmp_uri",
                        "error",
                    )
                )
            )
        if was_cancelled and nim.get("status") == "cancelled":
            cancelled.append({"part": name, "reason": nim.get("error") or "cancelled"})
        elif nim.get("status") == "failed" or nim.get("error"):
            failed(name, nim.get("error") or "NIM failed")
        nims.append(
            {
                "model_name": name,
                "status": nim.get("status"),
                "deployment_status": nim.get("deployment_status"),
                "runtime_seconds": nim.get("runtime_seconds"),
                "scores": scores,
                "customizations": customs,
                "error": nim.get("error"),
            }
        )
    return {
        "id": job.get("id"),
        "workload_id": job.get("workload_id"),
        "client_id": job.get("client_id"),
        "status": job.get("status"),
        "num_records": job.get("num_records"),
        "started_at": job.get("started_at"),
        "finished_at": job.get("finished_at"),
        "nims": nims,
        "failures": failures,
        "cancelled_parts": cancelled,
        "stage": stage(job),
    }


def stage(job):
    """Where a job is, in words, following upstream's phase order."""
    status = job.get("status")
    if status in ("pending", "queued"):
        return "pending (jobs run one at a time; waiting for the worker)"
    if status == "cancelled":
        return "cancelled by the user" if job.get("error") == USER_CANCEL else "cancelled: %s" % job.get("error")
    if status in TERMINAL:
        return status
    return _workflow_stage(job)


def _workflow_stage(job):
    judge = job.get("llm_judge")
    if judge is None or not job.get("datasets"):
        return "preparing datasets"
    if judge.get("deployment_status") != "ready":
        return "waiting for the LLM judge (%s %s: %s)" % (
            judge.get("type") or "",
            judge.get("model_name"),
            judge.get("deployment_status"),
        )
    for nim in job.get("nims") or []:
        if nim.get("status") in ("completed", "failed", "cancelled"):
            continue
        name = nim.get("model_name")
        if nim.get("status") == "running-evals":
            parts = [
                "%s %s%%" % (e.get("eval_type"), int(e.get("progress") or 0))
                for e in nim.get("evaluations") or []
                if not e.get("finished_at")
            ]
            parts += [
                "customization %s%% (epoch %s)" % (int(c.get("progress") or 0), c.get("epochs_completed"))
                for c in nim.get("customizations") or []
                if not c.get("finished_at")
            ]
            return "%s: %s" % (name, ", ".join(parts) or "evaluating")
        return "%s: deploying NIM (%s, %ss)" % (
            name,
            nim.get("deployment_status"),
            int(nim.get("runtime_seconds") or 0),
        )
    return "finalizing (every NIM is done; the flywheel's last step takes about a minute)"


def table(summary):
    """Rows for a results table: one per NIM and evaluation type."""
    rows = []
    for nim in summary["nims"]:
        for eval_type, scores in sorted(nim["scores"].items()):
            row = {
                "workload_id": summary["workload_id"],
                "client_id": summary["client_id"],
                "model": nim["model_name"],
                "eval_type": eval_type,
            }
            for key in TOOL_SCORES + GENERIC_SCORES:
                if key in scores:
                    row[key] = scores[key]
            rows.append(row)
    return rows
