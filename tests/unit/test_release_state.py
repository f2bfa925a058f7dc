"""release_state_info's reads: which Deployments are not Available (kubernetes.core's readiness), the pending release
records' metadata, and the two list requests it makes (metadata only for the release records)."""

import json

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.release_state import (
    METADATA_ONLY,
    PENDING_SELECTOR,
    deployments_unready,
    gather,
    pending_releases,
)


def deployment(namespace, name, desired, status):
    return {
        "metadata": {"namespace": namespace, "name": name, "generation": 2},
        "spec": {"replicas": desired},
        "status": status,
    }


def test_deployments_unready_judges_like_kubernetes_cores_wait():
    ready = {"replicas": 2, "availableReplicas": 2, "observedGeneration": 2}
    deployments = [
        deployment("a", "ok", 2, ready),
        deployment("a", "scaled-to-zero", 0, {"observedGeneration": 2}),
        deployment("b", "rolling", 2, {**ready, "unavailableReplicas": 1}),
        deployment("b", "old-generation", 2, {**ready, "observedGeneration": 1}),
        deployment("b", "too-few", 3, ready),
        {"metadata": {"namespace": "c", "name": "no-status", "generation": 1}, "spec": {"replicas": 1}},
    ]
    assert deployments_unready(deployments) == {
        "a": [],
        "b": ["rolling", "old-generation", "too-few"],
        "c": ["no-status"],
    }
    assert deployments_unready([]) == {}


def record(namespace, release, revision, status):
    return {
        "kind": "PartialObjectMetadata",
        "metadata": {
            "namespace": namespace,
            "name": f"sh.helm.release.v1.{release}.v{revision}",
            "labels": {"name": release, "owner": "helm", "status": status, "version": str(revision)},
        },
    }


def test_pending_releases_keep_namespace_name_and_labels_sorted():
    records = [record("nim", "nim-operator", 3, "pending-upgrade"), record("gpu", "gpu-operator", 1, "pending-install")]
    assert pending_releases(records) == [
        {
            "namespace": "gpu",
            "name": "sh.helm.release.v1.gpu-operator.v1",
            "labels": {"name": "gpu-operator", "owner": "helm", "status": "pending-install", "version": "1"},
        },
        {
            "namespace": "nim",
            "name": "sh.helm.release.v1.nim-operator.v3",
            "labels": {"name": "nim-operator", "owner": "helm", "status": "pending-upgrade", "version": "3"},
        },
    ]
    assert pending_releases([]) == []


class _Answer:
    def __init__(self, body):
        self.data = json.dumps(body).encode()


class _Api:
    """Answers the two lists by path and records each request."""

    def __init__(self, answers):
        self.answers = answers
        self.requests = []

    def call_api(self, path, method, query_params=None, header_params=None, **_kwargs):
        self.requests.append((method, path, dict(query_params or []), (header_params or {}).get("Accept")))
        return _Answer({"items": self.answers[path]})


def test_gather_lists_pending_records_as_metadata_and_every_deployment_once():
    api = _Api(
        {
            "/api/v1/secrets": [record("gpu", "gpu-operator", 1, "pending-install")],
            "/apis/apps/v1/deployments": [
                deployment("gpu", "gpu-operator", 1, {"replicas": 1, "availableReplicas": 1, "observedGeneration": 2}),
                deployment("df", "df-api", 1, {"replicas": 1, "observedGeneration": 2, "unavailableReplicas": 1}),
            ],
        }
    )
    state = gather(api)
    assert api.requests == [
        ("GET", "/api/v1/secrets", {"labelSelector": PENDING_SELECTOR}, METADATA_ONLY),
        ("GET", "/apis/apps/v1/deployments", {}, "application/json"),
    ]
    assert PENDING_SELECTOR == "owner=helm,status in (pending-install,pending-upgrade,pending-rollback)"
    assert METADATA_ONLY.startswith("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
    assert [r["labels"]["status"] for r in state["pending_releases"]] == ["pending-install"]
    assert state["deployments_unready"] == {"gpu": [], "df": ["df-api"]}
