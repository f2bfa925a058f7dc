"""gpu_operator and nim_operator on the openshift profile: OLM Subscriptions, no helm releases.

The local cluster serves the OLM API (CRDs only); its olm-subscription emulator writes what OLM
would write once an operator is installed (an installed CSV in phase Succeeded), and its
operator-status emulator writes the ClusterPolicy's state. The cluster serves the operators' REAL
CRDs (ClusterPolicy with its nine required sections, the NIM Operator's kinds) from its start, as
the operators' bundles would install them: OLM installs nothing here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.harness import run_playbook
from tests.integration.conftest import kubeconfig_for
from tests import upstream

pytestmark = pytest.mark.cluster
PLAY = """
- hosts: flywheel_clusters
  gather_facts: false
  module_defaults:
    group/kubernetes.core.k8s:
      kubeconfig: "{{ flywheel_kubeconfig }}"
  vars:
    flywheel_platform: openshift
  tasks:
    - ansible.builtin.include_role: {name: dataflywheel.blueprint.gpu_operator}
    - ansible.builtin.include_role: {name: dataflywheel.blueprint.nim_operator}
"""


def run(playbook: Path, kubeconfig: str) -> str:
    proc = run_playbook(
        playbook,
        {"gpu_operator_wait_timeout": "120"},
        inventory="tests/fixtures/inventory",
        env={"DFW_KUBECONFIG": kubeconfig},
    )
    found = re.search(r"local-cluster\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", proc.stdout)
    assert found, proc.stdout[-5000:] + proc.stderr[-2000:]
    return found.group(1)


def forget_operators(custom: client.CustomObjectsApi) -> None:
    """Another test on this worker's openshift cluster may have installed the operators already: remove
    what the roles create through OLM, so the first run below has to create it."""
    objects = [
        ("operators.coreos.com", "v1alpha1", "nvidia-gpu-operator", "subscriptions", "gpu-operator-certified"),
        ("operators.coreos.com", "v1alpha1", "openshift-operators", "subscriptions", "nim-operator-certified"),
    ]
    groups = custom.list_namespaced_custom_object("operators.coreos.com", "v1", "nvidia-gpu-operator", "operatorgroups")
    objects += [
        ("operators.coreos.com", "v1", "nvidia-gpu-operator", "operatorgroups", g["metadata"]["name"])
        for g in groups["items"]
    ]
    for group, version, namespace, plural, name in objects:
        try:
            custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    try:
        custom.delete_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", "cluster-policy")
    except ApiException as exc:
        if exc.status != 404:
            raise


def test_cluster_operators_through_olm_on_openshift(tmp_path):
    kubeconfig = kubeconfig_for("openshift")
    api = config.new_client_from_config(config_file=kubeconfig)
    playbook = tmp_path / "operators.yml"
    playbook.write_text(PLAY)
    forget_operators(client.CustomObjectsApi(api))

    assert int(run(playbook, kubeconfig)) > 0
    custom = client.CustomObjectsApi(api)
    gpu = custom.get_namespaced_custom_object(
        "operators.coreos.com", "v1alpha1", "nvidia-gpu-operator", "subscriptions", "gpu-operator-certified"
    )
    assert gpu["spec"] == {
        "name": "gpu-operator-certified",
        "channel": "stable",
        "source": "certified-operators",
        "sourceNamespace": "openshift-marketplace",
        "installPlanApproval": "Automatic",
    }
    groups = custom.list_namespaced_custom_object("operators.coreos.com", "v1", "nvidia-gpu-operator", "operatorgroups")
    assert [g["spec"]["targetNamespaces"] for g in groups["items"]] == [["nvidia-gpu-operator"]]
    nim = custom.get_namespaced_custom_object(
        "operators.coreos.com", "v1alpha1", "openshift-operators", "subscriptions", "nim-operator-certified"
    )
    assert nim["spec"]["name"] == "nim-operator-certified"
    policy = custom.get_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", "cluster-policy")
    assert policy["spec"]["driver"]["version"] == "570.172.08"
    assert policy["spec"]["driver"]["kernelModuleType"] == "auto"
    required = upstream.crd_schema("ClusterPolicy")["properties"]["spec"]["required"]
    assert set(required) <= set(policy["spec"]), required
    assert policy["status"]["state"] == "ready"
    # no helm release: the operators came through OLM
    names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
    assert not names & {"gpu-operator", "nim-operator"}

    assert run(playbook, kubeconfig) == "0"


NFD_LABEL = "feature.node.kubernetes.io/pci-10de.present"


def test_gpu_operator_stops_before_anything_when_nfd_labelled_no_node(ansible_playbook, tmp_path):
    """OpenShift's GPU Operator needs Node Feature Discovery, its own operator there: without its node labels the
    ClusterPolicy would be accepted and schedule nothing. The role must stop before any OLM object, naming NFD."""
    kubeconfig = kubeconfig_for("openshift")
    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    labelled = [n.metadata.name for n in core.list_node(label_selector=f"{NFD_LABEL}=true").items]
    assert labelled, "the profile's GPU nodes carry the NFD label (the premise)"
    playbook = tmp_path / "gpu-operator.yml"
    nim = "    - ansible.builtin.include_role: {name: dataflywheel.blueprint.nim_operator}\n"
    playbook.write_text(PLAY.replace(nim, ""))
    for name in labelled:
        core.patch_node(name, {"metadata": {"labels": {NFD_LABEL: None}}})
    try:
        proc = ansible_playbook(
            playbook,
            {"gpu_operator_nfd_wait_timeout": 1},
            inventory="tests/fixtures/inventory",
            env={"DFW_KUBECONFIG": kubeconfig},
        )
    finally:
        for name in labelled:
            core.patch_node(name, {"metadata": {"labels": {NFD_LABEL: "true"}}})
    assert proc.returncode != 0 and re.search(r"local-cluster\s*:.*failed=1", proc.stdout), proc.stdout[-3000:]
    assert "no node carries feature.node.kubernetes.io/pci-10de.present=true" in proc.stdout
    assert "Node Feature Discovery Operator" in proc.stdout and "openshift-nfd" in proc.stdout
    assert "OLM namespace, OperatorGroup and Subscription" not in proc.stdout, "nothing may be installed first"
