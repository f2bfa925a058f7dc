#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: release_state_info
short_description: Read what a run's Helm releases start from, in one module run
version_added: "0.1.0"
description:
  - Lists, in every namespace, the Helm release records an interrupted run left pending (Secrets labelled
    C(owner=helm) with status C(pending-install), C(pending-upgrade) or C(pending-rollback); helm's default storage
    driver) and the Deployments, and reports the pending records' metadata and, per namespace, the Deployments that
    are not Available.
  - Two list requests in one module run. The release records are read as metadata only (the release in the
    Secret's data is never transferred).
  - A Deployment is Available as kubernetes.core's C(wait) judges it; every desired replica exists, is available
    and of the Deployment's current generation, and none is unavailable.
  - The role cluster_common runs it once a run, before the run's first release.
  - Read-only; never changes the cluster. Supports check mode.
author:
  - dataflywheel.blueprint maintainers (@dataflywheel)
requirements:
  - kubernetes >= 24.2.0 (Python client)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
notes:
  - The credentials need C(list) on C(secrets) and on C(deployments.apps) in every namespace (rbac/installer.yml
    grants both).
"""

EXAMPLES = r"""
- name: Helm releases left pending and Deployments not Available
  dataflywheel.blueprint.release_state_info:
  register: release_state

- name: Stop when a release was left pending-upgrade
  ansible.builtin.fail:
    msg: "{{ item.namespace }}/{{ item.labels.name }} is {{ item.labels.status }}"
  loop: "{{ release_state.pending_releases }}"
  when: item.labels.status == 'pending-upgrade'
"""

RETURN = r"""
pending_releases:
  description: The metadata of each release record left pending, sorted by namespace and name.
  returned: success
  type: list
  elements: dict
  contains:
    namespace:
      description: The release's namespace.
      type: str
    name:
      description: The record's Secret name (C(sh.helm.release.v1.<release>.v<revision>)).
      type: str
    labels:
      description: Helm's labels of the record, among them C(name) (the release), C(status) and C(version).
      type: dict
  sample: [{"namespace": "gpu-operator", "name": "sh.helm.release.v1.gpu-operator.v1",
            "labels": {"name": "gpu-operator", "owner": "helm", "status": "pending-install", "version": "1"}}]
deployments_unready:
  description:
    - Every namespace that has Deployments, with the names of those that are not Available (an empty list when all
      of them are).
  returned: success
  type: dict
  sample: {"data-flywheel": [], "gpu-operator": ["gpu-operator"]}
"""

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_connection import k8s_module
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.release_state import run_module


def main():
    module = k8s_module(argument_spec={}, supports_check_mode=True)
    run_module(module)


if __name__ == "__main__":
    main()
