"""platform_info against each local-cluster profile: the module's code in-process per profile, and once
through Ansible (`ansible localhost -m`, the real module path)."""

import pytest
from kubernetes import client

from .conftest import kubeconfig_for

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("profile", ["vanilla", "vanilla-map", "openshift", "pcai", "nutanix"])
def test_profile_is_classified(ansible_module, profile):
    result = ansible_module("platform_info", {"kubeconfig": kubeconfig_for(profile)})
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False
    facts = result["platform_info"]
    assert facts["platform"] == profile.removesuffix("-map")
    assert facts["istio"]["present"] is (profile == "pcai")
    assert facts["nutanix_storage"]["present"] is (profile == "nutanix")
    assert facts["openshift"]["present"] is (profile == "openshift")
    # MutatingAdmissionPolicy is off as the platforms ship (beta, gate off in 1.34); vanilla-map turns it on
    map_api = "admissionregistration.k8s.io/v1beta1" if profile == "vanilla-map" else None
    assert facts["mutating_admission_policy"] == map_api
    if profile == "pcai":
        assert facts["pcai"]["cluster_domain"] == "pcai.dfw.example.test"


def test_force_and_bad_kubeconfig(ansible_module):
    forced = ansible_module("platform_info", {"kubeconfig": kubeconfig_for("vanilla"), "force": "pcai"}, via="ansible")
    assert forced["platform_info"]["platform"] == "pcai"
    assert forced["platform_info"]["detected_platform"] == "vanilla"
    missing = ansible_module("platform_info", {"kubeconfig": "/nonexistent/kubeconfig"})
    assert missing["failed"] is True
    # kubernetes.core marks kubeconfig no_log (it may be an inline config with credentials), so Ansible
    # masks the path in the message
    assert "does not exist; set kubeconfig (or K8S_AUTH_KUBECONFIG) to a readable file" in missing["msg"]


def test_start_of_run_states_equal_the_apis_answer(ansible_module, vanilla):
    """What the roles rely on instead of a read of their own: the Established CRDs and the GPU Operator's
    ClusterPolicy states (on a run that changes no release), the cluster DNS Service, as the API server has them."""
    facts = ansible_module("platform_info", {"kubeconfig": kubeconfig_for("vanilla")})["platform_info"]
    crds = client.ApiextensionsV1Api(vanilla).list_custom_resource_definition().items
    established = sorted(
        c.metadata.name
        for c in crds
        if any(x.type == "Established" and x.status == "True" for x in (c.status.conditions or []))
    )
    assert "nimservices.apps.nvidia.com" in established  # the profile serves the NIM Operator's CRDs
    assert facts["crds_established"] == established
    if any(c.metadata.name == "clusterpolicies.nvidia.com" for c in crds):
        policies = client.CustomObjectsApi(vanilla).list_cluster_custom_object("nvidia.com", "v1", "clusterpolicies")
        assert facts["gpu_cluster_policies"] == {
            p["metadata"]["name"]: (p.get("status") or {}).get("state") or "" for p in policies["items"]
        }
    else:
        assert facts["gpu_cluster_policies"] == {}
    dns = client.CoreV1Api(vanilla).read_namespaced_service("kube-dns", "kube-system")
    assert dns.spec.cluster_ip
    assert facts["dns_services"] == [
        {"metadata": {"namespace": "kube-system", "name": "kube-dns"}, "spec": {"clusterIP": dns.spec.cluster_ip}}
    ]
