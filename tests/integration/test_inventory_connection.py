"""Per-cluster connection settings from the inventory reach every Kubernetes module of a stage, with
nothing in the environment: a kubeconfig per host (flywheel_kubeconfig), or a host and token per host
(flywheel_k8s_host / flywheel_k8s_api_key / flywheel_k8s_ca_cert)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from tests.harness import PlaybookRun, run_playbook
from tests.integration.automation import awx_credential_env, delete_account, make_account, token

pytestmark = pytest.mark.cluster


def remediate(inventory: dict, tmp_path: Path) -> PlaybookRun:
    path = tmp_path / f"inventory-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(inventory))
    unset = {k: None for k in os.environ if k.startswith(("K8S_AUTH_", "KUBECONFIG"))}
    return run_playbook("playbooks/remediate.yml", inventory=path, env={**unset, "HOME": str(tmp_path / "home")})


def cluster_host(namespace: str, **connection) -> dict:
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "remediate_namespace": namespace,
        "remediate_cluster_scoped": False,
        # an evaluator owned by the NIM Operator (its CR name): the unit that acts on it runs
        "remediate_evaluator_name": "nemoevaluator",
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
