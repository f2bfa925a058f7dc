"""Bad input fails before any change, naming the variable and the fix (catalogue: data/bad_inputs.yml).

Before each case the cluster is snapshotted (resourceVersion of every object in the namespaces the
playbooks use, every Namespace, and the cluster-scoped kinds the collection writes); after the
failed run the snapshot must be identical, the Data Flywheel API simulator must have received no
POST and the Entity Store simulator must hold nothing. A control run per playbook with the valid
base variables proves the snapshot does see that playbook's changes.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.integration import cluster_state
from tests.integration.flywheel_sim import control
from tests.integration.playbook_runner import fill, play
from tests.integration.remediate_run import drop_namespace
from tests.sim.embedding_nim.simulator import start as start_embedding
from tests.sim.entity_store.simulator import start as start_entity_store
from tests.sim.flywheel_api.simulator import start as start_flywheel_api
from tests.sim.hf_hub.simulator import start as start_hub

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
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


@pytest.fixture(scope="module")
def env(vanilla, vanilla_kubeconfig, tmp_path_factory):
    """An existing NeMo namespace with an operator-style evaluator, and the service simulators (Data Flywheel
    API, Entity Store, embedding NIM, Hugging Face Hub with a gated repository)."""
    ns = f"bad-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(vanilla)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=EVALUATOR)))
    store, api, embedding, hub = (
        start_entity_store(),
        start_flywheel_api(unit_seconds=0.05),
        start_embedding(),
        start_hub(),
    )
    hub.state.tokens.update({"hf_sim_not_granted_fedcba987654": "other-user"})
    hub.state.add_repo("meta-llama/Llama-3.2-1B-Instruct", gated="manual", granted={"granted-user"})
    tmp = tmp_path_factory.mktemp("bad-inputs")
    subst = {
        "ns": ns,
        "kubeconfig": vanilla_kubeconfig,
        "entity_store": store.url,
        "flywheel_api": api.url,
        "embedding": embedding.url,
        "hf_hub": hub.url,
        "tmp": str(tmp),
    }
    yield {"api": vanilla, "ns": ns, "store": store, "flywheel": api, "subst": subst, "tmp": tmp}
    for server in (store, api, embedding, hub):
        server.shutdown()
    drop_namespace(vanilla, ns)
    if _exists(core, f"{ns}-fw"):
        core.delete_namespace(f"{ns}-fw", propagation_policy="Background")


def _exists(core, name) -> bool:
    try:
        core.read_namespace(name)
    except client.ApiException:
        return False
    return True


def host_vars(env, play_name: str, overrides: dict) -> dict:
    variables = dict(CATALOGUE["playbooks"][play_name]["base"])
    for key, value in overrides.items():
        if value is None:
            variables.pop(key, None)
        else:
            variables[key] = value
    return fill(variables, env["subst"])


def run_batch(env, play_name: str, cases: list[dict], label: str) -> dict[str, dict]:
    """One ansible-playbook run, one inventory host per case; returns host -> {failed, msg}."""
    spec = CATALOGUE["playbooks"][play_name]
    hosts = {
        case["id"]: {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            **host_vars(env, play_name, case["vars"]),
        }
        for case in cases
    }
    inventory = env["tmp"] / f"{label}.inventory.json"
    inventory.write_text(json.dumps({"flywheel_clusters": {"hosts": hosts}}))
    result = play(
        spec["playbook"],
        {},
        env["tmp"] / f"{label}.tasks",
        inventory=str(inventory),
        env={
            "K8S_AUTH_KUBECONFIG": env["subst"]["kubeconfig"],
            "FLYWHEEL_API_URL": "",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        },
    )
    try:
        out = json.loads(result.stdout)
    except ValueError as err:
        raise AssertionError(f"no JSON from ansible-playbook:\n{result.output[-3000:]}") from err
    per_host: dict[str, dict] = {h: {"failed": False, "msg": "", "ran": []} for h in hosts}
    for playbook_play in out["plays"]:
        for task in playbook_play["tasks"]:
            for host, res in task["hosts"].items():
                per_host[host]["ran"].append(task["task"]["name"])
                if res.get("failed"):
                    # what the default callback prints for a loop: each failed item's label and msg
                    msgs = [res.get("msg", "")] + [
                        f"{r.get('_ansible_item_label', '')}: {r.get('msg', '')}"
                        for r in res.get("results", [])
                        if r.get("failed")
                    ]
                    per_host[host]["failed"] = True
                    per_host[host]["msg"] += " ".join(str(m) for m in msgs)
    return {"hosts": per_host, "run": result}


def world(env) -> dict:
    ns = env["ns"]
    return {
        "cluster": cluster_state.snapshot(env["api"], [ns, f"{ns}-fw", "data-flywheel", "default"], CLUSTER_KINDS),
        "flywheel_posts": control(env["flywheel"], "/_sim/stats").get("POST /api/jobs", 0),
        "entity_store": (sorted(env["store"].state.namespaces), sorted(env["store"].state.models)),
    }


def _params():
    return [pytest.param(c, id=c["id"]) for c in CATALOGUE["cases"]]


@pytest.fixture(scope="module")
def batches(env):
    """Every playbook's active cases in one run, the cluster snapshotted around it."""
    results, changes = {}, {}
    for play_name in CATALOGUE["playbooks"]:
        cases = [c for c in CATALOGUE["cases"] if c["play"] == play_name]
        before = world(env)
        batch = run_batch(env, play_name, cases, play_name)
        after = world(env)
        results.update(batch["hosts"])
        changes[play_name] = {
            "changed": {k: v for k, v in after["cluster"].items() if before["cluster"].get(k) != v},
            "removed": sorted(set(before["cluster"]) - set(after["cluster"])),
            "flywheel_posts": after["flywheel_posts"] - before["flywheel_posts"],
            "entity_store": after["entity_store"] != before["entity_store"],
        }
    return {"hosts": results, "changes": changes, "subst": env["subst"]}


def test_catalogue_is_large_and_covers_every_stage():
    cases = CATALOGUE["cases"]
    assert len(cases) >= 25, f"only {len(cases)} bad-input cases"
    assert {c["play"] for c in cases} == set(CATALOGUE["playbooks"])
    assert len({c["id"] for c in CATALOGUE["cases"]}) == len(CATALOGUE["cases"])


@pytest.mark.parametrize("play_name", list(CATALOGUE["playbooks"]))
def test_bad_inputs_change_nothing(batches, play_name):
    change = batches["changes"][play_name]
    assert change == {"changed": {}, "removed": [], "flywheel_posts": 0, "entity_store": False}, change


@pytest.mark.parametrize("case", _params())
def test_bad_input_fails_naming_the_variable_and_the_fix(batches, case):
    host = batches["hosts"][case["id"]]
    assert host["failed"], f"{case['id']}: the run succeeded; tasks run: {host['ran']}"
    missing = [e for e in fill(case["expect"], batches["subst"]) if e not in host["msg"]]
    assert not missing, f"{case['id']}: the error does not say {missing}:\n{host['msg']}"
    assert "Traceback" not in host["msg"], host["msg"]


@pytest.mark.parametrize("play_name", ["cluster", "remediate"])
def test_control_valid_input_does_change_the_snapshot(env, batches, play_name):
    """Without the bad value the same playbook writes objects, and the snapshot sees them."""
    before = world(env)
    batch = run_batch(env, play_name, [{"id": f"control-{play_name}", "vars": {}}], f"control-{play_name}")
    assert not batch["hosts"][f"control-{play_name}"]["failed"], batch["run"].output[-3000:]
    assert world(env)["cluster"] != before["cluster"]
