# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Client for the NVIDIA Data Flywheel REST API (`/api/jobs`): requests, waiting, and input checks.

The API's quirks are handled here, once: POST answers `queued` but the job is stored `pending`;
ids are 24-hex ObjectIds in either case (the answers carry lower case), anything else gets 400;
cancelling a finished job is 400 (so is a second cancel); deleting an unfinished job is 400 and
deletion finishes in the background (observable only as 404); jobs run one at a time; a POST that
fails after the job was stored (the task broker down) leaves a job no worker will ever run. There
is no health endpoint: readiness is `GET /openapi.json`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
import time

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError, backoff_delays

TERMINAL = ("completed", "failed", "cancelled")
ACTIVE = ("pending", "running", "queued")
OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
ORPHAN_TIMEOUT = 120

# DataSplitConfig (upstream src/config.py) as the API validates a job's override: only val_ratio has
# bounds, and keys left out take these pydantic defaults (not the deployed config.yaml's).
DATA_SPLIT_DEFAULTS = {
    "eval_size": 20,
    "val_ratio": 0.1,
    "min_total_records": 50,
    "random_seed": None,
    "limit": 10000,
    "parse_function_arguments": True,
}
TRUE_WORDS = ("1", "on", "t", "true", "y", "yes")
FALSE_WORDS = ("0", "off", "f", "false", "n", "no")
INT_TEXT = re.compile(r"^[+-]?\d(_?\d)*(\.0*)?$")


class FlywheelError(Exception):
    pass


# ------------------------------------------------------------------ inputs
def _as_int(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and INT_TEXT.match(value.strip()):
        return int(value.strip().partition(".")[0])
    raise ValueError(value)


def _as_float(value):
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise ValueError(value)


def _as_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in TRUE_WORDS + FALSE_WORDS:
        return value.lower() in TRUE_WORDS
    raise ValueError(value)


SPLIT_RULES = {
    "eval_size": (_as_int, "must be an integer"),
    "val_ratio": (_as_float, "must be a number with 0 <= val_ratio < 1"),
    "min_total_records": (_as_int, "must be an integer"),
    "random_seed": (_as_int, "must be an integer or null"),
    "limit": (_as_int, "must be an integer"),
    "parse_function_arguments": (_as_bool, "must be true or false"),
}


def validate_data_split_config(config):
    """Check a job's data_split_config with the API's own rules (upstream's pydantic model in lax
    mode: AWX survey strings such as "20" or "false" pass and are sent as numbers/booleans), and
    the one relation the flywheel's data validator refuses every job for: limit below
    min_total_records (keys left out count with the API's defaults). No stricter: eval_size 0 and
    eval_size above min_total_records are accepted, as the API accepts them. Returns a clean copy
    or raises FlywheelError naming the field."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise FlywheelError("data_split_config must be a mapping of %s" % ", ".join(sorted(SPLIT_RULES)))
    unknown = sorted(set(config) - set(SPLIT_RULES))
    if unknown:
        raise FlywheelError(
            "data_split_config has unknown field(s) %s (the API would ignore them silently); allowed: %s"
            % (", ".join(unknown), ", ".join(sorted(SPLIT_RULES)))
        )
    clean = {}
    for name, value in config.items():
        convert, message = SPLIT_RULES[name]
        if value is None and name == "random_seed":
            clean[name] = None
            continue
        try:
            clean[name] = convert(value)
        except (TypeError, ValueError):
            raise FlywheelError("data_split_config.%s=%r %s" % (name, value, message)) from None
        if name == "val_ratio" and not 0 <= clean[name] < 1:
            raise FlywheelError("data_split_config.%s=%r %s" % (name, value, message))
    merged = dict(DATA_SPLIT_DEFAULTS, **clean)
    if merged["limit"] < merged["min_total_records"]:
        raise FlywheelError(
            "data_split_config.limit=%d is below min_total_records=%d%s: the flywheel accepts the job, then fails "
            "it with 'limit cannot be less than the minimum number of records'. Raise limit or lower "
            "min_total_records"
            % (
                merged["limit"],
                merged["min_total_records"],
                ""
                if "limit" in clean and "min_total_records" in clean
                else " (a key left out takes the API's default)",
            )
        )
    return clean


def data_split_warnings(clean):
    """Values the API takes but no job can use sensibly (said, not refused)."""
    out = []
    for name in ("eval_size", "min_total_records"):
        if (clean or {}).get(name) is not None and clean[name] < 0:
            out.append(
                "data_split_config.%s=%d is negative; the API accepts it, the split makes no sense"
                % (name, clean[name])
            )
    return out


def normalize_id(job_id):
    """The API takes ObjectIds in either case and answers in lower case."""
    return str(job_id).strip().lower()


def is_object_id(job_id):
    return bool(job_id) and bool(OBJECT_ID.match(str(job_id).strip()))


def parse_time(text):
    """A timestamp as the API serialises it (naive UTC, optional fraction) -> naive datetime or None."""
    if not text:
        return None
    text = str(text).replace("Z", "").split("+", 1)[0]
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# ------------------------------------------------------------------ orphans
def orphan_evidence(job, jobs, now, timeout=ORPHAN_TIMEOUT):
    """None, or why `job` (pending) looks like one no worker will run: no job is running and the
    worker has had nothing to do (no job started or finished) for `timeout` seconds while this one
    waited. `jobs` is the whole list; `now` the current naive UTC time."""
    if job is None or job.get("status") not in ("pending", "queued"):
        return None
    if any(j.get("status") == "running" for j in jobs):
        return None
    created = parse_time(job.get("started_at"))
    if created is None:
        return None
    marks = [created] + [parse_time(j.get("finished_at")) for j in jobs if j.get("finished_at")]
    idle_since = max(m for m in marks if m is not None)
    idle = (now - idle_since).total_seconds()
    if idle < timeout:
        return None
    return {
        "job_id": job.get("id"),
        "pending_seconds": int((now - created).total_seconds()),
        "idle_seconds": int(idle),
        "idle_since": idle_since.isoformat(),
    }


class OrphanedJob(FlywheelError):
    def __init__(self, job, evidence, post_error=None):
        self.job = job
        self.evidence = evidence
        self.post_error = post_error
        cause = (
            "the API stored the job but answered %s, so it could not queue it for the worker (upstream "
            "inserts the job, then hands it to Celery; a task broker (Redis) that is down fails that step)" % post_error
            if post_error
            else "the API could not queue it for the worker (its task broker, Redis, was unreachable when "
            "the job was posted: the POST answered 500) or the flywheel's parent worker "
            "(df-celery-parent-worker) is down"
        )
        super(OrphanedJob, self).__init__(
            "Job %s (%s/%s) has been pending for %ss while no job ran (the worker has had nothing to do "
            "since %s): no worker picked it up. Likely cause: %s. Way out: check the df-redis and "
            "df-celery-parent-worker pods, then rerun with replace_orphaned=true (cancels and deletes "
            "this job and starts a new one), or remove it with state=absent and cancel_running=true."
            % (
                job.get("id"),
                job.get("workload_id"),
                job.get("client_id"),
                evidence["pending_seconds"],
                evidence["idle_since"],
                cause,
            )
        )


# ------------------------------------------------------------------ client
class FlywheelClient:
    def __init__(self, rest, sleep=time.sleep, clock=time.monotonic, now=utcnow):
        self.rest = rest
        self.sleep = sleep
        self.clock = clock
        self.now = now
        # the next pause the last wait() would have taken: hand it to the next call (first_delay)
        # so a wait split into progress steps keeps its backoff instead of restarting at 2 s
        self.next_delay = None
        self.details = {}  # job id -> the detail read by the last poll (saves a GET at the end)

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

    def get_job(self, job_id, cached=False):
        """The job's detail, or None when the API answers 404. `cached`: the one the last poll read."""
        if not is_object_id(job_id):
            raise FlywheelError("job_id %r is not a flywheel job id (24 hexadecimal characters)" % job_id)
        job_id = normalize_id(job_id)
        if cached and job_id in self.details:
            return self.details[job_id]
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

    def create_job(self, workload_id, client_id, data_split_config=None, jobs=None):
        """Start a job, at most once. POST is not idempotent: after an ambiguous failure (timeout,
        dropped connection, 5xx) the job list is compared with the one taken before the first try
        (`jobs`, when the caller has just read it), and a new job for this workload/client is taken
        as ours instead of posting again.
        Returns (job_id, attempts, error): error is the failure of a POST whose job was found
        stored anyway (upstream answers 500 when it stored the job but could not queue it)."""
        body = {"workload_id": workload_id, "client_id": client_id}
        if data_split_config is not None:
            body["data_split_config"] = data_split_config
        before = set(j["id"] for j in (self.list_jobs() if jobs is None else jobs))
        delays = backoff_delays(self.rest.retries, self.rest.backoff_base, self.rest.backoff_cap, self.rest.rng)
        attempts = 0
        while True:
            attempts += 1
            try:
                _status, data = self.rest.request("POST", "/api/jobs", body=body, retry=False)
                return data["id"], attempts, None
            except RestError as err:
                if not err.ambiguous:
                    raise
                created = self._created_since(before, workload_id, client_id)
                if created:
                    return created, attempts, "HTTP %s" % err.status if err.status else str(err)
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
            self.rest.request("POST", "/api/jobs/%s/cancel" % normalize_id(job_id), retry=True)
            return True
        except RestError as err:
            if err.status == 400 and "finished" in str(err.detail):
                return False
            raise

    def delete_job(self, job_id):
        self.rest.request("DELETE", "/api/jobs/%s" % normalize_id(job_id))

    # -------------------------------------------------------------- waiting
    def wait(
        self,
        job_ids,
        timeout,
        sleep_cap=30.0,
        until=TERMINAL,
        progress=None,
        first_delay=None,
        orphan_timeout=None,
        listed=None,
    ):
        """Poll until every job is in `until` (or gone, for `until=("deleted",)`). One request per
        poll whatever the number of jobs: the list, or, for one running job, its detail (which
        also says what it is doing, so no second read is needed at the end). Delays grow 2, 4, 8
        ... seconds up to sleep_cap; `first_delay` (a previous call's next_delay) is the pause
        before the first poll and the backoff continues from it. `listed`, a GET /api/jobs answer
        the caller has just read, is taken as the first poll (the caller then has paused
        first_delay before reading it). With `orphan_timeout`, a pending job no worker picks up
        raises OrphanedJob. Returns {id: job or None}."""
        deadline = self.clock() + timeout
        pending = set(normalize_id(j) for j in job_ids)
        latest = {}
        delay = min(2.0, sleep_cap)
        if first_delay:
            delay = min(float(first_delay), sleep_cap)
            if listed is None:
                self.pause_first(first_delay, sleep_cap, deadline - self.clock())
            delay = min(delay * 2, sleep_cap)
        self.details = {}
        while True:
            self._poll(pending, latest, until, orphan_timeout, listed)
            listed = None
            if progress:
                progress(latest)
            if not pending:
                self.next_delay = None
                return latest
            remaining = deadline - self.clock()
            if remaining <= 0:
                self.next_delay = delay
                raise WaitTimeout(pending, latest)
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, sleep_cap)

    def pause_first(self, first_delay, sleep_cap, timeout):
        """The pause before the first poll of a wait continued from an earlier one (`first_delay`, its
        next_delay), within the cap and the time left."""
        self.sleep(min(float(first_delay), sleep_cap, max(0.0, timeout)))

    def _poll(self, pending, latest, until, orphan_timeout, listed=None):
        single = next(iter(pending)) if len(pending) == 1 and listed is None else None
        if single and until != ("deleted",) and (latest.get(single) or {}).get("status") == "running":
            job = self.get_job(single)  # one running job: its detail costs no more than the list
            self.details[single] = job
            jobs = {single: job} if job else {}
        else:
            listed = self.list_jobs() if listed is None else listed
            jobs = dict((j["id"], j) for j in listed)
            for job_id in pending:
                if orphan_timeout and job_id in jobs:
                    evidence = orphan_evidence(jobs[job_id], listed, self.now(), orphan_timeout)
                    if evidence:
                        raise OrphanedJob(jobs[job_id], evidence)
        for job_id in list(pending):
            job = jobs.get(job_id)
            latest[job_id] = job
            if job is None and until == ("deleted",):
                pending.discard(job_id)
            elif job is not None and job.get("status") in until:
                pending.discard(job_id)


class WaitTimeout(FlywheelError):
    def __init__(self, pending, latest):
        self.pending = sorted(pending)
        self.latest = latest
        parts = []
        for job_id in self.pending:
            job = latest.get(job_id)
            parts.append("%s is %s" % (job_id, job.get("status") if job else "not listed"))
        super(WaitTimeout, self).__init__("timed out waiting: " + "; ".join(parts))
