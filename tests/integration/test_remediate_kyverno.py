"""/scratch by Kyverno, checked by the REAL Kyverno engine: `kyverno apply`, the kyverno CLI built from its Go
module at the version pinned in tests/sim/versions.env (tests/sim/build-binaries.sh kyverno, `make binaries`).

The ClusterPolicy is rendered by the remediate role itself (entry point all/scratch_policy: the data
all/scratch.yml applies) and applied to:
- a NeMo customizer entity-handler Job as the NeMo Operator submits it (the PCAI field copy, seeds/000) and the
  Pod its Job controller creates from it (the template plus the job-name labels; the API server adds those
  labels to a Job's template only after mutating admission, so a Job never carries them when Kyverno sees it);
- what must come out unchanged: the customizer's training Job and Pod in the same namespace, an entity-handler
  Job and Pod in another namespace, and an entity-handler Pod that already has a scratch volume.
A deliberately broken policy (another namespace) goes through the same checks to show they can fail.

No cluster is needed. Kyverno's admission controller does not run here; what the role does on a cluster that
serves the kyverno.io API is tested in tests/integration/test_remediate_units.py."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import yaml

from .kyverno_engine import check, key, kyverno_apply, kyverno_cli, resources, scratch_problems

ROOT = Path(__file__).resolve().parents[2]
RENDER = ROOT / "tests" / "integration" / "data" / "render_scratch_policy.yml"
MOUNT = yaml.safe_load((ROOT / "roles/remediate/defaults/main.yml").read_text())["remediate_scratch_mount_path"]
NS = "nemo"
OTHER_NS = "data-flywheel"


@pytest.fixture(scope="module")
def cli() -> Path:
    return kyverno_cli()


@pytest.fixture(scope="module")
def role_policy(ansible_playbook, tmp_path_factory) -> dict:
    """The ClusterPolicy exactly as the role applies it (remediate_namespace=nemo, the role's defaults)."""
    out = tmp_path_factory.mktemp("scratch-policy") / "policy.json"
    run = ansible_playbook(
        RENDER,
        {"render_out": str(out), "remediate_namespace": NS, "ansible_python_interpreter": sys.executable},
        inventory="localhost,",
        args=["-c", "local"],
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return json.loads(out.read_text())


# ---------------------------------------------------------------- the tests


def test_role_policy_adds_scratch_to_entity_handler_jobs_and_pods_only(cli, role_policy, tmp_path):
    """The real engine adds /scratch to the entity-handler Job's Pod template and to the Pod its controller
    creates, and leaves the training Job/Pod, another namespace's entity handler and a Pod that already has a
    scratch volume exactly as they were."""
    mutate, keep = resources(NS, OTHER_NS)
    applied, text = kyverno_apply(cli, role_policy, mutate + keep, tmp_path)
    assert check(applied, mutate, keep, MOUNT) == [], text
    assert len(applied) == len(mutate + keep), text


def test_negative_control_a_policy_for_another_namespace_fails_the_checks(cli, role_policy, tmp_path):
    """The same checks on a broken policy (scoped to another namespace) report the missing /scratch, so the test
    above can fail; and the Pods it does match show the engine really mutates."""
    broken = copy.deepcopy(role_policy)
    for rule in broken["spec"]["rules"]:
        rule["match"]["any"][0]["resources"]["namespaces"] = [OTHER_NS]
    mutate, keep = resources(NS, OTHER_NS)
    applied, text = kyverno_apply(cli, broken, mutate + keep, tmp_path)
    problems = check(applied, mutate, keep, MOUNT)
    for obj in mutate:
        assert any(p.startswith("/".join(key(obj)) + ":") for p in problems), text
    other = [o for o in keep if o["metadata"]["namespace"] == OTHER_NS]
    assert other and all(scratch_problems(o, applied.get(key(o)), MOUNT) == [] for o in other), text
