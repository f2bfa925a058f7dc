#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: flywheel_job
short_description: Start, cancel or delete a Data Flywheel job, and wait for it
version_added: 0.1.0
description:
  - Starts a flywheel job for a workload/client (C(POST /api/jobs)), cancels it or deletes it,
    optionally waiting for the result.
  - Idempotent. O(state=present) reuses a pending or running job for the same workload and
    client instead of starting a second one. Starting is never blindly retried; after an
    ambiguous failure (timeout, dropped connection, 5xx) the job list is checked for a job the
    attempt created before posting again, so flaky networks do not create duplicates.
  - A C(completed) job can hide failed NIMs, evaluations and customizations. With O(wait=true)
    the module returns a RV(summary) and fails, listing each failed part, unless
    O(fail_on_failed_parts=false).
author: dataflywheel.blueprint maintainers (@dataflywheel)
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.flywheel
  - dataflywheel.blueprint.rest_api.nemo_diagnosis
  - dataflywheel.blueprint.rest_api.wait
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Check mode never POSTs or DELETEs; it reports what would change.
  diff_mode:
    support: none
    description: Jobs are not diffed.
options:
  state:
    description:
      - V(present) starts (or reuses) a job. V(cancelled) cancels the job; a job that already
        finished is left as it is. V(absent) deletes the job and waits until the API answers 404.
    type: str
    choices: [present, cancelled, absent]
    default: present
  workload_id:
    description: Workload of the job. Required with O(state=present) unless O(job_id) is given.
    type: str
  client_id:
    description: Client of the job. Required with O(state=present) unless O(job_id) is given.
    type: str
  job_id:
    description:
      - Id of an existing job (24 hexadecimal characters). With O(state=present) the module attaches to it
        instead of starting one. With O(state=cancelled) or O(state=absent) and no O(job_id), the
        jobs of O(workload_id)/O(client_id) are acted on.
    type: str
  data_split_config:
    description:
      - Overrides of the flywheel's data split for this job, validated here with the API's rules
        before anything is sent.
    type: dict
    suboptions:
      eval_size:
        description: Records held out for evaluation (>= 1).
        type: raw
      val_ratio:
        description: Share of the training records used for validation (0 <= x < 1).
        type: raw
      min_total_records:
        description: Fewest records the job accepts (>= O(data_split_config.eval_size)).
        type: raw
      random_seed:
        description: Seed of the split.
        type: raw
      limit:
        description: Most records used.
        type: raw
      parse_function_arguments:
        description: Parse tool-call arguments as JSON.
        type: raw
  reuse:
    description: With O(state=present), attach to a pending or running job of the same workload and client.
    type: bool
    default: true
  reuse_completed:
    description:
      - With O(state=present) and O(reuse=true), also attach to the newest C(completed) job of the same
        workload and client, so rerunning a playbook after a finished run reports that run instead of
        starting another. Failed and cancelled jobs are never reused.
    type: bool
    default: false
  cancel_running:
    description: With O(state=absent), cancel an unfinished job first instead of failing.
    type: bool
    default: false
  fail_on_failed_parts:
    description:
      - Fail when a finished job has failed parts (job, LLM judge, NIM, evaluation, customization).
        Set to V(false) to only report them in the C(failures) of RV(summary) and warn.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Start a job for aiva-1 and wait for it (reuses a running one on reruns)
  dataflywheel.blueprint.flywheel_job:
    flywheel_url: http://df-api.data-flywheel.svc:8000
    workload_id: aiva-1
    client_id: dev
    data_split_config:
      eval_size: 20
      val_ratio: 0.1
      min_total_records: 50
    wait: true
    wait_timeout: 7200
  register: aiva1

- name: Show the scores
  ansible.builtin.debug:
    var: aiva1.table

- name: Cancel whatever runs for aiva-2
  dataflywheel.blueprint.flywheel_job:
    flywheel_url: "{{ flywheel_api_url }}"
    state: cancelled
    workload_id: aiva-2
    client_id: dev

- name: Delete a job, cancelling it first if it still runs
  dataflywheel.blueprint.flywheel_job:
    flywheel_url: "{{ flywheel_api_url }}"
    state: absent
    job_id: "{{ aiva1.job.id }}"
    cancel_running: true
"""

RETURN = r"""
job:
  description: The job as the API last returned it (C(GET /api/jobs/{id})); empty when deleted or in check mode.
  returned: success
  type: dict
  sample: {id: 6650000000000000000000a1, workload_id: aiva-1, client_id: dev, status: running}
jobs:
  description: Ids of the jobs acted on.
  returned: success
  type: list
  elements: str
summary:
  description:
    - Per NIM its status, scores per evaluation type (C(function_name),
      C(function_name_and_args_accuracy) and C(tool_calling_correctness) for tool-calling workloads,
      C(similarity) for generic ones), customization progress, and C(failures) (each with C(part)
      and C(error)); C(stage) says where the job is.
  returned: when a job was found or started
  type: dict
table:
  description: One row per NIM and evaluation type, ready to print.
  returned: when a job was found or started
  type: list
  elements: dict
attempts:
  description: POST attempts needed to start the job (1 unless the network failed).
  returned: when a job was started
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import (
    TERMINAL,
    FlywheelError,
    WaitTimeout,
    summarize,
    table,
    validate_data_split_config,
    is_object_id,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_module import (
    client_from,
    diagnose_failures,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import WAIT_ARG_SPEC, argument_spec

DSC_OPTIONS = dict(
    (k, dict(type="raw"))
    for k in ("eval_size", "val_ratio", "min_total_records", "random_seed", "limit", "parse_function_arguments")
)


def main():
    spec = argument_spec(
        "flywheel",
        "nemo",
        state=dict(type="str", choices=["present", "cancelled", "absent"], default="present"),
        workload_id=dict(type="str"),
        client_id=dict(type="str"),
        job_id=dict(type="str"),
        data_split_config=dict(type="dict", options=DSC_OPTIONS),
        reuse=dict(type="bool", default=True),
        reuse_completed=dict(type="bool", default=False),
        cancel_running=dict(type="bool", default=False),
        fail_on_failed_parts=dict(type="bool", default=True),
        **WAIT_ARG_SPEC,
    )
    module = AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_together=[("workload_id", "client_id")],
        required_one_of=[("job_id", "workload_id")],
    )
    p = module.params
    if p["job_id"] and not is_object_id(p["job_id"]):
        module.fail_json(
            msg="job_id=%r is not a flywheel job id: use the 24 hexadecimal characters the API "
            "returned (for example from a registered flywheel_job result's job.id)" % p["job_id"]
        )
    try:
        dsc = validate_data_split_config(
            dict((k, v) for k, v in (p["data_split_config"] or {}).items() if v is not None)
            if p["data_split_config"]
            else None
        )
    except FlywheelError as err:
        module.fail_json(msg="%s. Fix the task's data_split_config (nothing was sent)." % err)
    client = client_from(module)
    try:
        result = dict(present=present, cancelled=cancelled, absent=absent)[p["state"]](module, client, dsc)
    except WaitTimeout as err:
        job = err.latest.get(err.pending[0]) or {}
        detail = client.get_job(job["id"]) if job.get("id") else None
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


def finish(module, client, job_id, changed, extra=None):
    """Fetch the detail, summarise, and apply fail_on_failed_parts."""
    job = client.get_job(job_id) or {}
    summary = summarize(job)
    diagnose_failures(module, job, summary)
    result = dict(changed=changed, job=job, jobs=[job_id], summary=summary, table=table(summary))
    result.update(extra or {})
    finished = job.get("status") in TERMINAL
    if finished and summary["failures"]:
        lines = ["%s: %s" % (f["part"], f["error"]) for f in summary["failures"]]
        if module.params["fail_on_failed_parts"] and module.params["state"] == "present":
            module.fail_json(
                msg="Job %s is %s but %d part(s) failed: %s"
                % (job_id, job.get("status"), len(lines), " | ".join(lines)),
                **result,
            )
        module.warn("Job %s: %d part(s) failed: %s" % (job_id, len(lines), " | ".join(lines)))
    return result


def present(module, client, dsc):
    p = module.params
    if p["job_id"]:
        job = client.get_job(p["job_id"])
        if job is None:
            module.fail_json(msg="Job %s not found (deleted?). Remove job_id to start a new one." % p["job_id"])
        job_id, changed, extra = p["job_id"], False, {}
    else:
        statuses = ("pending", "running", "queued") + (("completed",) if p["reuse_completed"] else ())
        active = client.find_active(p["workload_id"], p["client_id"], statuses=statuses) if p["reuse"] else None
        if active:
            job_id, changed, extra = active["id"], False, {}
        elif module.check_mode:
            return dict(
                changed=True,
                job={},
                jobs=[],
                summary={},
                table=[],
                msg="would start a job for %s/%s" % (p["workload_id"], p["client_id"]),
            )
        else:
            job_id, attempts = client.create_job(p["workload_id"], p["client_id"], dsc)
            changed, extra = True, dict(attempts=attempts)
    if p["wait"]:
        client.wait([job_id], timeout=p["wait_timeout"], sleep_cap=p["wait_sleep"])
    result = finish(module, client, job_id, changed, extra)
    if p["wait"] and result["job"].get("status") in ("failed", "cancelled") and p["fail_on_failed_parts"]:
        module.fail_json(
            msg="Job %s ended %s: %s" % (job_id, result["job"]["status"], result["job"].get("error")), **result
        )
    return result


def targets(module, client):
    p = module.params
    if p["job_id"]:
        job = client.get_job(p["job_id"])
        return [job] if job else []
    return [
        j
        for j in client.list_jobs()
        if j.get("workload_id") == p["workload_id"] and j.get("client_id") == p["client_id"]
    ]


def cancelled(module, client, dsc):
    p = module.params
    jobs = [j for j in targets(module, client) if not j.get("finished_at") and j.get("status") not in TERMINAL]
    if not jobs or module.check_mode:
        return dict(changed=bool(jobs), jobs=[j["id"] for j in jobs], job=jobs[0] if jobs else {})
    changed = False
    for job in jobs:
        changed = client.cancel_job(job["id"]) or changed
    if p["wait"]:
        client.wait([j["id"] for j in jobs], timeout=p["wait_timeout"], sleep_cap=p["wait_sleep"])
    result = finish(module, client, jobs[-1]["id"], changed)
    result["jobs"] = [j["id"] for j in jobs]
    return result


def absent(module, client, dsc):
    p = module.params
    jobs = targets(module, client)
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
    for job in jobs:
        try:
            client.delete_job(job["id"])
        except RestError as err:
            if err.status != 404:
                raise
    client.wait([j["id"] for j in jobs], timeout=p["wait_timeout"], sleep_cap=p["wait_sleep"], until=("deleted",))
    return dict(changed=True, jobs=[j["id"] for j in jobs], job={})


if __name__ == "__main__":
    main()
