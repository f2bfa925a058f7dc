"""The flywheel config the role generates points at Services the NeMo platform really creates, in each
NeMo mode: the flywheel chart's subchart (test_cluster_stack's converged stack), a standalone NeMo
chart release, and NIM Operator custom resources. On the converged local cluster every NeMo URL in the
config (nemo_base_url, nim_base_url, datastore_base_url) and every upstream behind the NeMo gateway
resolves to an existing Service and port.

The NeMo chart is the fixture (Service names from NVIDIA's sources, tests/fixtures/README.md); in
operator mode the Services are the ones the NIM Operator creates, which the local cluster's
operator-status emulator creates in its place (named like each resource, port spec.expose.service.port).
Each mode converges once (module-scoped scene): cluster.yml without the GPU/NIM Operator releases,
Volcano and the flywheel chart, which the check does not need, in namespaces of its own; they are
removed afterwards.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.integration.services import resolve

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
# namespaces of their own: the converged stack (test_cluster_stack) uses data-flywheel and nemo, and
# may run beside this module (parallel test units)
FLYWHEEL_NS = "fw-modes"
NEMO_NS = "nemo-modes"
# the NemoDatastore's Gitea Secrets come from NVIDIA's NeMo dependencies playbook; here: empty stand-ins
DATASTORE_SECRETS = [
    "nemo-ms-nemo-datastore",
    "nemo-ms-nemo-datastore-init",
    "nemo-ms-nemo-datastore-inline-config",
    "gitea-admin-credentials",
    "nemo-ms-nemo-datastore--lfs-jwt",
]
MODES = {
    "standalone": {"nemo_platform_style": "helm", "nemo_platform_helm_mode": "standalone"},
    "operator": {"nemo_platform_style": "operator"},
}


def nemo_urls(out: dict) -> list[str]:
    config = out["app_config"]["nmp_config"]
    urls = [config[k] for k in ("nemo_base_url", "nim_base_url", "datastore_base_url")]
    urls += [r["upstream"] for r in out["gateway_routes"]]
    return sorted(set(urls))


@pytest.fixture(scope="module", params=sorted(MODES))
def scene(request, vanilla, vanilla_kubeconfig, tool_env, fixture_charts, ansible_playbook, tmp_path_factory):
    mode = request.param
    tmp = tmp_path_factory.mktemp(f"nemo-{mode}")
    core = client.CoreV1Api(vanilla)
    if mode == "operator":
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NEMO_NS)))
        except ApiException as err:
            assert err.status == 409
        for name in DATASTORE_SECRETS:
            body = client.V1Secret(metadata=client.V1ObjectMeta(name=name, labels={"dfw-test": "stand-in"}))
            try:
                core.create_namespaced_secret(NEMO_NS, body)
            except ApiException as err:
                assert err.status == 409
    env = {
        **{k: v for k, v in tool_env.items() if k in ("PATH", "HELM_PLUGINS", "KUBECONFIG")},
        "DFW_KUBECONFIG": vanilla_kubeconfig,
        "DFW_FIXTURE_CHARTS": fixture_charts,
    }
    extra = {
        **MODES[mode],
        "gpu_operator_enabled": False,
        "nim_operator_enabled": False,
        "nemo_platform_bundled_nim_operator": False,
        "nemo_platform_volcano_enabled": False,
        "flywheel_enabled": False,
        "flywheel_prereqs_namespace": FLYWHEEL_NS,
        "nemo_platform_namespace": NEMO_NS,
        "nemo_mode_out": str(tmp / "out.json"),
    }
    proc = ansible_playbook(
        ROOT / "tests" / "integration" / "data" / "nemo_mode.yml",
        extra,
        inventory=ROOT / "tests" / "fixtures" / "inventory",
        env=env,
    )
    try:
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        yield mode, json.loads((tmp / "out.json").read_text())
    finally:
        if mode == "standalone":
            subprocess.run(
                ["helm", "uninstall", "nemo", "-n", NEMO_NS, "--wait"], env=tool_env, capture_output=True, check=False
            )
        for ns in (NEMO_NS, FLYWHEEL_NS):
            try:
                core.delete_namespace(ns)
            except ApiException as err:
                assert err.status == 404
        for ns in (NEMO_NS, FLYWHEEL_NS):
            for _attempt in range(600):
                try:
                    core.read_namespace(ns)
                except ApiException as err:
                    if err.status == 404:
                        break
                time.sleep(0.2)


def test_every_nemo_url_of_the_flywheel_config_resolves_to_a_service(vanilla, scene):
    mode, out = scene
    core = client.CoreV1Api(vanilla)
    found = {url: resolve(core, url, FLYWHEEL_NS) for url in nemo_urls(out)}
    names = {service for _ns, service, _port in found.values()}
    assert "nemo-gateway" in names
    if mode == "standalone":
        assert {"nemo-entity-store", "nemo-data-store", "nemo-customizer", "nemo-evaluator"} <= names
        assert {ns for ns, service, _port in found.values() if service != "nemo-gateway"} == {NEMO_NS}
    else:
        assert {"nemodatastore", "nemoentitystore", "nemocustomizer", "nemoevaluator"} <= names
    assert "test" not in json.dumps(out["app_config"]["nmp_config"])


def test_the_nemo_chart_wires_its_services_to_this_release(vanilla, scene):
    """The chart's defaults name a release `nemo`; the customizer must reach this release's Entity and
    Data Store (helm modes; in operator mode the CRs carry the endpoints, accepted by the real CRDs)."""
    mode, _out = scene
    if mode != "standalone":
        crs = client.CustomObjectsApi(vanilla).list_namespaced_custom_object(
            "apps.nvidia.com", "v1alpha1", NEMO_NS, "nemocustomizers"
        )["items"]
        spec = crs[0]["spec"]
        urls = [spec["entitystore"]["endpoint"], spec["datastore"]["endpoint"]]
    else:
        deployment = client.AppsV1Api(vanilla).read_namespaced_deployment("nemo-customizer", NEMO_NS)
        env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
        urls = [env["ENTITY_STORE_URL"], env["NEMO_DATA_STORE_URL"]]
    core = client.CoreV1Api(vanilla)
    for url in urls:
        resolve(core, url, NEMO_NS)
