#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: flywheel_diagnose
short_description: Diagnose a Data Flywheel deployment, read-only (the doctor)
version_added: "0.4.0"
description:
  - Finds the deployment (the namespaces with the flywheel API Deployment or NeMo/NIM operator custom
    resources, the helm releases by their objects' annotations, the versions) and runs the checks of the
    findings catalogue (C(plugins/module_utils/diagnosis.py)) over what it reads.
  - Each finding is reported as symptom, evidence (the object, event, log line or API answer), cause and fix
    (the role, unit and variable that fixes it, or the manual step), with a severity.
  - It reads container logs through C(pods/log) (the running container's last 200 lines, with their times) of
    the customizer API's containers (a C(KeyError) on C(state)) and, on OpenShift, of every container that
    mounts a PersistentVolumeClaim (C(Permission denied) under its mount path). A log it cannot read is listed
    in RV(report.not_checked).
  - Pods and other namespaced objects being deleted are left out (they predate the restart or fix that
    replaces them).
  - Never changes anything; needs only read access (C(rbac/inspect.yml)). Secrets are never read; only
    their names, as metadata. Every text it returns or writes is redacted.
  - The REST services (flywheel API, NeMo, Entity Store) are asked only when their URL or Service is given;
    a check that needs one that was not given is listed in RV(report.not_checked) with what to pass.
author:
  - dataflywheel.blueprint maintainers (@dataflywheel)
requirements:
  - kubernetes >= 24.2.0 (Python client)
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.flywheel
  - dataflywheel.blueprint.rest_api.nemo_diagnosis
  - dataflywheel.blueprint.rest_api.entity_store_diagnosis
  - kubernetes.core.k8s_auth_options
options:
  namespaces:
    description:
      - Namespaces to read. Empty finds them (flywheel API Deployment, NeMo/NIM custom resources, the
        upstream chart's Secret namespace C(nv-nvidia-blueprint-data-flywheel)).
    type: list
    elements: str
    default: []
  checks:
    description:
      - The checks to run; empty runs all of them.
    type: list
    elements: str
    default: []
    choices: [discovery, chart-secrets-namespace, image-pull-credentials, evaluator-secret-delete,
              evaluator-entity-store-url, entity-store-404, scratch-volume, model-pvc-ownership,
              nfs-name-resolution, customizer-logs, flywheel-jobs]
  models:
    description:
      - Models (C(<namespace>/<name>)) to look up in the Entity Store besides those the NIMServices serve.
    type: list
    elements: str
    default: []
  evaluators:
    description:
      - Evaluator ServiceAccounts to check besides those of the NemoEvaluator custom resources (the remediate
        role's evaluator-secret-delete unit names its own).
    type: list
    elements: dict
    default: []
    suboptions:
      namespace:
        description: Namespace of the evaluator.
        type: str
        required: true
      service_account:
        description: Its ServiceAccount.
        type: str
        required: true
      name:
        description: The evaluator's name, for the report (default the ServiceAccount).
        type: str
  external_findings:
    description:
      - Findings of checks the playbook ran itself (a unit's or the preflight's own check task), as
        C({id, evidence, where}); C(id) is a catalogue id.
    type: list
    elements: dict
    default: []
  not_checked:
    description: What the playbook could not check, with what to pass; added to RV(report.not_checked).
    type: list
    elements: str
    default: []
  redact:
    description: Values (keys, tokens) to remove from everything returned or written, besides secret-looking strings.
    type: list
    elements: str
    default: []
  report_dir:
    description:
      - Directory on the controller to write C(diagnosis.md), C(diagnosis.json) and C(diagnosis.html) to.
        Unset, nothing is written.
    type: path
  platform:
    description: Force the platform instead of detecting it (as M(dataflywheel.blueprint.platform_info)).
    type: str
    default: auto
    choices: [auto, openshift, pcai, nutanix, vanilla]
  fail_on_findings:
    description: Fail when a finding of at least this severity is reported; V(never) only reports.
    type: str
    default: never
    choices: [never, critical, error, warning, info]
attributes:
  check_mode:
    support: full
    description: The module reads only; check mode runs it the same way.
"""

EXAMPLES = r"""
- name: Diagnose the deployment this kubeconfig reaches, with the flywheel API and the Entity Store
  dataflywheel.blueprint.flywheel_diagnose:
    flywheel_url: http://df-api-service.data-flywheel.svc:8000
    nemo_url: http://nemo.test
    entity_store_url: http://nemo-entity-store.nemo.svc:8000
    report_dir: reports/diagnosis
  register: doctor

- name: Show the summary
  ansible.builtin.debug:
    msg: "{{ doctor.summary }}"

- name: Only the evaluator RBAC check, failing on a finding (what the remediate role's unit check runs)
  dataflywheel.blueprint.flywheel_diagnose:
    namespaces: [nemo]
    checks: [evaluator-secret-delete]
    evaluators: [{namespace: nemo, service_account: nemoevaluator-sample}]
    fail_on_findings: error
"""

RETURN = r"""
report:
  description: The diagnosis.
  returned: always
  type: dict
  contains:
    healthy:
      description: No finding.
      type: bool
    discovered:
      description: Platform, namespaces read, flywheel API Deployments, helm releases and operator resources found.
      type: dict
    findings:
      description: Each finding with C(id), C(severity), C(symptom), C(evidence) (list), C(cause), C(fix)
        (C(role), C(unit), C(variable), C(manual)) and C(where); most severe first.
      type: list
      elements: dict
    not_checked:
      description: Checks that did not run and what to pass for them.
      type: list
      elements: str
    counts:
      description: Findings per severity.
      type: dict
summary:
  description: The readable summary, one line per item.
  returned: always
  type: list
  elements: str
files:
  description: Report files written (O(report_dir)).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import diagnosis
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_connection import k8s_module
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import argument_spec


def main():
    spec = argument_spec(
        "flywheel",
        "nemo",
        "entity_store",
        namespaces=dict(type="list", elements="str", default=[]),
        checks=dict(type="list", elements="str", default=[], choices=list(diagnosis.CHECKS)),
        models=dict(type="list", elements="str", default=[]),
        evaluators=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                namespace=dict(type="str", required=True),
                service_account=dict(type="str", required=True),
                name=dict(type="str"),
            ),
        ),
        external_findings=dict(type="list", elements="dict", default=[]),
        not_checked=dict(type="list", elements="str", default=[]),
        redact=dict(type="list", elements="str", default=[], no_log=True),
        report_dir=dict(type="path"),
        platform=dict(type="str", default="auto", choices=["auto", "openshift", "pcai", "nutanix", "vanilla"]),
        fail_on_findings=dict(type="str", default="never", choices=["never"] + list(diagnosis.SEVERITIES)),
    )
    for key in list(spec):
        if key.endswith("_url") or key.endswith("_service"):
            spec[key].pop("required", None)
    module = k8s_module(argument_spec=spec, supports_check_mode=True)
    diagnosis.run_module(module)


if __name__ == "__main__":
    main()
