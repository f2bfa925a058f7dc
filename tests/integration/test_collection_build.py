"""`ansible-galaxy collection build` makes a tarball that `ansible-galaxy collection install` accepts,
that ships what can run without the repository around it, and that names no placeholder."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests import harness

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
META = yaml.safe_load((ROOT / "galaxy.yml").read_text())
FQCN = f"{META['namespace']}.{META['name']}"


def galaxy(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The tarball, built and installed once for the tests of this module."""
    tmp = tmp_path_factory.mktemp("collection")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(tmp / "none.cfg")  # not the repo's ansible.cfg
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp / "installed")
    result = galaxy("build", "--output-path", str(tmp), env=env)
    assert result.returncode == 0, result.stderr
    tarball = tmp / f"{META['namespace']}-{META['name']}-{META['version']}.tar.gz"
    assert tarball.is_file()
    with tarfile.open(tarball) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return {"tmp": tmp, "env": env, "tarball": tarball, "files": files}


def test_build_and_install(built):
    tmp, env, names = built["tmp"], built["env"], set(built["files"])
    assert {"MANIFEST.json", "LICENSE", "roles/flywheel_prereqs/tasks/main.yml", "playbooks/site.yml"} <= names
    assert not [n for n in names if n.startswith((".venv", "collections/", ".git/", ".ci"))], "build_ignore"

    # --offline: dependencies are checked against what is installed, Galaxy is not asked
    installed = galaxy("install", "--offline", "--force", "-p", str(tmp / "installed"), str(built["tarball"]), env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = tmp / "installed" / "ansible_collections" / META["namespace"] / META["name"]
    manifest = json.loads((root / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == (
        META["namespace"],
        META["name"],
        META["version"],
    )
    assert manifest["license"] == ["Apache-2.0"]
    assert "kubernetes.core" in manifest["dependencies"]

    listed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "list", FQCN, "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert META["version"] == next(iter(json.loads(listed.stdout).values()))[FQCN]["version"]

    # the installed collection's playbooks resolve by FQCN, from a directory that is not a clone
    (tmp / "inventory.yml").write_text("all:\n  children:\n    flywheel_clusters:\n      hosts:\n        c1: {}\n")
    listed = harness.run_playbook(
        f"{FQCN}.site",
        inventory=tmp / "inventory.yml",
        args=["--list-tasks"],
        env={"ANSIBLE_CONFIG": env["ANSIBLE_CONFIG"], "ANSIBLE_COLLECTIONS_PATH": env["ANSIBLE_COLLECTIONS_PATH"]},
        cwd=tmp,
    )
    assert listed.returncode == 0, listed.tail()
    for play in ("Preflight", "Install the flywheel stack", "Run flywheel jobs"):
        assert play in listed.stdout, f"{FQCN}.site --list-tasks lacks the play {play!r}"


def test_license_is_the_apache_2_text(built):
    text = built["files"]["LICENSE"].decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 10000, "LICENSE is not the full text"


def test_metadata_names_no_placeholder(built):
    info = json.loads(built["files"]["MANIFEST.json"])["collection_info"]
    for key in ("repository", "documentation", "homepage", "issues"):
        value = info.get(key)
        assert value is None or re.match(r"https://[^/]+\.[a-z]+/", value), f"{key}: {value!r}"
        assert not value or not re.search(r"example\.(invalid|com|org)|localhost", value), (
            f"{key}: placeholder {value!r}"
        )


class _AnyTagLoader(yaml.SafeLoader):
    """Ansible's YAML tags (!unsafe, !vault) read as their plain values."""


def _any_tag(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_AnyTagLoader.add_multi_constructor("!", _any_tag)


def _module_file(module: str, names: set[str]) -> bool:
    path = module.replace(".", "/")
    return f"{path}.py" in names or f"{path}/__init__.py" in names or any(n.startswith(path + "/") for n in names)


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def test_what_ships_can_run_without_the_repository(built):
    """Ship what can run: every Python import of the repository's own test packages and every tests/ path
    a shipped playbook or YAML file names (comments aside) is in the tarball too."""
    files = built["files"]
    names = set(files)
    prefix = f"ansible_collections.{META['namespace']}.{META['name']}."
    missing = []
    for name, data in sorted(files.items()):
        suffix = PurePosixPath(name).suffix
        if suffix == ".py":
            for node in ast.walk(ast.parse(data.decode(), name)):
                modules = []
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module]
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                for module in modules:
                    local = module[len(prefix) :] if module.startswith(prefix) else module
                    if local.split(".")[0] == "tests" and not _module_file(local, names):
                        missing.append(f"{name} imports {module}")
        elif suffix in (".yml", ".yaml") and not name.startswith("changelogs/"):
            for doc in yaml.load_all(data.decode(), Loader=_AnyTagLoader):  # noqa: S506 - a SafeLoader subclass
                for text in _strings(doc):
                    for path in re.findall(r"(?<![\w/.-])tests/[\w./-]+", text):
                        if path.rstrip("/.") not in names and not any(
                            n.startswith(path.rstrip("/") + "/") for n in names
                        ):
                            missing.append(f"{name} names {path}")
    assert not missing, "shipped content needs what build_ignore leaves out:\n" + "\n".join(missing)
    # what the tests need does not ship half: neither the integration tests nor the local cluster
    assert not [n for n in names if n.startswith(("tests/integration/", "tests/sim/", "tests/unit/", "molecule/"))]
