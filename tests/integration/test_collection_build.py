"""`ansible-galaxy collection build` makes a tarball that `ansible-galaxy collection install` accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def galaxy(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_build_and_install(tmp_path: Path):
    meta = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(tmp_path / "none.cfg")  # not the repo's ansible.cfg
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp_path / "installed")

    built = galaxy("build", "--output-path", str(tmp_path), env=env)
    assert built.returncode == 0, built.stderr
    tarball = tmp_path / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"
    assert tarball.is_file()
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "MANIFEST.json" in names and "roles/flywheel_prereqs/tasks/main.yml" in names
    assert not [n for n in names if n.startswith((".venv", ".collections", ".git/", ".ci"))], "build_ignore"

    # --offline: dependencies are checked against what is installed, Galaxy is not asked
    installed = galaxy("install", "--offline", "--force", "-p", str(tmp_path / "installed"), str(tarball), env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = tmp_path / "installed" / "ansible_collections" / meta["namespace"] / meta["name"]
    manifest = json.loads((root / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == (
        meta["namespace"],
        meta["name"],
        meta["version"],
    )
    assert manifest["license"] == ["Apache-2.0"]
    assert "kubernetes.core" in manifest["dependencies"]

    listed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "list", f"{meta['namespace']}.{meta['name']}", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert (
        meta["version"]
        == next(iter(json.loads(listed.stdout).values()))[f"{meta['namespace']}.{meta['name']}"]["version"]
    )
