# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What a run's Helm releases start from, read in one module run: the release records an interrupted run left
pending, and which Deployments of every namespace are not Available (module release_state_info)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_connection import call_api, get_json

# helm keeps each revision of a release as a Secret with these labels (the default storage driver)
PENDING_SELECTOR = "owner=helm,status in (pending-install,pending-upgrade,pending-rollback)"
# names and labels are all a release record is read for: the release itself (the Secret's data) stays out
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


def deployment_ready(deployment):
    """kubernetes.core's readiness of a Deployment (module_utils/k8s/waiter.py deployment_ready), on
    the object as a dict: every desired replica there, Available and of the current generation."""
    status = deployment.get("status")
    if status is None:
        return False
    spec = deployment.get("spec") or {}
    return bool(
        spec.get("replicas") == (status.get("replicas") or 0)
        and status.get("availableReplicas") == status.get("replicas")
        and status.get("observedGeneration") == (deployment.get("metadata") or {}).get("generation")
        and not status.get("unavailableReplicas")
    )


def deployments_unready(deployments):
    """{namespace: [names of its Deployments that are not Available]} for every namespace that has
    Deployments (an empty list: all of them are)."""
    out = {}
    for deployment in deployments:
        metadata = deployment.get("metadata") or {}
        names = out.setdefault(metadata.get("namespace", ""), [])
        if not deployment_ready(deployment):
            names.append(metadata.get("name"))
    return out


def pending_releases(records):
    """The metadata (namespace, name, labels) of helm's release records left pending, sorted by namespace and name."""
    out = []
    for record in records:
        metadata = record.get("metadata") or {}
        out.append(
            {
                "namespace": metadata.get("namespace", ""),
                "name": metadata.get("name", ""),
                "labels": metadata.get("labels") or {},
            }
        )
    return sorted(out, key=lambda m: (m["namespace"], m["name"]))


def gather(api_client):
    """One list of the pending release records and one of every namespace's Deployments."""
    records = get_json(api_client, "/api/v1/secrets", {"labelSelector": PENDING_SELECTOR}, METADATA_ONLY)
    deployments = get_json(api_client, "/apis/apps/v1/deployments")
    return {
        "pending_releases": pending_releases(records.get("items") or []),
        "deployments_unready": deployments_unready(deployments.get("items") or []),
    }


def run_module(module):
    state = call_api(
        module,
        gather,
        "while listing the Helm release records (Secrets labelled owner=helm) and the Deployments of every namespace; "
        "the credentials need list on secrets and on deployments.apps in every namespace (rbac/installer.yml)",
    )
    module.exit_json(changed=False, **state)
