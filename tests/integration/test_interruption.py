"""Interrupted runs converge: kill ansible-playbook at task boundaries, rerun, compare end states.

The scenarios and kill points are data (tests/integration/data/interruption.yml). For each
scenario a reference run goes through uninterrupted; its task starts (counted by the
dfw_task_marker callback) are the kill points. Each kill point runs in fresh namespaces (and a
fresh Entity Store simulator): the playbook is killed when the chosen task has started, rerun
once with the same command and no cleanup, and what it owns in the cluster and in the Entity
Store must equal the reference's.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.integration import cluster_state
from tests.integration.admission_gate import AdmissionGate
from tests.integration.conftest import kubeconfig_for
from tests.integration.playbook_runner import fill, play
from tests.integration.remediate_run import drop_namespace
from tests.sim.entity_store.simulator import start as start_entity_store

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
DATA = Path(__file__).resolve().parent / "data" / "interruption.yml"
SCENARIOS = yaml.safe_load(DATA.read_text())["scenarios"]


class Attempt:
    """One run of a scenario in its own namespace and with its own Entity Store simulator."""

    def __init__(self, scenario: dict, kubeconfig: str, api, workdir: Path, label: str):
        self.scenario, self.kubeconfig, self.api = scenario, kubeconfig, api
        self.ns = f"ir-{label}-{uuid.uuid4().hex[:5]}"
        self.store = start_entity_store()
        self.marker = workdir / f"{label}.tasks"
        self.vars = fill(
            scenario["extra_vars"], {"ns": self.ns, "kubeconfig": kubeconfig, "entity_store": self.store.url}
        )
        core = client.CoreV1Api(api)
        if scenario.get("namespaces_precreated"):
            # the same annotations in every run (e.g. OpenShift's UID range, which names the ownership Job)
            annotations = scenario.get("namespace_annotations") or None
            core.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns, annotations=annotations))
            )
        if scenario.get("precreate_pvc"):
            core.create_namespaced_persistent_volume_claim(
                self.ns,
                client.V1PersistentVolumeClaim(
                    metadata=client.V1ObjectMeta(name=scenario["precreate_pvc"]),
                    spec=client.V1PersistentVolumeClaimSpec(
                        access_modes=["ReadWriteOnce"],
                        resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
                    ),
                ),
            )

    def run(self, **kill):
        return play(
            self.scenario["playbook"],
            self.vars,
            self.marker,
            inventory=self.scenario.get("inventory"),
            env={"K8S_AUTH_KUBECONFIG": self.kubeconfig},
            **kill,
        )

    def state(self) -> dict:
        owned = cluster_state.owned_state(
            self.api, {self.ns: "<ns>"}, self.scenario.get("cluster_kinds", []), cluster_name_match=self.ns
        )
        models = {
            "/".join(key): {k: v for k, v in m.items() if k not in ("created_at", "updated_at")}
            for key, m in self.store.state.models.items()
        }
        text = yaml.safe_dump(models).replace(self.ns, "<ns>")
        return {
            "cluster": owned,
            "entity_store": yaml.safe_load(text),
            "namespaces": sorted(self.store.state.namespaces),
        }

    def cleanup(self) -> None:
        self.store.shutdown()
        drop_namespace(self.api, self.ns)


def kill_plan(scenario: dict, tasks: list[str]) -> list[tuple[int, str, float]]:
    """(task index, signal, delay) per kill point; a named point that matches no task is an error."""
    wanted = range(1, len(tasks) + 1) if scenario["points"] == "all" else scenario["points"]
    points = []
    for point in wanted:
        if isinstance(point, str):
            index = next((i for i, name in enumerate(tasks, 1) if point in name), None)
            assert index is not None, f"kill point {point!r} names no task of {scenario['playbook']}: {tasks}"
            points.append(index)
        elif point <= len(tasks):
            points.append(point)
    signals, delays = itertools.cycle(scenario["signals"]), itertools.cycle(scenario["delays"])
    return [(p, next(signals), next(delays)) for p in points]


def test_ten_or_more_kill_points_across_cluster_and_remediate():
    """The scenarios' kill points (each checked against the real task list when it runs) plus the
    helm pending-install kill below, across the three stages that write to the cluster."""
    per_playbook: dict[str, int] = {}
    for scenario in SCENARIOS:
        assert scenario["points"] != "all", f"{scenario['id']}: choose the kill points (budget)"
        per_playbook[scenario["playbook"]] = per_playbook.get(scenario["playbook"], 0) + len(scenario["points"])
    per_playbook["playbooks/cluster.yml"] += 1  # test_helm_install_killed_while_pending_converges_on_rerun
    assert set(per_playbook) == {"playbooks/admission.yml", "playbooks/cluster.yml", "playbooks/remediate.yml"}
    assert sum(per_playbook.values()) >= 10, per_playbook


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_killed_runs_converge_on_rerun(scenario, tmp_path, record_property):
    kubeconfig = kubeconfig_for(scenario["profile"])
    api = config.new_client_from_config(config_file=kubeconfig)

    ref = Attempt(scenario, kubeconfig, api, tmp_path, "ref")
    try:
        first = ref.run()
        assert first.returncode == 0, first.output[-4000:]
        expected = ref.state()
        assert expected["cluster"], "the reference run created nothing: the scenario tests nothing"
    finally:
        ref.cleanup()
    plan = kill_plan(scenario, first.tasks)
    record_property("kill_points", len(plan))
    wanted = len(first.tasks) if scenario["points"] == "all" else len(scenario["points"])
    assert len(plan) == wanted >= 1, first.tasks

    def one(index: int, point: int, sig: str, delay: float) -> str | None:
        attempt = Attempt(scenario, kubeconfig, api, tmp_path, f"k{index}")
        try:
            interrupted = attempt.run(kill_at=point, sig=sig, delay=delay)
            where = f"{sig} {delay}s into task {point} ({first.tasks[point - 1]!r})"
            if interrupted.killed_at is None:
                # the playbook finished before the signal: nothing was tested at this point
                return f"{where}: the run ended before the signal (rc {interrupted.returncode})"
            if interrupted.returncode == 0:
                return f"{where}: a killed run reported success"
            rerun = attempt.run()
            if rerun.returncode != 0:
                return f"{where}: the rerun failed:\n{rerun.output[-3000:]}"
            got = attempt.state()
            if got != expected:
                return (
                    f"{where}: end state differs from the uninterrupted run:\n"
                    + cluster_state.diff(expected["cluster"], got["cluster"])
                    + ("" if got["entity_store"] == expected["entity_store"] else "\nEntity Store differs")
                )
            return None
        finally:
            attempt.cleanup()

    # kill points are independent (own namespaces, own simulator): a few at a time
    with ThreadPoolExecutor(max_workers=int(os.environ.get("DFW_TEST_PARALLEL", "3"))) as pool:
        results = list(pool.map(lambda args: one(*args), [(i, *p) for i, p in enumerate(plan)]))
    failures = [r for r in results if r]
    assert not failures, "\n\n".join(failures)


# ---------------------------------------------------------------- a real chart, killed mid-install
# cluster.yml with its real gpu_operator role and the fixture gpu-operator chart (a Deployment, the
# ClusterPolicy CRD and the cluster-scoped ClusterPolicy). Killed while helm's release record says
# pending-install (what a CI timeout or Ctrl-C during `helm upgrade --install` leaves; helm is held
# there by a real admission webhook, so the kill lands on every run, however fast the machine), the
# same command must converge; then playbooks/uninstall.yml-style cleanup (helm uninstall) resets
# the cluster-scoped objects for the next run.
HELM_STAGE = {
    "nim_operator_enabled": False,
    "nemo_platform_enabled": False,
    "nemo_platform_gateway_enabled": False,
    "flywheel_enabled": False,
}


class HelmAttempt:
    def __init__(self, api, kubeconfig, tool_env, charts, workdir: Path, label: str):
        self.api, self.tool_env = api, tool_env
        self.ns = f"ir-helm-{label}-{uuid.uuid4().hex[:4]}"
        self.marker = workdir / f"helm-{label}.tasks"
        self.vars = {
            **HELM_STAGE,
            "flywheel_prereqs_namespace": self.ns,
            "gpu_operator_namespace": self.ns,
            "remediate_namespace": self.ns,
        }
        self.env = {
            "DFW_KUBECONFIG": kubeconfig,
            "K8S_AUTH_KUBECONFIG": kubeconfig,
            "DFW_FIXTURE_CHARTS": charts,
            "PATH": tool_env["PATH"],
            "HELM_PLUGINS": tool_env.get("HELM_PLUGINS", ""),
        }

    def run(self, **kill):
        return play(
            "playbooks/cluster.yml", self.vars, self.marker, inventory="tests/fixtures/inventory", env=self.env, **kill
        )

    def releases(self) -> list[tuple]:
        out = subprocess.run(
            ["helm", "list", "-n", self.ns, "-a", "-o", "json"],
            env=self.tool_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sorted((r["name"], r["status"], r["chart"], r["app_version"]) for r in json.loads(out or "[]"))

    def state(self) -> dict:
        owned = cluster_state.owned_state(self.api, {self.ns: "<ns>"}, ["ClusterPolicy"])
        # helm's release records carry the revision and timestamps (compared through `helm list`);
        # Pods are the scheduler's placement of the (compared) ReplicaSets
        owned = {k: v for k, v in owned.items() if "/Secret/<ns>/sh.helm.release." not in k and "/Pod/" not in k}
        return {"cluster": owned, "releases": self.releases()}

    def cleanup(self) -> None:
        subprocess.run(
            ["helm", "uninstall", "-n", self.ns, "gpu-operator", "--wait", "--timeout", "60s"],
            env=self.tool_env,
            capture_output=True,
            check=False,
        )
        try:
            client.CoreV1Api(self.api).delete_namespace(self.ns)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def cluster_policies(api) -> list[str]:
    custom = client.CustomObjectsApi(api)
    try:
        items = custom.list_cluster_custom_object("nvidia.com", "v1", "clusterpolicies")["items"]
    except client.ApiException as exc:
        if exc.status == 404:  # the CRD is not installed yet
            return []
        raise
    owner = "meta.helm.sh/release-namespace"
    return [f"{i['metadata']['name']} (release in {i['metadata'].get('annotations', {}).get(owner)})" for i in items]


def test_helm_install_killed_while_pending_converges_on_rerun(
    vanilla, vanilla_kubeconfig, tool_env, fixture_charts, tmp_path
):
    assert not cluster_policies(vanilla), (
        f"a ClusterPolicy exists already {cluster_policies(vanilla)}: this test installs the fixture GPU "
        "Operator chart itself and needs a cluster without one"
    )
    ref = HelmAttempt(vanilla, vanilla_kubeconfig, tool_env, fixture_charts, tmp_path, "ref")
    try:
        first = ref.run()
        assert first.returncode == 0, first.output[-4000:]
        expected = ref.state()
        assert [r[:2] for r in expected["releases"]] == [("gpu-operator", "deployed")], expected["releases"]
    finally:
        ref.cleanup()

    # helm is stopped at a known point: its Deployment creation is held by a real admission webhook
    # (helm has written the pending-install release record before it creates the chart's objects)
    attempt = HelmAttempt(vanilla, vanilla_kubeconfig, tool_env, fixture_charts, tmp_path, "kill")
    gate = AdmissionGate(vanilla, attempt.ns, tmp_path)
    try:
        # SIGKILL reaches the whole process tree, helm (a grandchild in ansible's worker session) too
        interrupted = attempt.run(kill_when=gate.held.is_set, sig="SIGKILL")
        gate.close()
        assert interrupted.killed_at is not None, f"the run ended before helm was held:\n{interrupted.output[-3000:]}"
        assert interrupted.returncode != 0, "a killed run reported success"
        left = attempt.releases()
        assert [r[:2] for r in left] == [("gpu-operator", "pending-install")], left
        rerun = attempt.run()
        assert rerun.returncode == 0, f"after a kill that left {left}, the rerun failed:\n{rerun.output[-4000:]}"
        got = attempt.state()
        assert got["releases"] == expected["releases"], (left, got["releases"])
        assert got["cluster"] == expected["cluster"], cluster_state.diff(expected["cluster"], got["cluster"])
    finally:
        gate.close()
        attempt.cleanup()
