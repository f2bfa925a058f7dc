"""execution-environment.yml: `ansible-builder create` renders the build context without errors, and
the context installs what the collection needs. No container runtime here, so the image itself is
not built; ansible-builder's own introspection script (shipped in the context and run at build time)
is run here against the collection as the EE would install it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def versions() -> dict:
    out = {}
    for line in (ROOT / "tests" / "sim" / "versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key] = value
    return out


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    """What `make ee-context` does, in a temporary copy (the working tree's .cache is left alone)."""
    tmp = tmp_path_factory.mktemp("ee")
    work = tmp / "src"
    shutil.copytree(
        ROOT,
        work,
        ignore=shutil.ignore_patterns(".venv", "collections", ".cache", ".git", "reports", "__pycache__", ".*_cache"),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(tmp / "none.cfg")
    built = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(work / ".cache" / "ee"), "."],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (tarball,) = (work / ".cache" / "ee").glob("dataflywheel-blueprint-*.tar.gz")
    tarball.rename(work / ".cache" / "ee" / "dataflywheel-blueprint.tar.gz")
    created = subprocess.run(
        [
            str(BIN / "ansible-builder"),
            "create",
            "-f",
            "execution-environment.yml",
            "-c",
            str(tmp / "context"),
            "--output-filename",
            "Containerfile",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert "Complete!" in created.stdout
    return tmp / "context"


def test_context_has_the_dependencies(context):
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    build = context / "_build"
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    assert {"name": "kubernetes.core", "version": "6.2.0"} in galaxy
    assert {"name": "collections/dataflywheel-blueprint.tar.gz", "type": "file"} in galaxy
    assert (build / "collections" / "dataflywheel-blueprint.tar.gz").stat().st_size > 10_000
    python = (build / "requirements.txt").read_text()
    assert "kubernetes>=" in python and "ansible==" not in python  # not the whole Ansible package
    assert "openssh-clients [platform:rpm]" in (build / "bindep.txt").read_text()


def test_containerfile_builds_helm_and_pins_ansible(context):
    text = (context / "Containerfile").read_text()
    v = versions()
    assert f"ARG HELM_VERSION={v['HELM_VERSION']}" in text, "EE helm differs from tests/sim/versions.env"
    assert f"ARG HELM_DIFF_VERSION={v['HELM_DIFF_VERSION']}" in text
    assert "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" in text
    assert "install -m 0755 /output/helm/bin/helm /usr/local/bin/helm" in text
    assert "helm plugin list | grep -q '^diff'" in text  # the build fails without a working helm + diff
    import ansible  # noqa: PLC0415 - the version the tests run with

    core = next(line for line in text.splitlines() if line.startswith("ARG ANSIBLE_INSTALL_REFS"))
    assert f"ansible-core=={ansible.__version__.rsplit('.', 1)[0]}." in core, core
    assert "ansible-runner==" in core
    final = text[text.index("FROM base AS final") :]
    assert final.index("/usr/local/bin/helm") < final.index("RUN rm -rf /output")


def test_introspection_finds_the_collection_requirements(context, tmp_path):
    """ansible-builder's introspect (run at build time) reads meta/execution-environment.yml of the installed
    collection: the EE gets the kubernetes client, not the top-level requirements.txt (the whole Ansible)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(tmp_path / "none.cfg")
    installed = subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--force",
            "--no-deps",
            "-p",
            str(tmp_path / "collections"),
            str(context / "_build" / "collections" / "dataflywheel-blueprint.tar.gz"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    out = subprocess.run(
        [
            sys.executable,
            str(context / "_build" / "scripts" / "introspect.py"),
            "introspect",
            str(tmp_path / "collections"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    found = yaml.safe_load(out.stdout)
    python = [line for line in found["python"] if "dataflywheel.blueprint" in line]
    assert any(line.startswith("kubernetes>=") for line in python), found
    assert not any(line.startswith("ansible") for line in python), found
    assert any("openssh" in line for line in found["system"]), found
