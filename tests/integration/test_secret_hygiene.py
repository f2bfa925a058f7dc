"""Secret hygiene of a full demo run: site.yml against inventories/local at -vvv.

Recognisable random secret values (NGC API key, Hugging Face token, judge API key, the flywheel
API bearer token) are given the way an operator gives them (a vars file as ansible-vault would
decrypt it, and the environment variables AWX credentials inject); then the -vvv output, every
non-Secret object of the cluster, every helm release's values and every file the run left on disk
(the repo tree, ~/.ansible, /tmp, reports/, the local cluster's logs) are searched for them, raw
and base64-encoded.

The variable names each secret is given under are in SECRET_VARS: the cluster roles that consume
the NGC/HF/judge keys (issue 4) add theirs there, and the scan covers them from then on.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.flywheel_sim import control
from tests.integration.playbook_runner import ROOT, play
from tests.integration.secret_scan import scan_cluster, scan_text
from tests.sim.flywheel_api.simulator import start as start_flywheel_api
from tests.sim.services import DEMO

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.wip,
]  # issue 8: not yet proven green end to end; run by make test-wip, not make test

# secret -> (variables it is given under, environment variables it is given under)
SECRET_VARS = {
    "ngc_api_key": (["flywheel_prereqs_ngc_api_key", "ngc_api_key"], ["NGC_API_KEY"]),
    "hf_token": (["flywheel_prereqs_hf_token", "hf_token"], ["HF_TOKEN"]),
    "judge_api_key": (["flywheel_judge_api_key", "judge_api_key"], ["JUDGE_API_KEY"]),
    "flywheel_api_token": (["flywheel_run_api_token"], ["FLYWHEEL_API_TOKEN"]),
}
PREFIX = {"ngc_api_key": "nvapi-", "hf_token": "hf_", "judge_api_key": "judge-", "flywheel_api_token": "fwtok-"}
SKIP_DIRS = {".git", ".venv", ".collections", ".cache", "node_modules", "__pycache__"}


def walk_recent(root: Path, since: float, skip: set[Path]):
    """Files under root modified at or after `since` (whole tree for the repo), readable ones only."""
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda _e: None):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and Path(dirpath, d) not in skip]
        for name in filenames:
            path = Path(dirpath, name)
            try:
                if path.is_symlink() or not path.is_file() or path.stat().st_mtime < since:
                    continue
                if path.stat().st_size > 50_000_000:
                    continue
                yield path
            except OSError:
                continue


def scan_paths(roots: list[tuple[Path, float]], secrets: dict[str, str], skip: set[Path]) -> tuple[list, int]:
    leaks, count = [], 0
    for root, since in roots:
        if not root.exists():
            continue
        for path in walk_recent(root, since, skip):
            try:
                text = path.read_bytes().decode("utf-8", errors="ignore")
            except OSError:
                continue
            count += 1
            leaks += scan_text(text, secrets, str(path))
    return leaks, count


@pytest.fixture
def demo_api():
    server = start_flywheel_api(unit_seconds=0.05)
    control(server, "/_sim/config", {"workloads": DEMO["workloads"]})
    yield server
    server.shutdown()


def test_demo_run_at_vvv_leaks_no_secret(vanilla, vanilla_kubeconfig, tool_env, demo_api, tmp_path):
    started = time.time() - 1
    secrets = {name: PREFIX[name] + pysecrets.token_hex(20) for name in SECRET_VARS}
    vars_file = tmp_path / "vault-decrypted.yml"  # the operator's input, removed before the scan
    vars_file.write_text(
        json.dumps({var: secrets[name] for name, (names, _env) in SECRET_VARS.items() for var in names})
    )
    env = {
        "K8S_AUTH_KUBECONFIG": vanilla_kubeconfig,
        "FLYWHEEL_API_URL": demo_api.url,
        **{var: secrets[name] for name, (_names, envs) in SECRET_VARS.items() for var in envs},
    }
    result = play(
        "site.yml",
        {"flywheel_run_wait_sleep": 1, "flywheel_run_progress_interval": 1},
        tmp_path / "demo.tasks",
        inventory="inventories/local",
        env=env,
        extra_args=["-e", f"@{vars_file}"],
        verbosity=3,
    )
    vars_file.unlink()
    assert result.returncode == 0, result.output[-4000:]
    assert "<127.0.0.1> EXEC" in result.output or "ESTABLISH LOCAL CONNECTION" in result.output, "not -vvv output"
    # the bearer token really went to the API (so the no_log path was exercised, not skipped)
    assert control(demo_api, "/_sim/stats").get("with Authorization header", 0) > 0

    leaks = scan_text(result.output, secrets, "ansible-playbook -vvv output")
    leaks += scan_cluster(vanilla, secrets)

    releases = json.loads(
        subprocess.run(
            ["helm", "list", "-A", "-a", "-o", "json"], capture_output=True, text=True, env=tool_env, check=True
        ).stdout
        or "[]"
    )
    for rel in releases:
        values = subprocess.run(
            ["helm", "get", "values", "-a", "-o", "json", "-n", rel["namespace"], rel["name"]],
            capture_output=True,
            text=True,
            env=tool_env,
            check=True,
        ).stdout
        leaks += scan_text(values, secrets, f"helm values of {rel['namespace']}/{rel['name']}")

    clusters_dir = Path(os.environ.get("DFW_CLUSTERS_DIR") or Path.home() / ".cache/dataflywheel-blueprint/clusters")
    file_leaks, scanned = scan_paths(
        [
            (ROOT, 0),  # the whole work tree (reports/ included), whatever its age
            (Path.home() / ".ansible", started),
            (Path("/tmp"), started),  # noqa: S108 - scanning, not writing
            (clusters_dir, started),  # kube-apiserver, etcd and kwok logs of the local cluster
        ],
        secrets,
        skip=set(),
    )
    leaks += file_leaks
    assert (ROOT / "reports" / "local-cluster" / "report.json").exists(), "the demo wrote no report"
    assert scanned > 10, f"only {scanned} files scanned"
    assert not leaks, "\n".join(str(x) for x in leaks)
