"""platform_info against each local-cluster profile: the module's code in-process per profile, and once
through Ansible (`ansible localhost -m`, the real module path)."""

import pytest

from .conftest import kubeconfig_for

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("profile", ["vanilla", "openshift", "pcai", "nutanix"])
def test_profile_is_classified(ansible_module, profile):
    result = ansible_module("platform_info", {"kubeconfig": kubeconfig_for(profile)})
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False
    facts = result["platform_info"]
    assert facts["platform"] == profile
    assert facts["istio"]["present"] is (profile == "pcai")
    assert facts["nutanix_storage"]["present"] is (profile == "nutanix")
    assert facts["openshift"]["present"] is (profile == "openshift")
    assert facts["mutating_admission_policy"] == "admissionregistration.k8s.io/v1beta1"
    if profile == "pcai":
        assert facts["pcai"]["cluster_domain"] == "pcai.dfw.example.test"


def test_force_and_bad_kubeconfig(ansible_module):
    forced = ansible_module("platform_info", {"kubeconfig": kubeconfig_for("vanilla"), "force": "pcai"}, via="ansible")
    assert forced["platform_info"]["platform"] == "pcai"
    assert forced["platform_info"]["detected_platform"] == "vanilla"
    missing = ansible_module("platform_info", {"kubeconfig": "/nonexistent/kubeconfig"})
    assert missing["failed"] is True
    assert "kubeconfig /nonexistent/kubeconfig does not exist" in missing["msg"]
