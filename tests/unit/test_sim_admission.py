"""The EMULATED OpenShift SCC admission's decision (tests/sim/admission.py), against the SCC objects the
openshift profile installs (copies of the shipped defaults): what each SCC refuses, and the order."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.sim.admission import scc_order, scc_problems

OBJECTS = Path(__file__).resolve().parents[1] / "sim" / "profiles" / "openshift" / "objects.yaml"
SCCS = {
    d["metadata"]["name"]: d
    for d in yaml.safe_load_all(OBJECTS.read_text())
    if d and d.get("kind") == "SecurityContextConstraints"
}
NS = {
    "openshift.io/sa.scc.uid-range": "1000680000/10000",
    "openshift.io/sa.scc.supplemental-groups": "1000680000/10000",
    "openshift.io/sa.scc.mcs": "s0:c26,c15",
}


def pod(spec=None, **container):
    return {"spec": {**(spec or {}), "containers": [{"name": "main", "image": "x", **container}]}}


def test_the_profile_ships_the_default_sccs():
    assert {"restricted-v2", "nonroot", "nonroot-v2", "anyuid", "hostmount-anyuid", "privileged"} <= set(SCCS)


@pytest.mark.parametrize(
    ("scc", "the_pod", "problem"),
    [
        (
            "restricted-v2",
            pod({"securityContext": {"runAsUser": 1000}}),
            "must be in the ranges: [1000680000, 1000689999]",
        ),
        ("restricted-v2", pod(securityContext={"runAsUser": 0}), "must be in the ranges"),
        ("restricted-v2", pod({"securityContext": {"fsGroup": 1000}}), "fsGroup: Invalid value: 1000"),
        ("restricted-v2", pod(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}}), "capability may not be added"),
        ("restricted-v2", pod(securityContext={"allowPrivilegeEscalation": True}), "privilege escalation"),
        (
            "restricted-v2",
            pod({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
            "not an allowed seccomp",
        ),
        (
            "restricted-v2",
            pod({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
            "hostPath volumes are not allowed",
        ),
        ("restricted-v2", pod({"hostNetwork": True}), "hostNetwork is not allowed"),
        ("restricted-v2", pod(ports=[{"containerPort": 80, "hostPort": 80}]), "Host ports are not allowed"),
        ("restricted-v2", pod(securityContext={"seLinuxOptions": {"type": "spc_t"}}), "seLinuxOptions.type"),
        ("nonroot-v2", pod(securityContext={"runAsUser": 0}), "running with the root UID is forbidden"),
        ("nonroot-v2", pod({"securityContext": {"runAsNonRoot": False}}), "runAsNonRoot: Invalid value: false"),
        ("anyuid", pod(securityContext={"privileged": True}), "Privileged containers are not allowed"),
        ("anyuid", pod({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}), "seccomp may not be set"),
        ("anyuid", pod(securityContext={"capabilities": {"add": ["MKNOD"]}}), "capability may not be added"),
    ],
)
def test_each_scc_refuses_what_openshift_refuses(scc, the_pod, problem):
    problems = scc_problems(SCCS[scc], the_pod, NS)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("scc", "the_pod"),
    [
        ("restricted-v2", pod()),
        ("restricted-v2", pod({"securityContext": {"runAsUser": 1000680005, "fsGroup": 1000680000}})),
        ("restricted-v2", pod(securityContext={"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}})),
        ("restricted-v2", pod({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}})),
        ("nonroot-v2", pod({"securityContext": {"runAsUser": 1000, "runAsNonRoot": True}})),
        ("anyuid", pod({"securityContext": {"runAsUser": 0, "fsGroup": 0}})),
        ("hostmount-anyuid", pod({"volumes": [{"name": "h", "hostPath": {"path": "/var"}}]})),
        ("privileged", pod({"hostNetwork": True}, securityContext={"privileged": True})),
    ],
)
def test_each_scc_admits_what_openshift_admits(scc, the_pod):
    assert scc_problems(SCCS[scc], the_pod, NS) == []


def test_a_namespace_without_its_uid_range_admits_nothing_under_a_range_strategy():
    assert "unable to find annotation" in scc_problems(SCCS["restricted-v2"], pod(), {})[0]
    assert scc_problems(SCCS["anyuid"], pod(), {}) == []


def test_order_is_priority_then_most_restrictive():
    names = [s["metadata"]["name"] for s in scc_order(list(SCCS.values()))]
    assert names[0] == "anyuid"  # priority 10
    assert names.index("restricted-v2") < names.index("hostmount-anyuid") < names.index("privileged")
