"""What the roles render, as data (tests/integration/data/render_roles.yml): one ansible-playbook run on
localhost, no cluster contacted, with the roles' own defaults plus the given variables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests import harness

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "integration" / "data" / "render_roles.yml"


def render(tmp_path: Path, **extra_vars) -> dict:
    out = tmp_path / "render.json"
    run = harness.run_playbook(
        PLAYBOOK,
        {"render_out": str(out), "ansible_python_interpreter": sys.executable, **extra_vars},
        inventory="localhost,",
        args=["-c", "local"],
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return json.loads(out.read_text())
