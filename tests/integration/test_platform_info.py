"""platform_info against each local-cluster profile, run through Ansible (the real module path)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import kubeconfig_for

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]


def run_module(args):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
    )
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible"), "localhost", "-m", "dataflywheel.blueprint.platform_info", "-a", args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    out = json.loads(proc.stdout)
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.mark.parametrize("profile", ["vanilla", "vanilla-map", "openshift", "pcai", "nutanix"])
def test_profile_is_classified(profile):
    result = run_module(json.dumps({"kubeconfig": kubeconfig_for(profile)}))
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


def test_force_and_bad_kubeconfig():
    forced = run_module(json.dumps({"kubeconfig": kubeconfig_for("vanilla"), "force": "pcai"}))
    assert forced["platform_info"]["platform"] == "pcai"
    assert forced["platform_info"]["detected_platform"] == "vanilla"
    missing = run_module(json.dumps({"kubeconfig": "/nonexistent/kubeconfig"}))
    assert missing["failed"] is True
    # kubernetes.core marks kubeconfig no_log (it may be an inline config with credentials), so Ansible
    # masks the path in the message
    assert "does not exist; set kubeconfig (or K8S_AUTH_KUBECONFIG) to a readable file" in missing["msg"]
