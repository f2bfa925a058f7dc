"""The README's install and run commands, as written, on a fresh clone.

The test takes the command lines from the README's blocks marked `<!-- quickstart:begin ... -->`
(so the README cannot drift from what works) and runs them one by one in a `git clone` of this
repository, with an empty HOME (no ~/.ansible collections), no ANSIBLE_* variables and no
`make venv`: the clone has no `.venv`, no `.cache` and no `.collections`. The only Python
environment is the one the tests run in (`pip install -r requirements.txt` finds it complete), and
helm with helm-diff come from the local cluster's tools, as the README's prerequisites ask.

The README's "edit inventories/mysite" line is where a user points the copied inventory at a
cluster; the test does what it says (the cluster's kubeconfig in hosts.yml, settings in group_vars/)
for the vanilla local test cluster the suite already runs, with a minimal scope to keep the cost
small: the charts of the operators, NeMo and the flywheel are switched off (installing them is
tested by the cluster stack tests), and the run stage talks to the Data Flywheel API SIMULATOR.
What runs for real: the collection found by FQCN from the clone, every stage of
`dataflywheel.blueprint.site` (preflight, GPU hosts, cluster with the flywheel namespace and record,
the remediations of the vanilla platform, one flywheel job with its report).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.integration.flywheel_sim import control
from tests.integration.remediate_run import drop_namespace
from tests.sim.flywheel_api.simulator import start

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BLOCK = re.compile(r"<!-- quickstart:begin[^>]*-->\s*```[a-z]*\n(.*?)```\s*<!-- quickstart:end -->", re.S)


def readme_commands() -> list[str]:
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    assert blocks, "README.md has no <!-- quickstart:begin --> ... <!-- quickstart:end --> block"
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def point_inventory_at(inventory: Path, kubeconfig: str, settings: dict) -> None:
    """The README's edit: the first cluster of hosts.yml gets its kubeconfig, group_vars/ the settings."""
    hosts_file = inventory / "hosts.yml"
    text = hosts_file.read_text()
    edited, count = re.subn(r"#\s*flywheel_kubeconfig:[^\n]*", f"flywheel_kubeconfig: {kubeconfig}", text, count=1)
    assert count == 1, f"{hosts_file} has no commented flywheel_kubeconfig line for the README's edit step"
    hosts_file.write_text(edited)
    (inventory / "group_vars" / "flywheel_clusters" / "quickstart.yml").write_text(yaml.safe_dump(settings))


def test_readme_quickstart_on_a_fresh_clone(vanilla_kubeconfig, vanilla, tool_env, tmp_path):
    commands = readme_commands()
    assert any(c.startswith("ansible-playbook") and "dataflywheel.blueprint.site" in c for c in commands), commands
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    assert not (clone / ".collections").exists() and not (clone / ".venv").exists()
    assert (clone / "collections" / "ansible_collections" / "dataflywheel" / "blueprint").is_symlink()

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in tool_env.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_", "FLYWHEEL_", "DFW_"))}
    env.pop("KUBECONFIG", None)
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{tool_env['PATH']}", PIP_DISABLE_PIP_VERSION_CHECK="1")

    sim = start(unit_seconds=0.02)
    control(sim, "/_sim/config", {"workloads": {"primary_assistant/aiva-1": {"records": 300}}})
    namespace = f"qs-{uuid.uuid4().hex[:6]}"
    settings = {
        "flywheel_prereqs_namespace": namespace,
        "remediate_namespace": namespace,
        "gpu_operator_enabled": False,
        "nim_operator_enabled": False,
        "nemo_platform_enabled": False,
        "nemo_platform_gateway_enabled": False,
        "flywheel_enabled": False,
        # a vanilla 1.34 cluster as shipped (no MutatingAdmissionPolicy, no Kyverno) that runs no customization
        "remediate_scratch_required": False,
        "flywheel_run_api_url": sim.url,
        "flywheel_run_jobs": [{"workload_id": "primary_assistant", "client_id": "aiva-1"}],
        "flywheel_run_wait_timeout": 300,
        "flywheel_run_progress_interval": 2,
    }
    edited = False
    outputs = []
    try:
        for command in commands:
            if command.startswith("#"):
                if "edit inventories/" in command:
                    inventory = clone / re.search(r"edit (inventories/\S+?):?\s", command + " ").group(1)
                    point_inventory_at(inventory, vanilla_kubeconfig, settings)
                    edited = True
                continue
            proc = subprocess.run(
                ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, check=False, timeout=1200
            )
            outputs.append(f"$ {command}\n{proc.stdout[-6000:]}{proc.stderr[-3000:]}")
            assert proc.returncode == 0, "\n".join(outputs)
        assert edited, "the README's quick start has no 'edit inventories/...' step"

        text = outputs[-1]
        recap = re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", text, re.M)
        assert recap and all(u == "0" and f == "0" for _host, u, f in recap), text
        # the README's tarball went into the user's collections; the run used the clone's own code
        installed = home / ".ansible" / "collections" / "ansible_collections" / "dataflywheel" / "blueprint"
        assert (installed / "MANIFEST.json").is_file(), "the README's install commands installed nothing"
        assert not (clone / ".collections").exists()
        assert not list(BIN.parent.glob("lib/python*/site-packages/ansible_collections/dataflywheel"))
        # what the stages did, read back from the cluster and the report
        ns = client.CoreV1Api(vanilla).read_namespace(namespace)
        assert ns.metadata.labels["app.kubernetes.io/managed-by"] == "dataflywheel.blueprint"
        reports = list((clone / "reports").glob("*/report.json"))
        assert len(reports) == 1, outputs[-1]
        assert [j["status"] for j in json.loads(reports[0].read_text())["jobs"]] == ["completed"]
        assert len(control(sim, "/_sim/jobs")["jobs"]) == 1
    finally:
        sim.shutdown()
        try:
            drop_namespace(vanilla, namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
