"""Helpers for tests that run the flywheel modules against the Data Flywheel API simulator."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


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


def ansible_env(extra: dict | None = None) -> dict:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        **(extra or {}),
    }


def run_playbook(playbook: Path, extra_vars: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "ansible-playbook"), str(playbook)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    return subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(), cwd=ROOT, check=False)


def run_module(module: str, args: dict, check: bool = False, env: dict | None = None) -> dict:
    """Run one module through ansible (ad-hoc, json callback) and return its result."""
    cmd = [str(BIN / "ansible"), "localhost", "-m", f"dataflywheel.blueprint.{module}", "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    full_env = ansible_env({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json", **(env or {})})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=ROOT, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError as err:
        raise AssertionError(f"no JSON from ansible:\n{proc.stdout}\n{proc.stderr}") from err
    result = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    result["_warnings"] = result.get("warnings", [])
    return result


def call_module(module: str, args: dict, check: bool = False) -> dict:
    """Run one of the collection's modules in this process, as Ansible would run it on the
    controller (same argument_spec, same JSON result), without forking ansible: milliseconds
    instead of seconds. Its `_warnings` are the module's warnings."""
    from ansible.module_utils.common import warnings  # noqa: PLC0415 - test helper only
    from ansible.module_utils.testing import patch_module_args  # noqa: PLC0415

    code = importlib.import_module(f"ansible_collections.dataflywheel.blueprint.plugins.modules.{module}")
    args = dict(args, _ansible_check_mode=check, _ansible_module_name=module)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            code.main()
        except SystemExit:
            pass
        finally:  # a module process starts with none; this one is reused
            for name in ("_global_warnings", "_global_deprecations"):
                getattr(warnings, name, {}).clear()
    try:
        result = json.loads(out.getvalue())
    except ValueError as err:
        raise AssertionError(f"no JSON from {module}: {out.getvalue()!r}") from err
    # as the controller shows them: the message of each warning
    result["_warnings"] = [
        w["event"]["msg"] if isinstance(w, dict) and "event" in w else str(w) for w in result.get("warnings", [])
    ]
    return result
