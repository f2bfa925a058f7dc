"""A chart from an oci:// reference that requires credentials (as nvcr.io needs the NGC key), installed by
cluster_common's helm_release as every chart role installs, against a REAL OCI registry on loopback
(go-containerregistry's registry behind basic authentication, HTTPS with a test CA: tests/sim/oci_registry)
that stands for NGC (flywheel_ngc_hosts). One playbook run, two cluster hosts: the NGC key is right for one
and wrong for the other. The right one installs the chart as `$oauthtoken` with the key; the wrong one
stops naming flywheel_ngc_api_key; neither key is printed or written to helm's configuration (no
`helm registry login`: helm keeps the credentials in memory).

The authenticated chart REPOSITORY (index.yaml + .tgz) is covered by tests/integration/test_cluster_stack.py
(the whole stack from it, rerun changed=0, secret scan) and test_preflight.py (preflight refuses a missing
or wrong key)."""

from __future__ import annotations

import json
import re
import secrets as pysecrets
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration.secret_scan import scan_files, scan_text
from tests.integration.tls import make_ca_and_server
from tests.sim import oci_registry

pytestmark = pytest.mark.cluster

CHART = "volcano-1.9.0.tgz"  # the smallest fixture chart: Deployments only (its CRDs are already served)


def test_oci_chart_with_the_ngc_key_installs_and_a_wrong_key_names_the_variable(
    ansible_playbook, vanilla, vanilla_kubeconfig, tool_env, fixture_charts, tmp_path: Path
):
    key = "nvapi-oci-" + pysecrets.token_hex(20)
    wrong = "nvapi-oci-" + pysecrets.token_hex(20)
    tls = make_ca_and_server(tmp_path)
    registry = oci_registry.start(tls["cert"], tls["key"], username="$oauthtoken", password=key)
    # helm's configuration, cache and data of these runs: a login would leave the key in registry/config.json
    helm_home = {f"HELM_{part}_HOME": str(tmp_path / f"helm-{part.lower()}") for part in ("CONFIG", "CACHE", "DATA")}
    env = {
        **{k: v for k, v in tool_env.items() if k in ("PATH", "HELM_PLUGINS")},
        **helm_home,
        "SSL_CERT_FILE": str(tls["ca"]),  # the controller trusts the registry's CA, as it would a real one's
        "NGC_API_KEY": None,
    }
    namespaces = {"right-key": f"oci-{pysecrets.token_hex(3)}", "wrong-key": f"oci-{pysecrets.token_hex(3)}"}
    try:
        pushed = subprocess.run(
            ["helm", "push", str(Path(fixture_charts) / CHART), f"oci://{registry.host}/nvidia"]
            + ["--username", "$oauthtoken", "--password", key],
            env={**tool_env, **helm_home, "SSL_CERT_FILE": str(tls["ca"])},
            capture_output=True,
            text=True,
            check=False,
        )
        assert pushed.returncode == 0, pushed.stderr
        before = len(registry.requests())
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "flywheel_kubeconfig": vanilla_kubeconfig,
        }
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(
            json.dumps(
                {
                    "flywheel_clusters": {
                        "hosts": {
                            name: {
                                **host,
                                "oci_namespace": ns,
                                "flywheel_ngc_api_key": key if name == "right-key" else wrong,
                            }
                            for name, ns in namespaces.items()
                        }
                    }
                }
            )
        )
        run = ansible_playbook(
            "tests/integration/data/oci_chart_release.yml",
            {
                "oci_chart_ref": f"oci://{registry.host}/nvidia/volcano",
                "oci_chart_version": "1.9.0",
                "flywheel_ngc_hosts": ["127.0.0.1"],
            },
            inventory=inventory,
            env=env,
            verbosity=3,
        )
        out = re.sub(r"\s+", " ", run.stdout)
        assert run.recap("right-key")["failed"] == 0, run.tail()
        assert run.recap("wrong-key")["failed"] == 1, run.tail()
        assert "refused the credentials: check flywheel_ngc_api_key" in out and "needs helm 3.17 or later" in out
        # the registry refused the wrong key and served the chart to the right one (an unauthenticated probe
        # first, as clients do, then the credentials)
        served = registry.requests()[before:]
        assert "200 GET /v2/nvidia/volcano/manifests/1.9.0" in served, served
        assert any(line.startswith("401 GET /v2/nvidia/volcano/manifests/1.9.0") for line in served), served
        releases = json.loads(
            subprocess.run(
                ["helm", "list", "-n", namespaces["right-key"], "-o", "json"],
                env={**tool_env, "KUBECONFIG": vanilla_kubeconfig},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert [(r["name"], r["chart"], r["status"]) for r in releases] == [("oci-chart", "volcano-1.9.0", "deployed")]
        assert not client.AppsV1Api(vanilla).list_namespaced_deployment(namespaces["wrong-key"]).items
        # neither key in the -vvv output or in any file helm or Ansible wrote
        secrets = {"ngc key": key, "wrong key": wrong}
        leaks = scan_text(run.output, secrets, "ansible-playbook -vvv output")
        leaks += scan_files([tmp_path / "helm-config", tmp_path / "helm-cache", Path.home() / ".ansible"], secrets)
        assert [str(x) for x in leaks] == []
        assert not (tmp_path / "helm-config" / "registry" / "config.json").exists()
    finally:
        registry.stop()
        subprocess.run(
            ["helm", "uninstall", "oci-chart", "-n", namespaces["right-key"], "--wait"],
            env={**tool_env, "KUBECONFIG": vanilla_kubeconfig},
            capture_output=True,
            check=False,
        )
        # gone before the next test lists the namespaces
        core = client.CoreV1Api(vanilla)
        for ns in namespaces.values():
            try:
                core.delete_namespace(ns)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
        deadline = time.monotonic() + 120
        while {n.metadata.name for n in core.list_namespace().items} & set(namespaces.values()):
            assert time.monotonic() < deadline, f"namespaces {sorted(namespaces.values())} not deleted in 120 s"
            time.sleep(1)
