"""playbooks/preflight.yml on the local cluster: read-only, and each check fails with the fix named."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.harness import run_playbook

pytestmark = pytest.mark.cluster


def preflight(kubeconfig: str, extra: dict, *args: str, inventory: str | None = "inventories/local"):
    return run_playbook(
        "playbooks/preflight.yml",
        extra,
        inventory=inventory,
        args=args,
        env={"KUBECONFIG": kubeconfig, "K8S_AUTH_KUBECONFIG": kubeconfig, "PROFILE": "vanilla"},
    )


def test_preflight_passes_reports_and_changes_nothing(vanilla_kubeconfig, vanilla):
    before = {n.metadata.name for n in client.CoreV1Api(vanilla).list_namespace().items}
    proc = preflight(vanilla_kubeconfig, {"flywheel_prereqs_namespace": "preflight-never-created"}, "--check")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    assert "local-cluster: vanilla (Kubernetes 1.34), 2 GPU node(s)" in proc.stdout
    assert "MutatingAdmissionPolicy admissionregistration.k8s.io/v1beta1" in proc.stdout
    assert "the credentials may do all" in proc.stdout
    assert "changed=0" in proc.stdout and "failed=0" in proc.stdout
    after = {n.metadata.name for n in client.CoreV1Api(vanilla).list_namespace().items}
    assert after == before


def test_without_an_inventory_localhost_is_the_cluster(vanilla_kubeconfig):
    proc = preflight(vanilla_kubeconfig, {"preflight_min_gpu_nodes": 1}, inventory=None)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    assert "localhost: vanilla (Kubernetes 1.34)" in proc.stdout


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"flywheel_platform": "openshift"},
            "the inventory sets flywheel_platform=openshift but the API server looks like vanilla",
        ),
        ({"preflight_min_gpu_nodes": 3}, "2 node(s) advertise GPUs, preflight_min_gpu_nodes is 3"),
        ({"preflight_storage_class": "fast-nvme"}, "StorageClass fast-nvme does not exist"),
        (
            {"flywheel_prereqs_namespace": ["not", "a", "string"], "flywheel_run_progress_interval": "often"},
            "flywheel_run_progress_interval",
        ),
    ],
    ids=["platform-mismatch", "gpu-nodes", "storage-class", "bad-input"],
)
def test_each_check_fails_with_the_fix(vanilla_kubeconfig, extra, expected):
    proc = preflight(vanilla_kubeconfig, extra)
    assert proc.returncode != 0
    assert expected in " ".join(proc.stdout.split()), proc.stdout[-4000:]
    assert "changed=0" in proc.stdout


def test_bad_input_names_every_bad_variable_across_roles(vanilla_kubeconfig):
    proc = preflight(
        vanilla_kubeconfig,
        {
            "flywheel_prereqs_namespace_labels": "not a dict",
            "remediate_scc_grants": "anyuid",
            "flywheel_run_wait_sleep": "1s",
        },
    )
    text = " ".join(proc.stdout.split())
    assert proc.returncode != 0
    for role, variable in [
        ("flywheel_prereqs", "flywheel_prereqs_namespace_labels"),
        ("remediate", "remediate_scc_grants"),
        ("flywheel_run", "flywheel_run_wait_sleep"),
    ]:
        assert f"Role {role}:" in text and variable in text, text[-4000:]
    assert "nothing was changed" in text
