#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: access_review
short_description: Ask the API server what the current Kubernetes credentials may do
version_added: "0.1.0"
description:
  - Sends one C(SelfSubjectAccessReview) per item of O(checks) (the API behind
    C(kubectl auth can-i)) and reports which actions the credentials are allowed and which are denied.
  - Used by the preflight stage so a missing permission is reported, with the RBAC manifest that grants it,
    before any stage changes the cluster instead of as a 403 halfway through an install.
  - Read-only; nothing is stored in the cluster. Supports check mode.
author:
  - dataflywheel.blueprint maintainers (@dataflywheel)
requirements:
  - kubernetes >= 24.2.0 (Python client)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  checks:
    description: The actions to review.
    type: list
    elements: dict
    required: true
    suboptions:
      verb:
        description: Kubernetes verb (C(get), C(list), C(create), C(patch), C(delete), C(bind), ...).
        type: str
        required: true
      resource:
        description: Resource (plural, e.g. C(secrets), C(customresourcedefinitions)).
        type: str
        required: true
      group:
        description: API group; empty for the core group.
        type: str
        default: ""
      namespace:
        description: Namespace; empty for cluster-scoped resources or all namespaces.
        type: str
        default: ""
      name:
        description: Object name, for rules restricted by C(resourceNames).
        type: str
        default: ""
      subresource:
        description: Subresource (e.g. C(status), C(log)).
        type: str
        default: ""
  fail_on_denied:
    description: Fail the task, listing every denied action, when at least one is denied.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Can these credentials install the flywheel namespace and run jobs in it?
  dataflywheel.blueprint.access_review:
    checks:
      - {verb: create, resource: namespaces}
      - {verb: create, resource: jobs, group: batch, namespace: data-flywheel}
      - {verb: delete, resource: secrets, namespace: nemo}
    fail_on_denied: true

- name: Review with the token AWX injects (K8S_AUTH_HOST / K8S_AUTH_API_KEY) and keep the answers
  dataflywheel.blueprint.access_review:
    checks:
      - {verb: create, resource: clusterroles, group: rbac.authorization.k8s.io}
  register: review

- name: Say what is missing
  ansible.builtin.debug:
    msg: "{{ review.denied | map(attribute='action') | list }}"
"""

RETURN = r"""
results:
  description: One entry per check, in the order given.
  returned: success
  type: list
  elements: dict
  contains:
    action:
      description: The check written like C(kubectl auth can-i) arguments.
      type: str
      sample: "create jobs.batch -n data-flywheel"
    allowed:
      description: Whether the API server allows it.
      type: bool
    reason:
      description: The authorizer's reason, when it gives one.
      type: str
denied:
  description: The entries of RV(results) that are not allowed.
  returned: success
  type: list
  elements: dict
allowed:
  description: Whether every check is allowed.
  returned: success
  type: bool
"""

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.access import CHECK_SPEC, run_module
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_connection import k8s_module


def main():
    module = k8s_module(
        argument_spec=dict(
            checks=dict(type="list", elements="dict", required=True, options=CHECK_SPEC),
            fail_on_denied=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
