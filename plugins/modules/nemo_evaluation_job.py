#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nemo_evaluation_job
short_description: Run a NeMo Evaluator job, or attach to one, and return its results or why it failed
version_added: 0.1.0
description:
  - Creates an evaluation job (C(POST /v1/evaluation/jobs)) from an evaluation O(config) and a target - a model
    by name (O(model), looked up by the evaluator in the Entity Store), an inline O(api_endpoint) (no
    Entity Store lookup), or a full O(target).
  - Or attaches to an existing job by O(job_id) or by the O(nmp_uri) a flywheel result carries
    (C(nims[].evaluations[].nmp_uri)).
  - With O(wait=true) polls status and progress until the job is C(completed), C(failed) or C(cancelled).
    A completed job's results (C(/results)) are returned as RV(scores); a failed one returns the
    evaluator's status message, the tail of its logs and, for the causes the field reports met
    (model missing from the Entity Store, evaluator Role without secret C(delete)), a hint.
  - Idempotent with O(reuse=true) (default) - a job with the same config and target that is created, pending,
    running or completed is attached to instead of starting another one.
author: dataflywheel.blueprint maintainers (@dataflywheel)
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.nemo
  - dataflywheel.blueprint.rest_api.wait
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Check mode never POSTs; it reports whether a job would be created.
  diff_mode:
    support: none
    description: Jobs are not diffed.
options:
  job_id:
    description: Id of an existing evaluation job (C(eval-...)) to attach to.
    type: str
  nmp_uri:
    description:
      - URL of an existing job as flywheel results carry it, C(<base>/v1/evaluation/jobs/<id>).
      - Only the job id is taken from it when O(nemo_url) is set (the URI's host is usually the
        in-cluster one the flywheel workers use); otherwise its base is used.
    type: str
  config:
    description:
      - Evaluation config, inline (a dict with C(type), C(tasks), ...) or a reference C(<namespace>/<name>).
      - Required to create a job.
    type: raw
  model:
    description: Target model by name (C(<namespace>/<name>)); the evaluator resolves it in the Entity Store.
    type: str
  api_endpoint:
    description: Target model given inline, so the evaluator calls it without an Entity Store lookup.
    type: dict
    suboptions:
      url:
        description: Endpoint URL, for example C(http://llama.nim.svc:8000/v1/chat/completions).
        type: str
        required: true
      model_id:
        description: Model id the endpoint serves.
        type: str
        required: true
      format:
        description: API format.
        type: str
        choices: [nim, openai]
        default: nim
      api_key:
        description: Key the evaluator sends to the endpoint. Never logged.
        type: str
  target:
    description:
      - A complete evaluation target (for example C(type=model) with C(model)).
      - Use instead of O(model) or O(api_endpoint).
    type: dict
  namespace:
    description: Namespace of the job.
    type: str
  reuse:
    description: Attach to a job with the same O(config) and target unless it failed or was cancelled.
    type: bool
    default: true
  log_lines:
    description: How many lines of the job's logs to return when it failed.
    type: int
    default: 20
  fail_on_failure:
    description: Fail when the job ended C(failed) or C(cancelled). With V(false) the diagnosis is only returned.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Evaluate the base NIM through an inline endpoint and wait for the scores
  dataflywheel.blueprint.nemo_evaluation_job:
    nemo_url: http://nemo.test
    config:
      type: custom
      tasks:
        tool-calling:
          type: chat-completion
          dataset:
            files_url: hf://datasets/dfwbp/flywheel-eval-primary_assistant/eval_data.jsonl
          metrics:
            function_name_and_args_accuracy:
              type: tool-calling
    api_endpoint:
      url: http://meta-llama3-1b-instruct.nim.svc:8000/v1/chat/completions
      model_id: meta/llama-3.2-1b-instruct
    wait: true
  register: base_eval

- name: Explain an evaluation a flywheel job reported as failed
  dataflywheel.blueprint.nemo_evaluation_job:
    nemo_url: http://nemo.test
    nmp_uri: "{{ flywheel_eval.nmp_uri }}"
    fail_on_failure: false
  register: explained
"""

RETURN = r"""
job:
  description: The job as the evaluator last returned it.
  returned: success
  type: dict
status:
  description: C(created), C(pending), C(running), C(completed), C(failed) or C(cancelled).
  returned: success
  type: str
progress:
  description: Progress in percent (C(status_details.progress)).
  returned: success
  type: float
scores:
  description: Score name to value, from the job's results.
  returned: when the job completed
  type: dict
  sample: {function_name_and_args_accuracy: 0.48}
results:
  description: The results as C(/v1/evaluation/jobs/{id}/results) returns them (tasks, groups).
  returned: when the job completed
  type: dict
diagnosis:
  description:
    - C(summary), C(message), C(task_status), C(log_tail) (list of lines, only for failed jobs) and C(hint).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_jobs import (
    NemoJobError,
    NemoJobsClient,
    NemoWaitTimeout,
    diagnose_evaluation,
    flatten_results,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_module import (
    job_reference,
    nemo_client,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import (
    WAIT_ARG_SPEC,
    argument_spec,
    check_url,
)


def build_target(p):
    if p["target"]:
        return p["target"]
    if p["model"]:
        return {"type": "model", "model": p["model"]}
    endpoint = dict((k, v) for k, v in p["api_endpoint"].items() if v is not None)
    return {"type": "model", "model": {"api_endpoint": endpoint}}


def resolve(module):
    """Validate the input before anything is sent; returns (base_url, job_id)."""
    p = module.params
    base_url, job_id = job_reference(module, "evaluation")
    if p["config"] is not None:
        if not isinstance(p["config"], (dict, str)) or not p["config"]:
            module.fail_json(
                msg="config must be an inline evaluation config (a dict) or a '<namespace>/<name>' reference"
            )
        if not (p["model"] or p["api_endpoint"] or p["target"]):
            module.fail_json(msg="config needs a target: set model (by name), api_endpoint (inline) or target")
        if p["api_endpoint"]:
            check_url(
                module, "api_endpoint.url", p["api_endpoint"]["url"], "http://llama.nim.svc:8000/v1/chat/completions"
            )
    return base_url, job_id


def main():
    spec = argument_spec(
        "nemo",
        job_id=dict(type="str"),
        nmp_uri=dict(type="str"),
        config=dict(type="raw"),
        model=dict(type="str"),
        api_endpoint=dict(
            type="dict",
            options=dict(
                url=dict(type="str", required=True),
                model_id=dict(type="str", required=True),
                format=dict(type="str", choices=["nim", "openai"], default="nim"),
                api_key=dict(type="str", no_log=True),
            ),
        ),
        target=dict(type="dict"),
        namespace=dict(type="str"),
        reuse=dict(type="bool", default=True),
        log_lines=dict(type="int", default=20),
        fail_on_failure=dict(type="bool", default=True),
        **WAIT_ARG_SPEC,
    )
    module = AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_one_of=[("job_id", "nmp_uri", "config")],
        mutually_exclusive=[("job_id", "nmp_uri", "config"), ("model", "api_endpoint", "target")],
    )
    p = module.params
    base_url, job_id = resolve(module)
    client = nemo_client(module, base_url, NemoJobsClient)
    changed = False
    try:
        if job_id:
            job = client.get_evaluation(job_id)
            if job is None:
                module.fail_json(msg="Evaluation job %s not found at %s (deleted?)" % (job_id, client.rest.base_url))
        else:
            target = build_target(p)
            job = client.find_evaluation(p["config"], target) if p["reuse"] else None
            if job is None:
                if module.check_mode:
                    module.exit_json(
                        changed=True,
                        job={},
                        status=None,
                        progress=0.0,
                        diagnosis={},
                        msg="would create an evaluation job",
                    )
                job = client.create_evaluation(p["config"], target, p["namespace"])
                changed = True
            job_id = job["id"]
        if p["wait"] and job.get("status") not in ("completed", "failed", "cancelled"):
            job = client.wait_evaluation(job_id, timeout=p["wait_timeout"], sleep_cap=p["wait_sleep"])
        result = finish(module, client, job, changed)
    except NemoWaitTimeout as err:
        tail = client.evaluation_log_tail(err.job_id, p["log_lines"])
        diagnosis = diagnose_evaluation(err.last, tail)
        module.fail_json(
            msg="%s. Raise wait_timeout, or look at the evaluator and its Argo workflow." % err,
            job=err.last,
            status=err.last.get("status"),
            diagnosis=diagnosis,
        )
    except (RestError, NemoJobError) as err:
        module.fail_json(msg="nemo_evaluation_job: %s" % err)
    module.exit_json(**result)


def finish(module, client, job, changed):
    p = module.params
    status = job.get("status")
    details = job.get("status_details") or {}
    result = dict(changed=changed, job=job, status=status, progress=details.get("progress"))
    if status == "completed":
        results = client.evaluation_results(job["id"])
        scores, _full = flatten_results(results)
        result.update(results=results, scores=scores, diagnosis=diagnose_evaluation(job))
    elif status in ("failed", "cancelled"):
        diagnosis = diagnose_evaluation(job, client.evaluation_log_tail(job["id"], p["log_lines"]))
        result["diagnosis"] = diagnosis
        if p["fail_on_failure"]:
            tail = " | ".join(diagnosis["log_tail"][-3:])
            module.fail_json(
                msg="Evaluation job %s %s: %s%s%s"
                % (
                    job["id"],
                    status,
                    diagnosis["message"] or "no status message",
                    ". Log tail: %s" % tail if tail else "",
                    ". Hint: %s" % diagnosis["hint"] if diagnosis["hint"] else "",
                ),
                **result,
            )
    else:
        result["diagnosis"] = diagnose_evaluation(job)
    return result


if __name__ == "__main__":
    main()
