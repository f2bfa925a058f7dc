"""Per-cluster connection settings from the inventory reach every Kubernetes module of a stage, with
nothing in the environment: a kubeconfig per host (flywheel_kubeconfig), or a host and token per host
(flywheel_k8s_host / flywheel_k8s_api_key / flywheel_k8s_ca_cert)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration.automation import awx_credential_env, delete_account, make_account, token

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def remediate(inventory: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / f"inventory-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(inventory))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("K8S_AUTH_", "KUBECONFIG"))}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), HOME=str(tmp_path / "home"))
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(path), "playbooks/remediate.yml"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def cluster_host(namespace: str, **connection) -> dict:
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "remediate_namespace": namespace,
        "remediate_cluster_scoped": False,
        **connection,
    }
    return {"flywheel_clusters": {"hosts": {"c1": host}}}


def test_kubeconfig_per_host(vanilla_kubeconfig, vanilla, namespace, tmp_path):
    proc = remediate(cluster_host(namespace, flywheel_kubeconfig=vanilla_kubeconfig), tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    role = client.RbacAuthorizationV1Api(vanilla).read_namespaced_role("nemoevaluator-extra", namespace)
    assert role.rules[0].verbs == ["delete"]


def test_token_per_host(vanilla_kubeconfig, vanilla, tool_env, namespace, tmp_path):
    tag = uuid.uuid4().hex[:6]
    names = {"data-flywheel": namespace, "nemo": namespace, "dataflywheel-automation": f"conn-sa-{tag}"}
    account = make_account(vanilla_kubeconfig, tool_env, ["inspect.yml", "runner.yml"], names)
    try:
        creds = awx_credential_env(vanilla_kubeconfig, token(vanilla, account), tmp_path)
        proc = remediate(
            cluster_host(
                namespace,
                flywheel_k8s_host=creds["K8S_AUTH_HOST"],
                flywheel_k8s_api_key=creds["K8S_AUTH_API_KEY"],
                flywheel_k8s_ca_cert=creds["K8S_AUTH_SSL_CA_CERT"],
            ),
            tmp_path,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
        assert creds["K8S_AUTH_API_KEY"] not in proc.stdout + proc.stderr
        binding = client.RbacAuthorizationV1Api(vanilla).read_namespaced_role_binding("nemoevaluator-extra", namespace)
        assert binding.subjects[0].name == "nemoevaluator"
    finally:
        delete_account(vanilla_kubeconfig, tool_env, account)
