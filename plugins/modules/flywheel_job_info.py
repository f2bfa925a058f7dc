#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: flywheel_job_info
short_description: Read Data Flywheel jobs, optionally waiting for many of them at once
version_added: 0.1.0
description:
  - Returns one job (O(job_id)) or the jobs matching O(workload_id), O(client_id) and O(status).
  - With O(wait=true) it waits until every selected job is finished, with one list request per
    poll whatever the number of jobs, then reads each job's details once.
author: dataflywheel.blueprint maintainers (@dataflywheel)
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.flywheel
  - dataflywheel.blueprint.rest_api.nemo_diagnosis
  - dataflywheel.blueprint.rest_api.wait
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Jobs are not diffed.
options:
  job_id:
    description: Id of one job (24 hexadecimal characters).
    type: str
  job_ids:
    description: Ids of several jobs.
    type: list
    elements: str
  workload_id:
    description: Only jobs of this workload.
    type: str
  client_id:
    description: Only jobs of this client.
    type: str
  status:
    description: Only jobs in these states (as selected at the start, before any wait).
    type: list
    elements: str
    choices: [pending, running, completed, failed, cancelled]
  details:
    description: Read each selected job's details and return RV(summaries) and RV(table).
    type: bool
    default: true
  fail_on_timeout:
    description:
      - Fail when O(wait_timeout) passes before every job finished. With V(false) the module
        returns what it has and RV(timed_out=true), so a playbook can print progress and wait again.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Wait for all aiva jobs of the dev client, one list request per poll
  dataflywheel.blueprint.flywheel_job_info:
    flywheel_url: "{{ flywheel_api_url }}"
    client_id: dev
    status: [pending, running]
    wait: true
    wait_timeout: 14400
  register: done

- name: Print a results table
  ansible.builtin.debug:
    msg: "{{ done.table }}"
"""

RETURN = r"""
jobs:
  description: The selected jobs as listed by C(GET /api/jobs) (after the wait, if any).
  returned: always
  type: list
  elements: dict
summaries:
  description: Per job, the summary described in M(dataflywheel.blueprint.flywheel_job) (scores, failures, stage).
  returned: when O(details=true)
  type: list
  elements: dict
table:
  description: Rows of every selected job, one per NIM and evaluation type.
  returned: when O(details=true)
  type: list
  elements: dict
requests:
  description: HTTP requests this call made (useful to see what waiting costs).
  returned: always
  type: int
timed_out:
  description: Whether the wait ended before every selected job finished (only with O(fail_on_timeout=false)).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import (
    FlywheelError,
    WaitTimeout,
    is_object_id,
    summarize,
    table,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_module import (
    client_from,
    diagnose_failures,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import WAIT_ARG_SPEC, argument_spec


def select(jobs, p):
    out = []
    for job in jobs:
        if p["job_id"] and job.get("id") != p["job_id"]:
            continue
        if p["job_ids"] and job.get("id") not in p["job_ids"]:
            continue
        if p["workload_id"] and job.get("workload_id") != p["workload_id"]:
            continue
        if p["client_id"] and job.get("client_id") != p["client_id"]:
            continue
        if p["status"] and job.get("status") not in p["status"]:
            continue
        out.append(job)
    return out


def main():
    spec = argument_spec(
        "flywheel",
        "nemo",
        job_id=dict(type="str"),
        job_ids=dict(type="list", elements="str"),
        workload_id=dict(type="str"),
        client_id=dict(type="str"),
        status=dict(type="list", elements="str", choices=["pending", "running", "completed", "failed", "cancelled"]),
        details=dict(type="bool", default=True),
        fail_on_timeout=dict(type="bool", default=True),
        **WAIT_ARG_SPEC,
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    if p["job_id"] and not is_object_id(p["job_id"]):
        module.fail_json(msg="job_id=%r is not a flywheel job id (24 hexadecimal characters)" % p["job_id"])
    for job_id in p["job_ids"] or []:
        if not is_object_id(job_id):
            module.fail_json(
                msg="job_ids contains %r, which is not a flywheel job id (24 hexadecimal characters)" % job_id
            )
    client = client_from(module)
    timed_out = False
    try:
        jobs = select(client.list_jobs(), p)
        if p["wait"] and jobs:
            try:
                latest = client.wait([j["id"] for j in jobs], timeout=p["wait_timeout"], sleep_cap=p["wait_sleep"])
            except WaitTimeout as err:
                if p["fail_on_timeout"]:
                    raise
                latest, timed_out = err.latest, True
            jobs = [latest.get(j["id"]) or j for j in jobs]
        result = dict(changed=False, jobs=jobs, timed_out=timed_out)
        if p["details"]:
            summaries = []
            for listed in jobs:
                detail = client.get_job(listed["id"]) or listed
                summary = summarize(detail)
                diagnose_failures(module, detail, summary)
                summaries.append(summary)
            result["summaries"] = summaries
            result["table"] = [row for s in summaries for row in table(s)]
    except WaitTimeout as err:
        module.fail_json(msg="Timed out after %ss: %s" % (p["wait_timeout"], err), requests=client.rest.requests_made)
    except (RestError, FlywheelError) as err:
        module.fail_json(msg=str(err))
    result["requests"] = client.rest.requests_made
    module.exit_json(**result)


if __name__ == "__main__":
    main()
