"""Helpers for tests against the Data Flywheel API simulator. run_playbook, run_module and ansible_env are
the harness's (tests/harness.py); new tests use the `ansible_playbook` / `ansible_module` fixtures."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests import harness
from tests.harness import PlaybookRun, ansible_env

__all__ = ["ansible_env", "control", "run_module", "run_playbook"]


def control(server, path: str, body=None, method: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        server.url + path,
        data=data,
        method=method or ("POST" if data else "GET"),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback simulator
        return json.loads(resp.read())


def run_playbook(playbook: Path, extra_vars: dict | None = None) -> PlaybookRun:
    return harness.run_playbook(playbook, extra_vars)


def run_module(module: str, args: dict, check: bool = False, env: dict | None = None) -> dict:
    """One module call (harness.run_module: in-process unless DFW_MODULE_RUNNER=ansible); its result."""
    return harness.run_module(module, args, check=check, env=env)
