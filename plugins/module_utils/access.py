# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""access_review: what the current Kubernetes credentials may do, one SelfSubjectAccessReview per check."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from kubernetes import client as k8s_client
except ImportError:  # the module class reports the missing library
    k8s_client = None

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_connection import call_api, describe

CHECK_SPEC = dict(
    verb=dict(type="str", required=True),
    resource=dict(type="str", required=True),
    group=dict(type="str", default=""),
    namespace=dict(type="str", default=""),
    name=dict(type="str", default=""),
    subresource=dict(type="str", default=""),
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


def run_module(module):
    checks = module.params["checks"]
    results = call_api(
        module,
        lambda api: [review(api, check) for check in checks],
        "to a SelfSubjectAccessReview, which every authenticated user may create, so the credentials are "
        "probably not accepted at all",
    )
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
