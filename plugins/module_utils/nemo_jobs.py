# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""NeMo Evaluator and Customizer jobs (v1 API): create, find, poll, results, and diagnosis.

One job: talk to `/v1/evaluation/jobs` and `/v1/customization/jobs` on top of rest.RestClient,
resolve the `nmp_uri` a flywheel result carries, and turn a failed or stuck job into words a
person can act on (the service's own status log line, the log tail, and a hint for the causes the
field reports met: a base model missing from the Entity Store, the evaluator's missing secret
`delete`, "The training job is pending", NotEnoughResources).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import re
import time
import zipfile

from ansible.module_utils.urls import open_url

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError

EVAL_TERMINAL = ("completed", "failed", "cancelled")
CUST_TERMINAL = ("completed", "failed", "cancelled", "ready")
NMP_URI = re.compile(r"^(?P<base>https?://[^?#]*?)/v1/(?P<kind>evaluation|customization)/jobs/(?P<id>[^/?#]+)/?$")

# substring of the status detail or log -> what it means and what fixes it
HINTS = (
    (
        "NotEnoughResources",
        "the scheduler cannot place the training pod (not enough nvidia.com/gpu, or node selector/"
        "tolerations exclude the GPU nodes); free GPUs, lower num_gpus in the customization config, "
        "or check the Volcano queue",
    ),
    (
        "The training job is pending",
        "the training job never started: the entity-handler Job that downloads the dataset "
        "(cust-<id>-entity-handler-*) did not finish. Look at its pod log; "
        "`PermissionError: [Errno 13] Permission denied: '/scratch'` is fixed by the remediate role's "
        "scratch unit (MutatingAdmissionPolicy or Kyverno), a Pending pod by GPU/PVC capacity",
    ),
    (
        "Permission denied: '/scratch'",
        "the entity-handler Job has no /scratch volume: apply the remediate role's scratch unit",
    ),
    (
        "KeyError: 'state'",
        "the customizer read a NemoTrainingJob without status: make sure the NeMo Operator watches "
        "this namespace and never replace operator-created Jobs by hand",
    ),
    (
        'cannot delete resource "secrets"',
        "the evaluator's Role lacks `delete` on secrets: apply the remediate role's evaluator_rbac unit",
    ),
    (
        "/v1/models/",
        "the evaluator could not find the target model in the Entity Store: register it "
        "(dataflywheel.blueprint.nemo_model or the remediate role's entity_store unit) or give the "
        "target inline with api_endpoint",
    ),
    (
        "out of memory",
        "training ran out of GPU memory: lower micro_batch_size or max_seq_length, or use more GPUs",
    ),
)


class NemoJobError(Exception):
    pass


class NemoWaitTimeout(NemoJobError):
    def __init__(self, kind, job_id, last, diagnosis, timeout):
        self.kind = kind
        self.job_id = job_id
        self.last = last
        self.diagnosis = diagnosis
        super(NemoWaitTimeout, self).__init__(
            "Timed out after %ss waiting for %s job %s: %s" % (timeout, kind, job_id, diagnosis.get("summary"))
        )


def parse_nmp_uri(uri):
    """`http://host/v1/customization/jobs/cust-...` -> (base_url, kind, job_id)."""
    match = NMP_URI.match(str(uri or "").strip())
    if not match:
        raise NemoJobError(
            "nmp_uri=%r is not a NeMo job URL; expected <base>/v1/evaluation/jobs/<id> or "
            "<base>/v1/customization/jobs/<id> as the flywheel's results carry it" % (uri,)
        )
    return match.group("base"), match.group("kind"), match.group("id")


def needle_for(*texts):
    """The first HINTS needle found in the texts (the doctor files a failure under it), or None."""
    joined = " ".join(str(t) for t in texts if t)
    for needle, _hint in HINTS:
        if needle in joined:
            return needle
    return None


def hint_for(*texts):
    needle = needle_for(*texts)
    return dict(HINTS)[needle] if needle else None


def log_line(entry):
    """A customizer status log entry as one line: `<time> <message>: <detail>`."""
    text = "%s %s" % (entry.get("updated_at") or "", entry.get("message") or "")
    if entry.get("detail"):
        text += ": %s" % entry["detail"]
    return text.strip()


# ------------------------------------------------------------------------------ diagnosis
def diagnose_customization(status, log_entries=5):
    """What a customization status means. Returns {status, summary, cause, hint, status_logs}."""
    logs = list(status.get("status_logs") or [])
    last = logs[-1] if logs else {}
    cause = None
    for entry in reversed(logs):
        if entry.get("detail"):
            cause = entry
            break
    state = status.get("status")
    if state == "completed":
        summary = "completed (%s%%, %s epoch(s), %s step(s))" % (
            status.get("percentage_done"),
            status.get("epochs_completed"),
            status.get("steps_completed"),
        )
    elif state == "running":
        summary = "running: %s%%, epoch %s, step %s" % (
            status.get("percentage_done"),
            status.get("epochs_completed"),
            status.get("steps_completed"),
        )
    else:
        summary = "%s; customizer status log: %s" % (state, log_line(cause or last) if (cause or last) else "empty")
    return {
        "status": state,
        "summary": summary,
        "cause": log_line(cause) if cause else None,
        "last_log": log_line(last) if last else None,
        "hint": hint_for(*[e.get("message") for e in logs[-3:]] + [e.get("detail") for e in logs])
        if state not in ("completed", "running")
        else None,
        "status_logs": logs[-log_entries:] if log_entries else [],
    }


def diagnose_evaluation(job, log_tail=None):
    details = job.get("status_details") or {}
    state = job.get("status")
    message = details.get("message")
    if state == "completed":
        summary = "completed (%s samples)" % details.get("samples_processed")
    elif state == "running":
        summary = "running: %s%% (%s samples)" % (details.get("progress"), details.get("samples_processed"))
    else:
        summary = "%s: %s" % (state, message or "no status message")
    return {
        "status": state,
        "summary": summary,
        "message": message,
        "task_status": details.get("task_status") or {},
        "log_tail": list(log_tail or []),
        "hint": hint_for(message, *(log_tail or [])) if state not in ("completed", "running") else None,
    }


def flatten_results(results):
    """v1 results (tasks/groups -> metrics -> scores -> value) as {score: value} and
    {"<task>.<metric>.<score>": value}."""
    scores, full = {}, {}
    for section in ("tasks", "groups"):
        for task, data in ((results or {}).get(section) or {}).items():
            for metric, mdata in ((data or {}).get("metrics") or {}).items():
                for score, sdata in ((mdata or {}).get("scores") or {}).items():
                    value = sdata.get("value") if isinstance(sdata, dict) else sdata
                    full["%s.%s.%s" % (task, metric, score)] = value
                    scores.setdefault(score, value)
    return scores, full


# ------------------------------------------------------------------------------ client
class NemoJobsClient:
    def __init__(self, rest, sleep=time.sleep, clock=time.monotonic):
        self.rest = rest
        self.sleep = sleep
        self.clock = clock

    # ---------------------------------------------------------------- evaluator
    def list_evaluations(self):
        _status, data = self.rest.request("GET", "/v1/evaluation/jobs")
        return (data or {}).get("data") or []

    def find_evaluation(self, config, target, statuses=("created", "pending", "running", "completed")):
        """The newest job with this exact config and target in one of `statuses`, or None."""
        same = [
            j
            for j in self.list_evaluations()
            if j.get("config") == config and j.get("target") == target and j.get("status") in statuses
        ]
        return sorted(same, key=lambda j: j.get("created_at") or "")[-1] if same else None

    def create_evaluation(self, config, target, namespace=None):
        body = {"config": config, "target": target}
        if namespace:
            body["namespace"] = namespace
        _status, data = self.rest.request("POST", "/v1/evaluation/jobs", body=body, retry=False)
        return data

    def get_evaluation(self, job_id):
        try:
            _status, data = self.rest.request("GET", "/v1/evaluation/jobs/%s" % job_id)
        except RestError as err:
            if err.status == 404:
                return None
            raise
        return data

    def evaluation_results(self, job_id):
        _status, data = self.rest.request("GET", "/v1/evaluation/jobs/%s/results" % job_id)
        return data or {}

    def evaluation_log_tail(self, job_id, lines=20):
        """Last `lines` lines of the job's logs (v1 downloads them as a ZIP). Never raises: a
        missing log is reported as one line, so a diagnosis is not lost over it."""
        if lines <= 0:
            return []
        url = self.rest.url("/v1/evaluation/jobs/%s/logs" % job_id)
        headers = {"Accept": "application/zip, text/plain, */*"}
        headers.update(self.rest.headers)
        if self.rest.token:
            headers["Authorization"] = "Bearer %s" % self.rest.token
        try:
            resp = open_url(
                url,
                method="GET",
                headers=headers,
                validate_certs=self.rest.validate_certs,
                ca_path=self.rest.ca_path,
                timeout=self.rest.timeout,
                http_agent=self.rest.user_agent,
            )
            raw = resp.read()
        except Exception as err:  # noqa: BLE001 - the tail is a courtesy, the status is the diagnosis
            return ["(logs not available: %s)" % getattr(err, "reason", err)]
        text = []
        if raw[:2] == b"PK":
            try:
                with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                    for name in sorted(archive.namelist()):
                        if not name.endswith("/"):
                            text.extend(archive.read(name).decode("utf-8", "replace").splitlines())
            except zipfile.BadZipFile:
                return ["(logs not readable: not a valid ZIP)"]
        else:
            text = raw.decode("utf-8", "replace").splitlines()
        return [line for line in text if line.strip()][-lines:]

    def wait_evaluation(self, job_id, timeout, sleep_cap=30.0, progress=None):
        """Poll until completed/failed/cancelled. A job whose progress does not move is still
        waited on until `timeout`, then NemoWaitTimeout says where it stopped."""
        deadline = self.clock() + timeout
        delay = min(2.0, sleep_cap)
        while True:
            job = self.get_evaluation(job_id)
            if job is None:
                raise NemoJobError("evaluation job %s disappeared (deleted?)" % job_id)
            if progress:
                progress(job)
            if job.get("status") in EVAL_TERMINAL:
                return job
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise NemoWaitTimeout("evaluation", job_id, job, diagnose_evaluation(job), timeout)
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, sleep_cap)

    # ---------------------------------------------------------------- customizer
    def get_customization(self, job_id):
        try:
            _status, data = self.rest.request("GET", "/v1/customization/jobs/%s" % job_id)
        except RestError as err:
            if err.status == 404:
                return None
            raise
        return data

    def customization_status(self, job_id):
        try:
            _status, data = self.rest.request("GET", "/v1/customization/jobs/%s/status" % job_id)
        except RestError as err:
            if err.status == 404:
                return None
            raise
        return data

    def cancel_customization(self, job_id, settle=30.0):
        """Cancel a customization through the customizer's endpoint, POST
        /v1/customization/jobs/{id}/cancel (the flywheel v0.3.1 posts to /v1/customizations/{id}/cancel,
        which NeMo answers 404, so its training keeps the GPU), then wait up to `settle` seconds for
        the job to stop. Returns (status dict or None when NeMo does not know the job, whether this
        call cancelled it)."""
        status = self.customization_status(job_id)
        if status is None or status.get("status") in CUST_TERMINAL:
            return status, False
        try:
            self.rest.request("POST", "/v1/customization/jobs/%s/cancel" % job_id, retry=True)
        except RestError as err:
            if err.status not in (400, 409):  # finished meanwhile
                raise
        try:
            return self.wait_customization(
                job_id, settle, sleep_cap=5.0, until=("cancelled", "failed", "completed")
            ), True
        except NemoWaitTimeout as err:
            return err.last, True

    def wait_customization(self, job_id, timeout, sleep_cap=30.0, until=CUST_TERMINAL, log_entries=5):
        deadline = self.clock() + timeout
        delay = min(2.0, sleep_cap)
        while True:
            status = self.customization_status(job_id)
            if status is None:
                raise NemoJobError("customization job %s not found" % job_id)
            if status.get("status") in until:
                return status
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise NemoWaitTimeout(
                    "customization", job_id, status, diagnose_customization(status, log_entries), timeout
                )
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, sleep_cap)


# ------------------------------------------------------------------------------ flywheel results
def failed_nmp_parts(job):
    """Failed evaluations and customizations of a flywheel job detail that carry an nmp_uri:
    [(part, error, kind, nemo_job_id)] with `part` as flywheel_client.summarize names it."""
    out = []
    for nim in (job or {}).get("nims") or []:
        name = nim.get("model_name")
        for ev in nim.get("evaluations") or []:
            if ev.get("error") and ev.get("nmp_uri"):
                out.append(("%s %s" % (name, ev.get("eval_type")), ev["error"], ev["nmp_uri"]))
        for cu in nim.get("customizations") or []:
            if cu.get("error") and cu.get("nmp_uri"):
                out.append(("%s customization" % name, cu["error"], cu["nmp_uri"]))
    parsed = []
    for part, error, uri in out:
        try:
            _base, kind, job_id = parse_nmp_uri(uri)
        except NemoJobError:
            continue
        parsed.append((part, error, kind, job_id))
    return parsed


def enrich_summary(summary, job, client, log_lines=10):
    """Add the NeMo service's own diagnosis to a flywheel summary's failures, in place.

    The nmp_uri host in flywheel results is the in-cluster one the workers use; `client` talks to
    the NeMo base URL the controller can reach, so only the job id is taken from the URI. A
    failure that cannot be looked up keeps its text and gets `diagnosis.error`. Returns the
    number of failures enriched."""
    by_part = {}
    for part, error, kind, job_id in failed_nmp_parts(job):
        by_part.setdefault((part, error), (kind, job_id))
    count = 0
    for failure in summary.get("failures") or []:
        found = by_part.get((failure.get("part"), failure.get("error")))
        if not found:
            continue
        kind, job_id = found
        try:
            if kind == "customization":
                status = client.customization_status(job_id)
                if status is None:
                    raise NemoJobError("customization job %s not found at %s" % (job_id, client.rest.base_url))
                diagnosis = diagnose_customization(status)
                line = diagnosis["cause"] or diagnosis["last_log"]
                extra = "customizer status log: %s" % line if line else "customizer status: %s" % diagnosis["status"]
            else:
                ev = client.get_evaluation(job_id)
                if ev is None:
                    raise NemoJobError("evaluation job %s not found at %s" % (job_id, client.rest.base_url))
                diagnosis = diagnose_evaluation(ev, client.evaluation_log_tail(job_id, log_lines))
                extra = "evaluator: %s" % diagnosis["summary"]
        except (RestError, NemoJobError) as err:
            failure["diagnosis"] = {"job_id": job_id, "error": str(err)}
            continue
        diagnosis["job_id"] = job_id
        diagnosis["kind"] = kind
        failure["diagnosis"] = diagnosis
        failure["error"] = "%s [%s %s: %s%s]" % (
            failure["error"],
            kind,
            job_id,
            extra,
            "; hint: %s" % diagnosis["hint"] if diagnosis.get("hint") else "",
        )
        count += 1
    return count
