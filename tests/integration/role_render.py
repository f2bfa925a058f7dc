"""What the roles render, as data (tests/integration/data/render_roles.yml): one ansible-playbook run on
localhost, no cluster contacted, with the roles' own defaults plus the given variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.flywheel_sim import ansible_env

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "integration" / "data" / "render_roles.yml"


def render(tmp_path: Path, **extra_vars) -> dict:
    out = tmp_path / "render.json"
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        str(PLAYBOOK),
        "-e",
        json.dumps({"render_out": str(out), "ansible_python_interpreter": sys.executable, **extra_vars}),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())
