# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the flywheel_job and flywheel_job_info modules do, given their AnsibleModule: the
modules parse arguments and call run_job()/run_job_info(); every decision lives here.

flywheel_job states: present (start, or reuse a pending/running job; an orphaned pending job is
reported, or replaced when asked), cancelled (cancel, and cancel on NeMo the customizations the
flywheel leaves running), absent (delete, cancelling first when asked).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import (
    TERMINAL,
    FlywheelError,
    OrphanedJob,
    WaitTimeout,
    data_split_warnings,
    is_object_id,
    normalize_id,
    orphan_evidence,
    validate_data_split_config,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_module import (
    client_from,
    diagnose_failures,
    release_customizations,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_summary import summarize, table
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError

DATA_SPLIT_KEYS = ("eval_size", "val_ratio", "min_total_records", "random_seed", "limit", "parse_function_arguments")
JOB_STATES = ("pending", "running", "completed", "failed", "cancelled")


def check_ids(module, *names):
    for name in names:
        values = module.params.get(name)
        for value in values if isinstance(values, list) else [values] if values else []:
            if not is_object_id(value):
                module.fail_json(
                    msg="%s=%r is not a flywheel job id: use the 24 hexadecimal characters the API returned "
                    "(for example from a registered flywheel_job result's job.id)" % (name, value)
                )


# ------------------------------------------------------------------ flywheel_job
class JobRun:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.client = client_from(module)
        self.orphans_replaced = []

    def wait(self, job_ids, **kw):
        return self.client.wait(
            job_ids,
            timeout=self.p["wait_timeout"],
            sleep_cap=self.p["wait_sleep"],
            orphan_timeout=self.p["orphan_timeout"],
            **kw,
        )

    def finish(self, job_id, changed, extra=None):
        """Fetch the detail (or reuse the one the wait read), summarise, apply fail_on_failed_parts."""
        module = self.module
        job = self.client.get_job(job_id, cached=True) or {}
        summary = summarize(job)
        diagnose_failures(module, job, summary)
        result = dict(changed=changed, job=job, jobs=[job_id], summary=summary, table=table(summary))
        result.update(extra or {})
        if self.orphans_replaced:
            result["orphans_replaced"] = self.orphans_replaced
        if job.get("status") in TERMINAL and summary["failures"]:
            lines = ["%s: %s" % (f["part"], f["error"]) for f in summary["failures"]]
            if self.p["fail_on_failed_parts"] and self.p["state"] == "present":
                module.fail_json(
                    msg="Job %s is %s but %d part(s) failed: %s"
                    % (job_id, job.get("status"), len(lines), " | ".join(lines)),
                    **result,
                )
            module.warn("Job %s: %d part(s) failed: %s" % (job_id, len(lines), " | ".join(lines)))
        return result

    # -------------------------------------------------------------- present
    def present(self, dsc):
        p, client = self.p, self.client
        extra, post_error = {}, None
        if p["job_id"]:
            job = client.get_job(p["job_id"])
            if job is None:
                self.module.fail_json(
                    msg="Job %s not found (deleted?). Remove job_id to start a new one." % p["job_id"]
                )
            job_id, changed = normalize_id(p["job_id"]), False
            self.check_orphan(job)
        else:
            jobs = client.list_jobs()
            statuses = ("pending", "running", "queued") + (("completed",) if p["reuse_completed"] else ())
            active = (
                client.find_active(p["workload_id"], p["client_id"], jobs, statuses=statuses) if p["reuse"] else None
            )
            if active and self.check_orphan(active, jobs):
                active = None  # replaced: start again
            if active:
                job_id, changed = active["id"], False
            elif self.module.check_mode:
                return dict(
                    changed=True,
                    job={},
                    jobs=[],
                    summary={},
                    table=[],
                    msg="would start a job for %s/%s" % (p["workload_id"], p["client_id"]),
                )
            else:
                job_id, attempts, post_error = client.create_job(p["workload_id"], p["client_id"], dsc, jobs)
                changed, extra = True, dict(attempts=attempts)
                if post_error:
                    self.module.warn(
                        "POST /api/jobs answered %s, but the API had stored job %s: upstream stores a job "
                        "before it queues it for the worker, so when its task broker (Redis) is down no worker "
                        "will run it. The module took the stored job; if it stays pending while no job runs, "
                        "it is reported as orphaned after orphan_timeout=%ss."
                        % (post_error, job_id, p["orphan_timeout"])
                    )
        if p["wait"]:
            job_id = self.wait_present(job_id, post_error)
        result = self.finish(job_id, changed, extra)
        job = result["job"]
        if p["wait"] and job.get("status") in ("failed", "cancelled") and p["fail_on_failed_parts"]:
            self.module.fail_json(msg="Job %s ended %s: %s" % (job_id, job["status"], job.get("error")), **result)
        return result

    def wait_present(self, job_id, post_error):
        try:
            self.wait([job_id])
        except OrphanedJob as err:
            if post_error:
                err = OrphanedJob(err.job, err.evidence, post_error)
            if not self.p["replace_orphaned"] or self.orphans_replaced or self.p["job_id"]:
                raise err
            self.replace(err.job)
            job_id, _attempts, _post_error = self.client.create_job(
                self.p["workload_id"] or err.job.get("workload_id"),
                self.p["client_id"] or err.job.get("client_id"),
                self.dsc,
            )
            self.wait([job_id])
        return job_id

    def check_orphan(self, job, jobs=None):
        """An orphaned pending job: fail, or (replace_orphaned) cancel and delete it and return True."""
        if job.get("status") not in ("pending", "queued"):
            return False
        jobs = self.client.list_jobs() if jobs is None else jobs
        evidence = orphan_evidence(job, jobs, self.client.now(), self.p["orphan_timeout"])
        if not evidence:
            return False
        if not self.p["replace_orphaned"] or self.p["job_id"]:
            raise OrphanedJob(job, evidence)
        if self.module.check_mode:
            self.module.warn("check mode: orphaned job %s would be cancelled, deleted and started again" % job["id"])
            return False
        self.replace(job)
        return True

    def replace(self, job):
        """Cancel and delete an orphaned job (the API refuses to delete an unfinished one)."""
        client = self.client
        client.cancel_job(job["id"])
        client.wait([job["id"]], timeout=self.p["wait_timeout"], sleep_cap=self.p["wait_sleep"])
        client.delete_job(job["id"])
        self.orphans_replaced.append(job["id"])
        self.module.warn(
            "Job %s was orphaned (no worker ever ran it): cancelled and deleted it, starting a new one" % job["id"]
        )

    # -------------------------------------------------------------- cancelled / absent
    def targets(self):
        p = self.p
        if p["job_id"]:
            job = self.client.get_job(p["job_id"])
            return [job] if job else []
        return [
            j
            for j in self.client.list_jobs()
            if j.get("workload_id") == p["workload_id"] and j.get("client_id") == p["client_id"]
        ]

    def cancelled(self, _dsc):
        p, client, module = self.p, self.client, self.module
        jobs = [j for j in self.targets() if not j.get("finished_at") and j.get("status") not in TERMINAL]
        if not jobs or module.check_mode:
            return dict(changed=bool(jobs), jobs=[j["id"] for j in jobs], job=jobs[0] if jobs else {})
        changed = False
        for job in jobs:
            changed = client.cancel_job(job["id"]) or changed
        if p["wait"]:
            client.wait([j["id"] for j in jobs], timeout=p["wait_timeout"], sleep_cap=p["wait_sleep"])
        result = self.finish(jobs[-1]["id"], changed)
        result["jobs"] = [j["id"] for j in jobs]
        released = []
        for job in jobs:
            detail = result["job"] if job["id"] == result["job"].get("id") else client.get_job(job["id"])
            released += release_customizations(module, detail or {})
        result["nemo_customizations"] = released
        return result

    def absent(self, _dsc):
        p, client, module = self.p, self.client, self.module
        jobs = self.targets()
        running = [j for j in jobs if not j.get("finished_at")]
        if running and not p["cancel_running"]:
            module.fail_json(
                msg="Job(s) %s are still %s: the API refuses to delete unfinished jobs. Cancel them first "
                "(state=cancelled) or set cancel_running=true."
                % (", ".join(j["id"] for j in running), "/".join(sorted(set(j["status"] for j in running))))
            )
        if not jobs or module.check_mode:
            return dict(changed=bool(jobs), jobs=[j["id"] for j in jobs], job={})
        if running:
            for job in running:
                client.cancel_job(job["id"])
            client.wait([j["id"] for j in running], timeout=p["wait_timeout"], sleep_cap=p["wait_sleep"])
        released = []
        for job in jobs:
            released += release_customizations(module, client.get_job(job["id"]) or {})
            try:
                client.delete_job(job["id"])
            except RestError as err:
                if err.status != 404:
                    raise
        client.wait([j["id"] for j in jobs], timeout=p["wait_timeout"], sleep_cap=p["wait_sleep"], until=("deleted",))
        return dict(changed=True, jobs=[j["id"] for j in jobs], job={}, nemo_customizations=released)

    def run(self):
        p, module = self.p, self.module
        check_ids(module, "job_id")
        raw = p["data_split_config"]
        try:
            self.dsc = validate_data_split_config(
                dict((k, v) for k, v in raw.items() if v is not None) if raw else None
            )
        except FlywheelError as err:
            module.fail_json(msg="%s. Fix the task's data_split_config (nothing was sent)." % err)
        for warning in data_split_warnings(self.dsc):
            module.warn(warning)
        try:
            result = dict(present=self.present, cancelled=self.cancelled, absent=self.absent)[p["state"]](self.dsc)
        except OrphanedJob as err:
            module.fail_json(msg=str(err), job=err.job, orphan=err.evidence, jobs=[err.job.get("id")])
        except WaitTimeout as err:
            job = err.latest.get(err.pending[0]) or {}
            detail = self.client.get_job(job["id"], cached=True) if job.get("id") else None
            where = summarize(detail)["stage"] if detail else job.get("status")
            module.fail_json(
                msg="Timed out after %ss waiting for job %s: it is %s. Raise wait_timeout or check the "
                "flywheel workers." % (p["wait_timeout"], err.pending[0], where),
                job=detail or job,
                summary=summarize(detail) if detail else {},
            )
        except (RestError, FlywheelError) as err:
            module.fail_json(msg=str(err))
        module.exit_json(**result)


def run_job(module):
    JobRun(module).run()


# ------------------------------------------------------------------ flywheel_job_info
def select(jobs, p):
    wanted = set(normalize_id(i) for i in ([p["job_id"]] if p["job_id"] else []) + list(p["job_ids"] or []))
    out = []
    for job in jobs:
        if wanted and job.get("id") not in wanted:
            continue
        if p["workload_id"] and job.get("workload_id") != p["workload_id"]:
            continue
        if p["client_id"] and job.get("client_id") != p["client_id"]:
            continue
        if p["status"] and job.get("status") not in p["status"]:
            continue
        out.append(job)
    return out, wanted


def run_job_info(module):
    p = module.params
    check_ids(module, "job_id", "job_ids")
    client = client_from(module)
    started = client.clock()
    timed_out = False
    result = dict(changed=False)
    delay = p["poll_delay"] if p["wait"] else None
    try:
        if delay:  # a wait continued from an earlier call: this listing is its next poll, due after the pause
            client.pause_first(delay, p["wait_sleep"], p["wait_timeout"])
        listed = client.list_jobs()
        jobs, wanted = select(listed, p)
        missing = sorted(wanted - set(j["id"] for j in listed))
        if missing:
            message = "job(s) %s do not exist (GET /api/jobs/<id> answers 404: never created, or deleted)" % ", ".join(
                missing
            )
            if p["fail_on_missing"]:
                module.fail_json(msg=message + ". Set fail_on_missing=false to get the others.", missing=missing)
            module.warn(message)
        result["missing"] = missing
        if p["wait"] and jobs:
            try:
                latest = client.wait(
                    [j["id"] for j in jobs],
                    timeout=p["wait_timeout"] - (client.clock() - started),
                    sleep_cap=p["wait_sleep"],
                    first_delay=delay,
                    orphan_timeout=p["orphan_timeout"],
                    listed=listed,
                )
            except WaitTimeout as err:
                if p["fail_on_timeout"]:
                    raise
                latest, timed_out = err.latest, True
            jobs = [latest.get(j["id"]) or j for j in jobs]
        result.update(jobs=[listed_fields(j) for j in jobs], timed_out=timed_out, poll_delay=client.next_delay)
        if p["details"]:
            summaries = []
            for listed in jobs:
                detail = client.get_job(listed["id"], cached=True) or listed
                summary = summarize(detail)
                diagnose_failures(module, detail, summary)
                summaries.append(summary)
            result["summaries"] = summaries
            result["table"] = [row for s in summaries for row in table(s)]
    except OrphanedJob as err:
        module.fail_json(msg=str(err), orphan=err.evidence, requests=client.rest.requests_made)
    except WaitTimeout as err:
        module.fail_json(msg="Timed out after %ss: %s" % (p["wait_timeout"], err), requests=client.rest.requests_made)
    except (RestError, FlywheelError) as err:
        module.fail_json(msg=str(err))
    result["requests"] = client.rest.requests_made
    module.exit_json(**result)


LIST_FIELDS = ("id", "workload_id", "client_id", "status", "started_at", "finished_at", "datasets", "error")


def listed_fields(job):
    """A job as GET /api/jobs lists it (a detail read while waiting carries more)."""
    return dict((k, job.get(k)) for k in LIST_FIELDS if k in job)
