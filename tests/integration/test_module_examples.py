"""The EXAMPLES of the flywheel modules run, as written, against the API simulator."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from tests.harness import ansible_doc
from tests.integration.flywheel_sim import control, run_playbook
from tests.sim.flywheel_api.simulator import start

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["flywheel_job", "flywheel_job_info"]


def examples(module: str) -> list[dict]:
    tree = ast.parse((ROOT / "plugins" / "modules" / f"{module}.py").read_text())
    text = next(n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "EXAMPLES")
    return yaml.safe_load(text)


def test_examples_run(tmp_path):
    sim = start(unit_seconds=0.1)
    try:
        tasks = [t for m in MODULES for t in examples(m)]
        assert len(tasks) >= 6
        text = yaml.safe_dump(tasks).replace("http://df-api.data-flywheel.svc:8000", sim.url)
        playbook = tmp_path / "examples.yml"
        playbook.write_text(
            yaml.safe_dump(
                [
                    {
                        "hosts": "localhost",
                        "gather_facts": False,
                        "vars": {"flywheel_api_url": sim.url},
                        "tasks": yaml.safe_load(text),
                    }
                ]
            )
        )
        proc = run_playbook(playbook)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "failed=0" in proc.stdout
        # the examples started aiva-1 and then deleted it again
        assert control(sim, "/_sim/stats").get("POST /api/jobs") == 1
        assert control(sim, "/_sim/jobs")["jobs"] == []
    finally:
        sim.shutdown()


def test_ansible_doc_renders_every_option():
    for module in MODULES:
        doc = ansible_doc(f"dataflywheel.blueprint.{module}")[f"dataflywheel.blueprint.{module}"]
        options = doc["doc"]["options"]
        for name in ("api_url", "api_token", "ca_path", "validate_certs", "wait", "wait_timeout", "wait_sleep"):
            assert options[name]["description"], f"{module}.{name}"
        assert doc["examples"].strip() and doc["return"]
