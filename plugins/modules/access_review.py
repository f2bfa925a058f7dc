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
  - dataflywheel.blueprint.k8s_auth
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

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from kubernetes import client as k8s_client
    from kubernetes.client.rest import ApiException

    HAS_K8S = True
    K8S_IMPORT_ERROR = None
except ImportError:
    HAS_K8S = False
    K8S_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_auth import (
    K8S_AUTH_ARG_SPEC,
    K8sAuthError,
    api_client,
    describe,
)


def action_text(check):
    """The check as `kubectl auth can-i` would take it: verb resource[.group][/sub] [name] [-n ns]."""
    resource = check["resource"] + ("." + check["group"] if check["group"] else "")
    if check["subresource"]:
        resource += "/" + check["subresource"]
    text = "%s %s" % (check["verb"], resource)
    if check["name"]:
        text += " " + check["name"]
    if check["namespace"]:
        text += " -n " + check["namespace"]
    return text


def review(api, check):
    attrs = k8s_client.V1ResourceAttributes(
        verb=check["verb"],
        resource=check["resource"],
        group=check["group"],
        namespace=check["namespace"] or None,
        name=check["name"] or None,
        subresource=check["subresource"] or None,
    )
    spec = k8s_client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)
    body = k8s_client.V1SelfSubjectAccessReview(spec=spec)
    status = k8s_client.AuthorizationV1Api(api).create_self_subject_access_review(body).status
    return {
        "action": action_text(check),
        "allowed": bool(status.allowed) and not bool(status.denied),
        "reason": status.reason or status.evaluation_error or "",
    }


def main():
    check_spec = dict(
        verb=dict(type="str", required=True),
        resource=dict(type="str", required=True),
        group=dict(type="str", default=""),
        namespace=dict(type="str", default=""),
        name=dict(type="str", default=""),
        subresource=dict(type="str", default=""),
    )
    module = AnsibleModule(
        argument_spec=dict(
            K8S_AUTH_ARG_SPEC,
            checks=dict(type="list", elements="dict", required=True, options=check_spec),
            fail_on_denied=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if not HAS_K8S:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=K8S_IMPORT_ERROR)
    try:
        api = api_client(module.params)
        results = [review(api, check) for check in module.params["checks"]]
    except K8sAuthError as exc:
        module.fail_json(msg="access_review: %s" % exc)
    except ApiException as exc:
        module.fail_json(
            msg="access_review: the Kubernetes API answered %s %s to a SelfSubjectAccessReview (%s); every "
            "authenticated user may create one, so the credentials are probably not accepted at all"
            % (exc.status, exc.reason, describe(module.params))
        )
    except Exception as exc:  # connection refused, bad kubeconfig: report, no traceback
        module.fail_json(msg="access_review: cannot reach the Kubernetes API (%s): %s" % (describe(module.params), exc))
    denied = [r for r in results if not r["allowed"]]
    if denied and module.params["fail_on_denied"]:
        module.fail_json(
            msg="access_review: %d of %d actions are denied to %s: %s"
            % (len(denied), len(results), describe(module.params), "; ".join(r["action"] for r in denied)),
            results=results,
            denied=denied,
            allowed=False,
        )
    module.exit_json(changed=False, results=results, denied=denied, allowed=not denied)


if __name__ == "__main__":
    main()
