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
  - With O(wait=true) it waits until every selected job is finished, with one request per poll whatever
    the number of jobs (the list; for one running job, its detail), then reads each job's details once
    (not again for a job whose detail the last poll read).
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
    description:
      - Id of one job (24 hexadecimal characters, either case).
      - A job the API does not know fails the task (see O(fail_on_missing)).
    type: str
  job_ids:
    description: Ids of several jobs; each must exist (see O(fail_on_missing)).
    type: list
    elements: str
  fail_on_missing:
    description:
      - Fail when a job named in O(job_id) or O(job_ids) does not exist (never created, or deleted).
        With V(false) the others are returned, the missing ids are in RV(missing), and the module warns.
    type: bool
    default: true
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
  poll_delay:
    description:
      - With O(wait=true), seconds to wait before the first poll (the listing of the jobs), continuing a
        backoff. Give it the RV(poll_delay) a previous call returned, so a wait split into several calls (to
        print progress in between) polls no more often than one long wait. Unset, the first poll is at once
        and the pauses start at 2 s.
    type: float
  orphan_timeout:
    description:
      - Fail when a selected job has been pending for this many seconds while no job ran (none running,
        none started or finished) - no worker will pick it up. See M(dataflywheel.blueprint.flywheel_job).
    type: int
    default: 120
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
poll_delay:
  description:
    - The pause the wait would have taken next (null when nothing is left to wait for).
    - Give it to the next call's O(poll_delay).
  returned: always
  type: float
missing:
  description: Ids named in O(job_id)/O(job_ids) that the API does not know (only with O(fail_on_missing=false)).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_runner import JOB_STATES, run_job_info
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import WAIT_ARG_SPEC, argument_spec


def main():
    spec = argument_spec(
        "flywheel",
        "nemo",
        job_id=dict(type="str"),
        job_ids=dict(type="list", elements="str"),
        workload_id=dict(type="str"),
        client_id=dict(type="str"),
        status=dict(type="list", elements="str", choices=list(JOB_STATES)),
        details=dict(type="bool", default=True),
        fail_on_missing=dict(type="bool", default=True),
        fail_on_timeout=dict(type="bool", default=True),
        poll_delay=dict(type="float"),
        orphan_timeout=dict(type="int", default=120),
        **WAIT_ARG_SPEC,
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_job_info(module)


if __name__ == "__main__":
    main()
