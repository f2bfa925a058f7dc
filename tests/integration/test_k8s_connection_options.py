"""kubernetes.core's connection options, set once in a play's module_defaults for the group
dataflywheel.blueprint.k8s, carry the preflight and a remediation: through a real HTTP CONNECT proxy
(which counts the tunnels it forwards, so the test proves the traffic went through it) with client
certificates instead of a kubeconfig (kubernetes.core-only options our modules did not take before).
A second run with the proxy gone fails in preflight, before any change.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.integration.connect_proxy import ConnectProxy
from tests.harness import run_playbook
from tests.integration.remediate_run import drop_namespace, fresh_namespace
from tests.unit.test_rest_options import run_main

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]


def connection_of(kubeconfig: str) -> dict:
    """host, ca_cert, client_cert and client_key of the kubeconfig's current context."""
    cfg = yaml.safe_load(Path(kubeconfig).read_text())
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    if not user.get("client-certificate") or not cluster.get("certificate-authority"):
        pytest.fail(f"{kubeconfig} has no client certificate and CA file; this test needs a cluster that takes them")
    return {
        "host": cluster["server"],
        "ca_cert": cluster["certificate-authority"],
        "client_cert": user["client-certificate"],
        "client_key": user["client-key"],
    }


PLAYBOOK = """
- name: Preflight, every Kubernetes call through the play's connection defaults
  hosts: flywheel_clusters
  gather_facts: false
  module_defaults:
    group/dataflywheel.blueprint.k8s: "{{ connection }}"
  roles:
    - role: dataflywheel.blueprint.preflight

- name: A remediation through the same defaults
  hosts: flywheel_clusters
  gather_facts: false
  module_defaults:
    group/dataflywheel.blueprint.k8s: "{{ connection }}"
  tasks:
    - name: Evaluator secret-delete RBAC
      ansible.builtin.include_role:
        name: dataflywheel.blueprint.remediate
        tasks_from: all/evaluator_rbac
"""


def run(tmp_path, connection, extra):
    playbook = tmp_path / f"connection-{uuid.uuid4().hex[:6]}.yml"
    playbook.write_text(PLAYBOOK)
    # no kubeconfig anywhere: only the options in module_defaults can reach the cluster
    env = {k: None for k in os.environ if k.startswith("K8S_AUTH_")}
    env.update(KUBECONFIG=str(tmp_path / "no-such-kubeconfig"), PROFILE="vanilla")
    return run_playbook(playbook, dict(extra, connection=connection), inventory="inventories/local", env=env)


def test_preflight_and_a_remediation_through_a_proxy_with_client_certificates(vanilla_kubeconfig, tmp_path):
    conn = connection_of(vanilla_kubeconfig)
    api, ns = fresh_namespace(vanilla_kubeconfig, "dfw-proxy")
    proxy = ConnectProxy()
    try:
        extra = {"remediate_namespace": ns, "flywheel_prereqs_namespace": f"{ns}-never-created"}
        proc = run(tmp_path, dict(conn, proxy=proxy.url), extra)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "the credentials may do all" in proc.stdout
        assert "failed=0" in proc.stdout
        # every Kubernetes call of the run went through the proxy, to the API server only
        api_server = conn["host"].removeprefix("https://")
        assert set(proxy.tunnels) == {api_server}, proxy.tunnels
        assert proxy.tunnels[api_server] >= 4 and proxy.refused == 0, proxy.tunnels
        role = client.RbacAuthorizationV1Api(api).read_namespaced_role("nemoevaluator-extra", ns)
        assert role.rules[0].verbs == ["delete"]

        # the proxy gone: preflight stops at its first Kubernetes call, naming the proxy; nothing changes
        proxy.stop()
        client.RbacAuthorizationV1Api(api).delete_namespaced_role("nemoevaluator-extra", ns)
        down = run(tmp_path, dict(conn, proxy=proxy.url), extra)
        assert down.returncode != 0
        assert f"through proxy {proxy.url}" in down.stdout, down.stdout[-4000:]
        with pytest.raises(client.ApiException) as gone:
            client.RbacAuthorizationV1Api(api).read_namespaced_role("nemoevaluator-extra", ns)
        assert gone.value.status == 404
    finally:
        proxy.server_close()
        drop_namespace(api, ns)


def test_impersonation_reaches_the_api_server(vanilla_kubeconfig):
    """impersonate_user goes out as Impersonate-User: a user without grants is refused, and the message
    says as whom; with system:masters as its group the same call passes."""
    conn = dict(connection_of(vanilla_kubeconfig), impersonate_user="dfw-nobody")
    denied = run_main("platform_info", conn)
    assert denied["failed"] and "403" in denied["msg"] and "as dfw-nobody" in denied["msg"], denied["msg"]
    allowed = run_main("platform_info", dict(conn, impersonate_groups=["system:masters"]))
    assert not allowed["failed"], allowed["msg"]
    assert allowed["platform_info"]["platform"] == "vanilla"
