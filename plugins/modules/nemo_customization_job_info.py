#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nemo_customization_job_info
short_description: Status, progress and the customizer's own status log of a NeMo customization job
version_added: 0.1.0
description:
  - Reads a customization job (C(GET /v1/customization/jobs/{id}) and C(/status)) by O(job_id) or by the
    O(nmp_uri) a flywheel result carries (C(nims[].customizations[].nmp_uri)).
  - Returns status, percentage done, epochs and steps, the last entries of the customizer's status log,
    and a diagnosis, so a job stuck C(pending) shows its cause (C(NotEnoughResources) with the scheduler's
    message, "The training job is pending", a failed entity handler) instead of only a state.
  - With O(wait=true) polls until the job is C(completed), C(failed) or C(cancelled) (or one of O(wait_for));
    on timeout it fails with the diagnosis.
author: dataflywheel.blueprint maintainers (@dataflywheel)
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.nemo
  - dataflywheel.blueprint.rest_api.wait
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: Nothing is changed.
options:
  job_id:
    description: Id of the customization job (C(cust-...)).
    type: str
  nmp_uri:
    description:
      - URL of the job as flywheel results carry it, C(<base>/v1/customization/jobs/<id>).
      - Only the job id is taken from it when O(nemo_url) is set; otherwise its base is used.
    type: str
  log_entries:
    description: How many of the last status log entries to return.
    type: int
    default: 5
  wait_for:
    description: States that end the wait.
    type: list
    elements: str
    default: [completed, failed, cancelled]
  fail_on_failure:
    description: Fail when the job is C(failed) or C(cancelled), with the customizer's status log line in the message.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Why did the flywheel's customization fail?
  dataflywheel.blueprint.nemo_customization_job_info:
    nemo_url: http://nemo.test
    nmp_uri: http://df-generic-service.data-flywheel.svc.cluster.local:8000/v1/customization/jobs/cust-9NAvCSuV18nJi3M9u3AdB1
  register: cust

- name: Show the customizer's own words
  ansible.builtin.debug:
    msg: "{{ cust.diagnosis.summary }} ({{ cust.diagnosis.hint | default('no hint', true) }})"
"""

RETURN = r"""
job_id:
  description: The customization job id.
  returned: success
  type: str
status:
  description: C(created), C(pending), C(running), C(completed), C(failed), C(cancelled), C(cancelling), ...
  returned: success
  type: str
percentage_done:
  description: Training progress in percent.
  returned: success
  type: float
epochs_completed:
  description: Epochs finished.
  returned: success
  type: int
steps_completed:
  description: Training steps finished.
  returned: success
  type: int
output_model:
  description: The model the job writes (C(<namespace>/<name>@<job id>)).
  returned: when the job detail has it
  type: str
status_logs:
  description: The last O(log_entries) entries of the customizer's status log (C(updated_at), C(message), C(detail)).
  returned: success
  type: list
  elements: dict
diagnosis:
  description: C(summary), C(cause) (the last log entry with a detail), C(last_log), C(hint).
  returned: success
  type: dict
customization:
  description: The status as C(/v1/customization/jobs/{id}/status) returned it.
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_jobs import (
    NemoJobError,
    NemoJobsClient,
    NemoWaitTimeout,
    diagnose_customization,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_module import (
    job_reference,
    nemo_client,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import WAIT_ARG_SPEC, argument_spec


def main():
    spec = argument_spec(
        "nemo",
        job_id=dict(type="str"),
        nmp_uri=dict(type="str"),
        log_entries=dict(type="int", default=5),
        wait_for=dict(type="list", elements="str", default=["completed", "failed", "cancelled"]),
        fail_on_failure=dict(type="bool", default=False),
        **WAIT_ARG_SPEC,
    )
    module = AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_one_of=[("job_id", "nmp_uri")],
        mutually_exclusive=[("job_id", "nmp_uri")],
    )
    p = module.params
    base_url, job_id = job_reference(module, "customization")
    client = nemo_client(module, base_url, NemoJobsClient)
    try:
        if p["wait"]:
            status = client.wait_customization(
                job_id, p["wait_timeout"], p["wait_sleep"], until=tuple(p["wait_for"]), log_entries=p["log_entries"]
            )
        else:
            status = client.customization_status(job_id)
            if status is None:
                module.fail_json(msg="Customization job %s not found at %s" % (job_id, client.rest.base_url))
        detail = client.get_customization(job_id) or {}
    except NemoWaitTimeout as err:
        module.fail_json(
            msg="%s. The job is not moving; the cause above is the customizer's own status log." % err,
            job_id=job_id,
            status=err.last.get("status"),
            diagnosis=err.diagnosis,
            status_logs=err.diagnosis["status_logs"],
            customization=err.last,
        )
    except (RestError, NemoJobError) as err:
        module.fail_json(msg="nemo_customization_job_info: %s" % err)
    diagnosis = diagnose_customization(status, p["log_entries"])
    result = dict(
        changed=False,
        job_id=job_id,
        status=status.get("status"),
        percentage_done=status.get("percentage_done"),
        epochs_completed=status.get("epochs_completed"),
        steps_completed=status.get("steps_completed"),
        output_model=detail.get("output_model"),
        status_logs=diagnosis["status_logs"],
        diagnosis=diagnosis,
        customization=status,
    )
    if p["fail_on_failure"] and result["status"] in ("failed", "cancelled"):
        module.fail_json(
            msg="Customization job %s %s; %s" % (job_id, result["status"], diagnosis["summary"])
            + ("; hint: %s" % diagnosis["hint"] if diagnosis["hint"] else ""),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
