"""execution-environment.yml: in a clean clone, with no step before it, `ansible-builder create` (the
first half of `ansible-builder build`) renders the build context, and the context installs what the
collection needs. No container runtime here, so the image itself is not built; the galaxy stage's
install command and ansible-builder's own introspection script (shipped in the context and run at
build time) are run here against the context."""

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


def clean_clone(dest: Path) -> Path:
    """The files a fresh clone of this working tree has (tracked and new, not ignored), symlinks kept."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source, target = ROOT / name, dest / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    """`ansible-builder create` in a clean clone, with no step before it (what `ansible-builder build` runs)."""
    tmp = tmp_path_factory.mktemp("ee")
    work = clean_clone(tmp / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(tmp / "none.cfg")
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
    assert "No matches" not in created.stdout + created.stderr, created.stdout + created.stderr
    return tmp / "context"


def test_context_has_the_dependencies(context):
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    build = context / "_build"
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    assert {"name": "kubernetes.core", "version": "6.2.0"} in galaxy
    assert {"name": "src/dataflywheel.blueprint", "type": "dir"} in galaxy
    source = build / "src" / "dataflywheel.blueprint"
    assert yaml.safe_load((source / "galaxy.yml").read_text())["name"] == "blueprint"
    assert (source / "roles" / "flywheel_prereqs" / "tasks" / "main.yml").is_file()
    assert (source / "playbooks" / "site.yml").is_file()
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


def test_galaxy_stage_installs_the_collection_and_introspection_finds_its_requirements(context, tmp_path):
    """The galaxy stage's command in the context (`ansible-galaxy collection install -r requirements.yml`, run
    where the Containerfile runs it), for the entries that need no network; then ansible-builder's introspect
    (run at build time) reads meta/execution-environment.yml of the installed collection: the EE gets the
    kubernetes client, not the top-level requirements.txt (the whole Ansible)."""
    build = context / "_build"
    text = (context / "Containerfile").read_text()
    assert (
        "COPY _build /build" in text
        and "collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in text
    )
    local = [
        c for c in yaml.safe_load((build / "requirements.yml").read_text())["collections"] if c.get("type") == "dir"
    ]
    (build / "local-requirements.yml").write_text(yaml.safe_dump({"collections": local}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(tmp_path / "none.cfg")
    installed = subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--no-deps",
            "-r",
            "local-requirements.yml",
            "--collections-path",
            str(tmp_path / "collections"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=build,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = tmp_path / "collections" / "ansible_collections" / "dataflywheel" / "blueprint"
    assert (root / "MANIFEST.json").is_file() and (root / "roles" / "preflight" / "tasks" / "main.yml").is_file()
    assert not list(root.rglob("__pycache__")), "build_ignore did not apply"
    out = subprocess.run(
        [
            sys.executable,
            str(build / "scripts" / "introspect.py"),
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
