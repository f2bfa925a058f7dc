"""Bad input fails before any change, naming the variable and the fix (catalogue: data/bad_inputs.yml).

Before each case the cluster is snapshotted (resourceVersion of every object in the namespaces the
playbooks use, every Namespace, and the cluster-scoped kinds the collection writes); after the
failed run the snapshot must be identical, the Data Flywheel API simulator must have received no
POST and the Entity Store simulator must hold nothing. A control run per playbook with the valid
base variables proves the snapshot does see that playbook's changes.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.integration import cluster_state
from tests.integration.flywheel_sim import control
from tests.integration.playbook_runner import play
from tests.sim.entity_store.simulator import start as start_entity_store
from tests.sim.flywheel_api.simulator import start as start_flywheel_api

pytestmark = pytest.mark.cluster
CATALOGUE = yaml.safe_load((Path(__file__).resolve().parent / "data" / "bad_inputs.yml").read_text())
CLUSTER_KINDS = [
    "Namespace",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
]
EVALUATOR = "nemoevaluator"


def fill(value, subst: dict):
    if isinstance(value, str):
        for key, real in subst.items():
            value = value.replace("{" + key + "}", real)
        return value
    if isinstance(value, list):
        return [fill(v, subst) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, subst) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def env(vanilla, vanilla_kubeconfig, tmp_path_factory):
    """An existing NeMo namespace with an operator-style evaluator, and both simulators."""
    ns = f"bad-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(vanilla)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=EVALUATOR)))
    store, api = start_entity_store(), start_flywheel_api(unit_seconds=0.05)
    tmp = tmp_path_factory.mktemp("bad-inputs")
    subst = {
        "ns": ns,
        "kubeconfig": vanilla_kubeconfig,
        "entity_store": store.url,
        "flywheel_api": api.url,
        "tmp": str(tmp),
    }
    yield {"api": vanilla, "ns": ns, "store": store, "flywheel": api, "subst": subst, "tmp": tmp}
    store.shutdown()
    api.shutdown()
    core.delete_namespace(ns)
    core.delete_namespace(f"{ns}-fw", propagation_policy="Background") if _exists(core, f"{ns}-fw") else None
    for plural in ("mutatingadmissionpolicybindings", "mutatingadmissionpolicies"):
        try:
            client.CustomObjectsApi(vanilla).delete_cluster_custom_object(
                "admissionregistration.k8s.io", "v1beta1", plural, f"dfw-scratch-{ns}"
            )
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def _exists(core, name) -> bool:
    try:
        core.read_namespace(name)
    except client.ApiException:
        return False
    return True


def run_case(env, play_name: str, overrides: dict, label: str):
    spec = CATALOGUE["playbooks"][play_name]
    variables = dict(spec["base"])
    for key, value in overrides.items():
        if value is None:
            variables.pop(key, None)
        else:
            variables[key] = value
    variables = fill(variables, env["subst"])
    return play(
        spec["playbook"],
        variables,
        env["tmp"] / f"{label}.tasks",
        inventory=spec.get("inventory"),
        env={"K8S_AUTH_KUBECONFIG": env["subst"]["kubeconfig"], "FLYWHEEL_API_URL": ""},
    )


def world(env) -> dict:
    ns = env["ns"]
    return {
        "cluster": cluster_state.snapshot(env["api"], [ns, f"{ns}-fw", "data-flywheel", "default"], CLUSTER_KINDS),
        "flywheel_posts": control(env["flywheel"], "/_sim/stats").get("POST /api/jobs", 0),
        "entity_store": (sorted(env["store"].state.namespaces), sorted(env["store"].state.models)),
    }


def _params():
    out = []
    for case in CATALOGUE["cases"]:
        marks = [pytest.mark.xfail(strict=True, reason=case["pending"])] if case.get("pending") else []
        out.append(pytest.param(case, id=case["id"], marks=marks))
    return out


def test_catalogue_is_large_and_covers_every_stage():
    active = [c for c in CATALOGUE["cases"] if not c.get("pending")]
    assert len(active) >= 25, f"only {len(active)} active bad-input cases"
    assert {c["play"] for c in active} == set(CATALOGUE["playbooks"])
    assert len({c["id"] for c in CATALOGUE["cases"]}) == len(CATALOGUE["cases"])


@pytest.mark.parametrize("case", _params())
def test_bad_input_fails_before_any_change(env, case):
    before = world(env)
    result = run_case(env, case["play"], case["vars"], case["id"])
    after = world(env)
    assert result.returncode != 0, f"{case['id']}: the run succeeded:\n{result.output[-3000:]}"
    missing = [e for e in case["expect"] if e not in result.output]
    assert not missing, f"{case['id']}: the error does not say {missing}:\n{result.output[-3000:]}"
    assert "Traceback" not in result.output, result.output[-3000:]
    changed = {k: v for k, v in after["cluster"].items() if before["cluster"].get(k) != v}
    removed = sorted(set(before["cluster"]) - set(after["cluster"]))
    assert not changed and not removed, f"{case['id']}: the cluster changed: {changed} removed {removed}"
    assert after["flywheel_posts"] == before["flywheel_posts"], f"{case['id']}: a flywheel job was started"
    assert after["entity_store"] == before["entity_store"], f"{case['id']}: the Entity Store was written"


@pytest.mark.parametrize("play_name", ["cluster", "remediate"])
def test_control_valid_input_does_change_the_snapshot(env, play_name):
    """Without the bad value the same playbook writes objects, and the snapshot sees them."""
    before = world(env)
    result = run_case(env, play_name, {}, f"control-{play_name}")
    assert result.returncode == 0, result.output[-3000:]
    assert world(env)["cluster"] != before["cluster"]
