# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Client for the NVIDIA Data Flywheel REST API (`/api/jobs`), and what to make of its answers.

The API's quirks are handled here, once: POST answers `queued` but the job is stored `pending`;
ids that are not 24-hex ObjectIds get 400; cancelling a finished job is 400 (so is a second
cancel); deleting an unfinished job is 400 and deletion finishes in the background (observable
only as 404); jobs run one at a time; a `completed` job can hide failed NIMs, evaluations and
customizations. There is no health endpoint: readiness is `GET /openapi.json`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError, backoff_delays

TERMINAL = ("completed", "failed", "cancelled")
ACTIVE = ("pending", "running", "queued")
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
TOOL_SCORES = ("function_name", "function_name_and_args_accuracy", "tool_calling_correctness")
GENERIC_SCORES = ("similarity",)

# DataSplitConfig as the API validates it (src/config.py): name -> (type, check, message)
DATA_SPLIT_FIELDS = {
    "eval_size": (int, lambda v: v >= 1, "must be an integer >= 1"),
    "val_ratio": (float, lambda v: 0 <= v < 1, "must be a number with 0 <= val_ratio < 1"),
    "min_total_records": (int, lambda v: v >= 1, "must be an integer >= 1"),
    "random_seed": (int, lambda v: True, "must be an integer or null"),
    "limit": (int, lambda v: v >= 1, "must be an integer >= 1"),
    "parse_function_arguments": (bool, lambda v: True, "must be true or false"),
}


class FlywheelError(Exception):
    pass


def validate_data_split_config(config):
    """Check a data_split_config like the API would, before anything is sent. Returns a clean
    copy (strings from AWX surveys coerced) or raises FlywheelError naming the field."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise FlywheelError("data_split_config must be a mapping of %s" % ", ".join(sorted(DATA_SPLIT_FIELDS)))
    unknown = sorted(set(config) - set(DATA_SPLIT_FIELDS))
    if unknown:
        raise FlywheelError(
            "data_split_config has unknown field(s) %s; allowed: %s"
            % (", ".join(unknown), ", ".join(sorted(DATA_SPLIT_FIELDS)))
        )
    clean = {}
    for name, value in config.items():
        kind, check, message = DATA_SPLIT_FIELDS[name]
        if value is None and name == "random_seed":
            clean[name] = None
            continue
        try:
            coerced = _coerce(value, kind)
        except (TypeError, ValueError):
            raise FlywheelError("data_split_config.%s=%r %s" % (name, value, message)) from None
        if not check(coerced):
            raise FlywheelError("data_split_config.%s=%r %s" % (name, value, message))
        clean[name] = coerced
    if "eval_size" in clean and "min_total_records" in clean and clean["eval_size"] > clean["min_total_records"]:
        raise FlywheelError(
            "data_split_config.eval_size=%d is larger than min_total_records=%d: the evaluation "
            "set is taken from the records, so min_total_records must be at least eval_size"
            % (clean["eval_size"], clean["min_total_records"])
        )
    return clean


def _coerce(value, kind):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(value)
    if isinstance(value, bool):
        raise TypeError(value)
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    return float(value)


def is_object_id(job_id):
    return bool(job_id) and bool(OBJECT_ID.match(str(job_id)))


class FlywheelClient:
    def __init__(self, rest, sleep=time.sleep, clock=time.monotonic):
        self.rest = rest
        self.sleep = sleep
        self.clock = clock

    # -------------------------------------------------------------- plain calls
    def ready(self):
        """True when the API answers (upstream has no /health; /openapi.json needs no database)."""
        try:
            status, _data = self.rest.request("GET", "/openapi.json")
            return status == 200
        except RestError:
            return False

    def list_jobs(self):
        _status, data = self.rest.request("GET", "/api/jobs")
        return (data or {}).get("jobs", [])

    def get_job(self, job_id):
        if not is_object_id(job_id):
            raise FlywheelError("job_id %r is not a flywheel job id (24 hexadecimal characters)" % job_id)
        try:
            _status, data = self.rest.request("GET", "/api/jobs/%s" % job_id)
        except RestError as err:
            if err.status == 404:
                return None
            raise
        return data

    def find_active(self, workload_id, client_id, jobs=None, statuses=ACTIVE):
        """The newest job for this workload/client in one of `statuses` (default pending/running)."""
        jobs = self.list_jobs() if jobs is None else jobs
        mine = [
            j
            for j in jobs
            if j.get("workload_id") == workload_id and j.get("client_id") == client_id and j.get("status") in statuses
        ]
        return sorted(mine, key=lambda j: j.get("started_at") or "")[-1] if mine else None

    def create_job(self, workload_id, client_id, data_split_config=None):
        """Start a job, at most once. POST is not idempotent: after an ambiguous failure (timeout,
        dropped connection, 5xx) the job list is compared with the one taken before the first try,
        and a new job for this workload/client is taken as ours instead of posting again.
        Returns (job_id, attempts)."""
        body = {"workload_id": workload_id, "client_id": client_id}
        if data_split_config is not None:
            body["data_split_config"] = data_split_config
        before = set(j["id"] for j in self.list_jobs())
        delays = backoff_delays(self.rest.retries, self.rest.backoff_base, self.rest.backoff_cap, self.rest.rng)
        attempts = 0
        while True:
            attempts += 1
            try:
                _status, data = self.rest.request("POST", "/api/jobs", body=body, retry=False)
                return data["id"], attempts
            except RestError as err:
                if not err.ambiguous:
                    raise
                created = self._created_since(before, workload_id, client_id)
                if created:
                    return created, attempts
                delay = next(delays, None)
                if delay is None:
                    raise
                self.sleep(delay)

    def _created_since(self, before, workload_id, client_id):
        try:
            jobs = self.list_jobs()
        except RestError:
            return None
        new = [
            j
            for j in jobs
            if j["id"] not in before and j.get("workload_id") == workload_id and j.get("client_id") == client_id
        ]
        return sorted(new, key=lambda j: j.get("started_at") or "")[-1]["id"] if new else None

    def cancel_job(self, job_id):
        """Returns True if a cancellation was requested, False if the job had already finished
        (400 "already finished" is the API's answer to a second cancel)."""
        try:
            self.rest.request("POST", "/api/jobs/%s/cancel" % job_id, retry=True)
            return True
        except RestError as err:
            if err.status == 400 and "finished" in str(err.detail):
                return False
            raise

    def delete_job(self, job_id):
        self.rest.request("DELETE", "/api/jobs/%s" % job_id)

    # -------------------------------------------------------------- waiting
    def wait(self, job_ids, timeout, sleep_cap=30.0, until=TERMINAL, progress=None):
        """Poll until every job is in `until` (or gone, for deletion). One list request per poll,
        whatever the number of jobs; the job's own GET only once at the end for details.
        Delays grow 2, 4, 8 ... seconds up to sleep_cap. Returns {id: job or None}."""
        deadline = self.clock() + timeout
        delay = min(2.0, sleep_cap)
        pending = set(job_ids)
        latest = {}
        while True:
            jobs = {j["id"]: j for j in self.list_jobs()}
            for job_id in list(pending):
                job = jobs.get(job_id)
                latest[job_id] = job
                if job is None and until == ("deleted",):
                    pending.discard(job_id)
                elif job is not None and job.get("status") in until:
                    pending.discard(job_id)
            if progress:
                progress(latest)
            if not pending:
                return latest
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise WaitTimeout(pending, latest)
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, sleep_cap)


class WaitTimeout(FlywheelError):
    def __init__(self, pending, latest):
        self.pending = sorted(pending)
        self.latest = latest
        parts = []
        for job_id in self.pending:
            job = latest.get(job_id)
            parts.append("%s is %s" % (job_id, job.get("status") if job else "not listed"))
        super(WaitTimeout, self).__init__("timed out waiting: " + "; ".join(parts))


# ------------------------------------------------------------------ results
def summarize(job):
    """What a person needs from a job detail: per NIM, its state, scores per evaluation type,
    customization progress, and every failure hidden inside a job that may say `completed`."""
    failures = []
    if job.get("status") == "failed" or (job.get("error") and job.get("status") != "cancelled"):
        failures.append({"part": "job", "error": job.get("error") or "job failed"})
    judge = job.get("llm_judge") or {}
    if judge.get("error") or judge.get("deployment_status") == "failed":
        failures.append({"part": "llm_judge %s" % judge.get("model_name"), "error": judge.get("error") or "failed"})
    nims = []
    for nim in job.get("nims") or []:
        name = nim.get("model_name")
        scores = {}
        for ev in nim.get("evaluations") or []:
            if ev.get("error"):
                failures.append({"part": "%s %s" % (name, ev.get("eval_type")), "error": ev["error"]})
            scores[ev.get("eval_type")] = dict(ev.get("scores") or {})
        customs = []
        for cu in nim.get("customizations") or []:
            if cu.get("error"):
                failures.append({"part": "%s customization" % name, "error": cu["error"]})
            customs.append(
                {
                    k: cu.get(k)
                    for k in (
                        "progress",
                        "epochs_completed",
                        "steps_completed",
                        "customized_model",
                        "runtime_seconds",
                        "error",
                    )
                }
            )
        if nim.get("status") == "failed" or nim.get("error"):
            failures.append({"part": "%s" % name, "error": nim.get("error") or "NIM failed"})
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
        "stage": stage(job),
    }


def stage(job):
    """Where a job is, in words: 'queued behind other jobs', 'meta/llama...: base-eval 40%', ..."""
    status = job.get("status")
    if status in ("pending", "queued"):
        return "pending (jobs run one at a time; waiting for the worker)"
    if status in TERMINAL:
        return status
    for nim in job.get("nims") or []:
        if nim.get("status") in ("pending", "deploying-nim"):
            return "%s: deploying NIM (%s)" % (nim.get("model_name"), nim.get("deployment_status"))
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
            return "%s: %s" % (nim.get("model_name"), ", ".join(parts) or "evaluating")
    return "running: preparing datasets / waiting for the LLM judge"


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
