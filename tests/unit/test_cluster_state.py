"""owned_state() renames the run's namespace everywhere (keys, derived names) and drops volatile metadata."""

from __future__ import annotations

from tests.integration import cluster_state


def test_namespace_is_replaced_in_keys_and_derived_names(monkeypatch):
    objs = {
        "admissionregistration.k8s.io/v1beta1/MutatingAdmissionPolicy//dfw-scratch-ir-k0-f59a2": {
            "metadata": {"name": "dfw-scratch-ir-k0-f59a2", "uid": "u", "resourceVersion": "7"},
            "spec": {"selector": "kubernetes.io/metadata.name: ir-k0-f59a2"},
        },
        "v1/Pod/ir-k0-f59a2/perms-x7k2p": {
            "metadata": {"name": "perms-x7k2p", "generateName": "perms-", "namespace": "ir-k0-f59a2"},
            "status": {"startTime": "2026-01-01T00:00:00Z", "conditions": [{"type": "Ready", "status": "True"}]},
        },
    }
    monkeypatch.setattr(cluster_state, "collect", lambda *a, **k: objs)
    state = cluster_state.owned_state(None, {"ir-k0-f59a2": "<ns>"})
    assert sorted(state) == [
        "admissionregistration.k8s.io/v1beta1/MutatingAdmissionPolicy//dfw-scratch-<ns>",
        "v1/Pod/<ns>/perms-*",
    ]
    policy = state["admissionregistration.k8s.io/v1beta1/MutatingAdmissionPolicy//dfw-scratch-<ns>"]
    assert policy == {
        "metadata": {"name": "dfw-scratch-<ns>"},
        "spec": {"selector": "kubernetes.io/metadata.name: <ns>"},
    }
    assert state["v1/Pod/<ns>/perms-*"]["status"] == {"conditions": [["Ready", "True"]]}
