"""playbooks/preflight.yml on the local cluster: read-only, and each check fails with the fix named."""

from __future__ import annotations

import json
import re
import shutil
import uuid

import pytest
from kubernetes import client

from tests.harness import ROOT, run_playbook
from tests.sim import chart_repo

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
    # namespaces an earlier test module dropped may still be terminating: they may go, nothing else may change
    before = {n.metadata.name: n.status.phase for n in client.CoreV1Api(vanilla).list_namespace().items}
    proc = preflight(vanilla_kubeconfig, {"flywheel_prereqs_namespace": "preflight-never-created"}, "--check")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    assert "local-cluster: vanilla (Kubernetes 1.34), 2 GPU node(s)" in proc.stdout
    assert "MutatingAdmissionPolicy not served" in proc.stdout  # 1.34 as shipped: the feature gate is off
    assert "the credentials may do all" in proc.stdout
    assert "changed=0" in proc.stdout and "failed=0" in proc.stdout
    after = {n.metadata.name for n in client.CoreV1Api(vanilla).list_namespace().items}
    assert after <= set(before), f"preflight created {sorted(after - set(before))}"
    assert {n for n, phase in before.items() if phase == "Active"} <= after


def test_without_an_inventory_localhost_is_the_cluster(vanilla_kubeconfig):
    # without an inventory the charts are NGC's, which this machine cannot reach: the chart and key check
    # has its own test (test_chart_repository_credentials_are_checked_before_any_change)
    proc = preflight(
        vanilla_kubeconfig, {"preflight_min_gpu_nodes": 1, "preflight_check_charts": False}, inventory=None
    )
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


# ---------------------------------------------------------------- chart repository credentials (NGC key)
CHART_PREFIXES = {  # role variable prefix -> the fixture chart it installs
    "gpu_operator": "gpu-operator",
    "nim_operator": "k8s-nim-operator",
    "nemo_platform_volcano": "volcano",
    "flywheel": "nvidia-blueprint-data-flywheel",
}


def chart_repo_vars(repo_url: str) -> dict:
    """The chart roles pointed at the authenticated loopback repository, which stands for NGC here
    (flywheel_ngc_hosts), so the roles' NGC default credentials ($oauthtoken and the NGC key) apply."""
    out = {"flywheel_ngc_hosts": ["127.0.0.1"]}
    for prefix, chart in CHART_PREFIXES.items():
        out[f"{prefix}_chart_ref"] = chart
        out[f"{prefix}_chart_repo_url"] = repo_url
    return out


def test_chart_repository_credentials_are_checked_before_any_change(
    vanilla_kubeconfig, vanilla, fixture_charts, tmp_path
):
    """Must show 2 (the refusal half): the fixture charts served by a repository that requires basic auth
    (a real HTTP server on loopback standing for NGC): without the key preflight stops naming
    flywheel_ngc_api_key, with a wrong key the repository's 401 names it too; nothing changes and the key
    is not printed. One preflight run, one inventory host per case."""
    key = f"nvapi-preflight-{uuid.uuid4().hex}"
    repo = chart_repo.start(fixture_charts, username="$oauthtoken", password=key)
    inventory = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventories" / "local", inventory)
    host = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    hosts = {
        "no-key": {**host, "flywheel_ngc_api_key": ""},
        "wrong-key": {**host, "flywheel_ngc_api_key": key[::-1]},
        "right-key": {**host, "flywheel_ngc_api_key": key},
    }
    (inventory / "hosts.yml").write_text(
        json.dumps({"flywheel_clusters": {"hosts": hosts}, "gpu_hosts": {"hosts": {}}})
    )
    before = {n.metadata.name for n in client.CoreV1Api(vanilla).list_namespace().items}
    try:
        proc = run_playbook(
            "playbooks/preflight.yml",
            {**chart_repo_vars(repo.url), "flywheel_prereqs_namespace": "preflight-never-created"},
            inventory=inventory,
            env={
                "NGC_API_KEY": None,
                "KUBECONFIG": vanilla_kubeconfig,
                "K8S_AUTH_KUBECONFIG": vanilla_kubeconfig,
                "PROFILE": "vanilla",
                "FLYWHEEL_FIXTURE_CHARTS": fixture_charts,
            },
        )
    finally:
        repo.shutdown()
    out = " ".join(proc.stdout.split())
    assert proc.returncode != 0
    assert re.search(r"no-key\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", proc.stdout), proc.stdout[-4000:]
    assert re.search(r"wrong-key\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", proc.stdout)
    assert re.search(r"right-key\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", proc.stdout), out[-4000:]
    assert "no-key: flywheel_ngc_api_key is empty" in out and "the Data Flywheel chart" in out
    assert "refused the credentials (HTTP 401): check flywheel_ngc_api_key" in out
    # the repository saw the wrong key refused and the right one served (one read of index.yaml each)
    assert repo.stats["401 /index.yaml"] >= 1 and repo.stats["200 /index.yaml"] >= 1, repo.stats
    assert key not in proc.stdout + proc.stderr and key[::-1] not in proc.stdout + proc.stderr
    assert {n.metadata.name for n in client.CoreV1Api(vanilla).list_namespace().items} == before
