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
      - V(cancelled) and V(absent) also cancel, through the NeMo customizer's own endpoint, the customizations
        the job leaves running (needs O(nemo_url)) and say in RV(nemo_customizations) whether each GPU was
        released.
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
      - Id of an existing job (24 hexadecimal characters, either case). With O(state=present) the module attaches to it
        instead of starting one. With O(state=cancelled) or O(state=absent) and no O(job_id), the
        jobs of O(workload_id)/O(client_id) are acted on.
    type: str
  data_split_config:
    description:
      - Overrides of the flywheel's data split for this job, checked here with the API's own rules before
        anything is sent. Numbers and booleans may be strings (AWX surveys send strings); they are sent
        converted. Keys left out take the API's defaults (C(eval_size=20), C(val_ratio=0.1),
        C(min_total_records=50), C(limit=10000)), not the deployed C(config.yaml)'s.
      - Refused only for what the API refuses (a value of the wrong type, C(val_ratio) outside [0, 1)) and
        for C(limit) below C(min_total_records), for which the flywheel fails every job. As the API,
        accepts C(eval_size) larger than C(min_total_records) (its own shipped config has 100 and 50) and
        C(eval_size=0).
    type: dict
    suboptions:
      eval_size:
        description: Records held out for evaluation (an integer; a job needs at least this many records).
        type: raw
      val_ratio:
        description: Share of the training records used for validation (0 <= x < 1).
        type: raw
      min_total_records:
        description: Fewest records the job accepts (an integer, at most O(data_split_config.limit)).
        type: raw
      random_seed:
        description: Seed of the split (an integer or null).
        type: raw
      limit:
        description: Most records used (an integer).
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
  orphan_timeout:
    description:
      - A pending job is orphaned when no job has run (none running, none started or finished) for this
        many seconds while it waited - no worker will pick it up. Upstream stores a job before it queues it,
        so a POST answered 500 while the task broker (Redis) is down leaves such a job; a stopped parent
        worker does the same to every job.
      - The module fails saying so (when it waits, or when a rerun finds the job), unless
        O(replace_orphaned=true).
    type: int
    default: 120
  replace_orphaned:
    description:
      - With O(state=present), cancel and delete an orphaned pending job of the same workload and client
        (see O(orphan_timeout)) and start a new one, once, instead of failing. Not applied to a job named
        with O(job_id).
    type: bool
    default: false
  fail_on_failed_parts:
    description:
      - Fail when a finished job has failed parts (job, LLM judge, NIM, evaluation, customization).
        Set to V(false) to only report them in the C(failures) of RV(summary) and warn.
      - Parts that a user's cancel stopped are not failures; RV(summary) lists them in C(cancelled_parts).
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
nemo_customizations:
  description:
    - Per NeMo customization of a cancelled or deleted job that had not finished well - C(model), C(job_id),
      its NeMo C(status), whether this call C(cancelled) it, C(gpu_released) (true once the training job has
      stopped; null when it could not be checked) and a C(message).
  returned: with O(state=cancelled) or O(state=absent)
  type: list
  elements: dict
orphans_replaced:
  description: Ids of orphaned pending jobs that were cancelled and deleted (O(replace_orphaned=true)).
  returned: when a job was replaced
  type: list
  elements: str
orphan:
  description: Why a job was judged orphaned - C(job_id), C(pending_seconds), C(idle_seconds), C(idle_since).
  returned: when the module failed on an orphaned job
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_runner import DATA_SPLIT_KEYS, run_job
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import WAIT_ARG_SPEC, argument_spec


def main():
    spec = argument_spec(
        "flywheel",
        "nemo",
        state=dict(type="str", choices=["present", "cancelled", "absent"], default="present"),
        workload_id=dict(type="str"),
        client_id=dict(type="str"),
        job_id=dict(type="str"),
        data_split_config=dict(type="dict", options=dict((k, dict(type="raw")) for k in DATA_SPLIT_KEYS)),
        reuse=dict(type="bool", default=True),
        reuse_completed=dict(type="bool", default=False),
        cancel_running=dict(type="bool", default=False),
        replace_orphaned=dict(type="bool", default=False),
        orphan_timeout=dict(type="int", default=120),
        fail_on_failed_parts=dict(type="bool", default=True),
        **WAIT_ARG_SPEC,
    )
    module = AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_together=[("workload_id", "client_id")],
        required_one_of=[("job_id", "workload_id")],
    )
    run_job(module)


if __name__ == "__main__":
    main()
