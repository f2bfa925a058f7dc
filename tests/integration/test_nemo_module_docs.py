"""Every NeMo module and the promotion filter render in ansible-doc with their options, examples and returns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.flywheel_sim import ansible_env

ROOT = Path(__file__).resolve().parents[2]
DOC = str(Path(sys.executable).parent / "ansible-doc")


@pytest.mark.parametrize(
    ("module", "options"),
    [
        ("nemo_evaluation_job", ("nemo_url", "nmp_uri", "config", "model", "api_endpoint", "wait", "log_lines")),
        ("nemo_customization_job_info", ("nemo_url", "nmp_uri", "job_id", "log_entries", "wait_timeout")),
        ("nemo_deployment", ("nemo_url", "name", "namespace", "model", "additional_envs", "wait")),
        ("nim_smoke_test", ("nim_url", "model", "prompt", "wait_timeout")),
        ("flywheel_job", ("nemo_url", "nemo_token")),
        ("flywheel_job_info", ("nemo_url", "nemo_token")),
    ],
)
def test_module_doc(module, options):
    proc = subprocess.run(
        [DOC, "--json", f"dataflywheel.blueprint.{module}"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[f"dataflywheel.blueprint.{module}"]
    for name in options:
        assert doc["doc"]["options"][name]["description"], f"{module}.{name}"
    assert doc["examples"].strip() and doc["return"]


def test_filter_doc():
    proc = subprocess.run(
        [DOC, "-t", "filter", "--json", "dataflywheel.blueprint.flywheel_promotion_decision"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["dataflywheel.blueprint.flywheel_promotion_decision"]["doc"]
    assert set(doc["options"]) == {"_input", "metric", "margin", "baseline"}
