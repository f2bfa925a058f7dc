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
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.integration import cluster_state
from tests.integration.conftest import kubeconfig_for
from tests.integration.playbook_runner import fill, play
from tests.sim.entity_store.simulator import start as start_entity_store

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.wip,
]  # issue 8: not yet proven green end to end; run by make test-wip, not make test
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
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns)))
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
        client.CoreV1Api(self.api).delete_namespace(self.ns)
        custom = client.CustomObjectsApi(self.api)
        for plural in ("mutatingadmissionpolicybindings", "mutatingadmissionpolicies"):
            try:
                custom.delete_cluster_custom_object(
                    "admissionregistration.k8s.io", "v1beta1", plural, f"dfw-scratch-{self.ns}"
                )
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


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
    assert len(plan) >= min(3, len(first.tasks)), first.tasks

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
