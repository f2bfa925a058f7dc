"""platform_info against each local-cluster profile: the module's code in-process per profile, and once
through Ansible (`ansible localhost -m`, the real module path)."""

import pytest

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
