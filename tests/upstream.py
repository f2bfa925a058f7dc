"""Upstream's own files, the ground truth the stand-ins are checked against.

The files (real NIM/GPU Operator CRDs, the real charts' values.yaml, the Data Flywheel chart, config
and OpenAPI, the recorded API answers, the chart facts) live outside the repository, in
`<shared>/reference/upstream`, where `<shared>` is `$DFW_SHARED_DIR` or else `<repo>/../shared`.
They are upstream's files, not ours: never copy them into the repository.

When they are missing, a test that needs them FAILS (never skips) with a message naming
DFW_SHARED_DIR; outside pytest (the local cluster launcher) the same message ends the program.

    from tests import upstream
    upstream.nim_operator_crds("v3.1.2")          # list of CRD dicts (apps.nvidia.com)
    upstream.key_paths(upstream.chart_values("gpu-operator"))
"""

from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

import yaml

ROOT = Path(__file__).resolve().parents[1]

# The upstream versions the tests use, one per component (docs/compatibility.md gives the table).
NIM_OPERATOR_VERSIONS = ("v2.0.2", "v3.1.2")
NIM_OPERATOR_DEFAULT = "v3.1.2"
GPU_OPERATOR_VERSION = "v26.7.0"
FLYWHEEL_VERSION = "v0.3.1"

# chart name (as the fixture charts are named) -> (folder under the upstream dir, version folder)
CHARTS = {
    "gpu-operator": ("gpu-operator", GPU_OPERATOR_VERSION),
    "k8s-nim-operator": ("k8s-nim-operator", NIM_OPERATOR_DEFAULT),
    "data-flywheel": ("data-flywheel", FLYWHEEL_VERSION),
}


class UpstreamMissingError(RuntimeError):
    """An upstream reference file is not where it should be."""


def fail(message: str) -> NoReturn:
    """pytest.fail under pytest (never a skip), SystemExit elsewhere."""
    if "pytest" in sys.modules:
        import pytest  # noqa: PLC0415 - only under pytest

        pytest.fail(message, pytrace=False)
    raise SystemExit(message)


def shared_dir() -> Path:
    """The shared directory: $DFW_SHARED_DIR, else <repo>/../shared."""
    env = os.environ.get("DFW_SHARED_DIR")
    return Path(env) if env else ROOT.parent / "shared"


def upstream_dir() -> Path:
    """<shared>/reference/upstream; fails with a message naming DFW_SHARED_DIR if it is absent."""
    base = shared_dir()
    path = base / "reference" / "upstream"
    if not (path / "provenance.json").is_file():
        origin = "$DFW_SHARED_DIR" if os.environ.get("DFW_SHARED_DIR") else "<repo>/../shared (DFW_SHARED_DIR unset)"
        fail(
            f"upstream reference files not found: {path} has no provenance.json. They are read from "
            f"{origin}/reference/upstream; set DFW_SHARED_DIR to the directory that holds reference/upstream "
            "(the real CRDs, charts' values.yaml and recorded API answers), which is never copied into the repo"
        )
    return path


def path(relative: str) -> Path:
    """A file under the upstream dir; fails naming it (and DFW_SHARED_DIR) if it is absent."""
    found = upstream_dir() / relative
    if not found.exists():
        fail(f"upstream reference file missing: {found} (looked under DFW_SHARED_DIR={shared_dir()})")
    return found


@lru_cache(maxsize=None)
def _load_yaml_docs(file: str) -> tuple[Any, ...]:
    return tuple(doc for doc in yaml.safe_load_all(Path(file).read_text()) if doc is not None)


def load_yaml(relative: str) -> Any:
    docs = _load_yaml_docs(str(path(relative)))
    if len(docs) != 1:
        fail(f"{relative}: expected one YAML document, found {len(docs)}")
    return docs[0]


def load_json(relative: str) -> Any:
    return json.loads(path(relative).read_text())


# ---------------------------------------------------------------- CRDs


def check_nim_operator_version(version: str) -> str:
    if version not in NIM_OPERATOR_VERSIONS:
        fail(
            f"NIM Operator version {version!r} has no upstream CRDs here; use one of {', '.join(NIM_OPERATOR_VERSIONS)}"
        )
    return version


def nim_operator_crd_files(version: str = NIM_OPERATOR_DEFAULT) -> list[Path]:
    """The apps.nvidia.com CRD files of NIM Operator `version` (v2.0.2: 8 kinds, v3.1.2: 9 with NIMBuild)."""
    crds = path(f"k8s-nim-operator/{check_nim_operator_version(version)}/crds")
    files = sorted(crds.glob("apps.nvidia.com_*.yaml"))
    if not files:
        fail(f"no apps.nvidia.com CRDs in {crds}")
    return files


def gpu_operator_crd_files() -> list[Path]:
    """The nvidia.com CRDs of the GPU Operator (ClusterPolicy, NVIDIADriver)."""
    crds = path(f"gpu-operator/{GPU_OPERATOR_VERSION}/crds")
    files = sorted(crds.glob("nvidia.com_*.yaml"))
    if not files:
        fail(f"no nvidia.com CRDs in {crds}")
    return files


def _crds(files: list[Path]) -> list[dict]:
    return [doc for f in files for doc in _load_yaml_docs(str(f))]


def nim_operator_crds(version: str = NIM_OPERATOR_DEFAULT) -> list[dict]:
    return _crds(nim_operator_crd_files(version))


def gpu_operator_crds() -> list[dict]:
    return _crds(gpu_operator_crd_files())


def crd(kind: str, nim_operator_version: str = NIM_OPERATOR_DEFAULT) -> dict:
    """The CRD of `kind` (NIM Operator kinds at that version, or a GPU Operator kind)."""
    for doc in nim_operator_crds(nim_operator_version) + gpu_operator_crds():
        if doc["spec"]["names"]["kind"] == kind:
            return doc
    fail(f"no upstream CRD for kind {kind} (NIM Operator {nim_operator_version}, GPU Operator {GPU_OPERATOR_VERSION})")


def crd_schema(kind: str, nim_operator_version: str = NIM_OPERATOR_DEFAULT) -> dict:
    """The openAPIV3Schema of the storage version of `kind`."""
    versions = crd(kind, nim_operator_version)["spec"]["versions"]
    stored = next(v for v in versions if v.get("storage"))
    return stored["schema"]["openAPIV3Schema"]


def required_fields() -> dict:
    """crd-required-fields.json (spec.required, nested required lists, CEL rules per CRD file)."""
    return load_json("crd-required-fields.json")


# ---------------------------------------------------------------- charts


def chart_dir(chart: str, version: str | None = None) -> Path:
    """The upstream chart folder (Chart.yaml, values.yaml) for a fixture chart's name."""
    if chart not in CHARTS:
        fail(f"no upstream chart files for {chart!r} (known: {', '.join(CHARTS)}; the NeMo chart is not published)")
    folder, default = CHARTS[chart]
    if chart == "k8s-nim-operator" and version:
        check_nim_operator_version(version)
    return path(f"{folder}/{version or default}/chart")


def chart_values(chart: str, version: str | None = None) -> dict:
    return load_yaml(str((chart_dir(chart, version) / "values.yaml").relative_to(upstream_dir())))


def chart_meta(chart: str, version: str | None = None) -> dict:
    return load_yaml(str((chart_dir(chart, version) / "Chart.yaml").relative_to(upstream_dir())))


def key_paths(tree: Any, prefix: str = "") -> set[str]:
    """Every key path of a values tree, dotted (`a.b.c`). A list of mappings contributes its items'
    keys under `a.b[]`; other lists and scalars are leaves."""
    out: set[str] = set()
    if isinstance(tree, dict):
        for key, value in tree.items():
            here = f"{prefix}.{key}" if prefix else str(key)
            out.add(here)
            out |= key_paths(value, here)
    elif isinstance(tree, list):
        for item in tree:
            if isinstance(item, dict):
                out |= key_paths(item, f"{prefix}[]")
    return out


def unknown_keys(ours: Any, theirs: Any) -> list[str]:
    """Key paths set in `ours` that `theirs` does not have. Below a key whose upstream value is an
    empty map or null (free-form: nodeSelector, annotations, env, ...), any key is accepted."""
    bad: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict):
            if not isinstance(b, dict):
                if b is None or b == {}:
                    return
                bad.append(f"{prefix} (a map here, upstream has {type(b).__name__})")
                return
            if not b:
                return
            for key, value in a.items():
                here = f"{prefix}.{key}" if prefix else str(key)
                if key not in b:
                    bad.append(here)
                else:
                    walk(value, b[key], here)
        elif isinstance(a, list) and isinstance(b, list) and b and all(isinstance(i, dict) for i in b):
            merged: dict = {}
            for item in b:
                merged.update(item)
            for item in a:
                walk(item, merged, f"{prefix}[]")

    walk(ours, theirs, "")
    return sorted(bad)


# ---------------------------------------------------------------- Data Flywheel


def flywheel_config() -> dict:
    """The app's default config/config.yaml at the pinned flywheel version."""
    return load_yaml(f"data-flywheel/{FLYWHEEL_VERSION}/config/config.yaml")


def openapi() -> dict:
    return load_json(f"data-flywheel/{FLYWHEEL_VERSION}/openapi.json")


def api_contract_path() -> Path:
    """flywheel-api-contract.json: requests sent to the real flywheel API and its answers."""
    return path("flywheel-api-contract.json")


def api_contract() -> dict:
    return json.loads(api_contract_path().read_text())


def chart_facts_path() -> Path:
    """data-flywheel-chart-facts.md: the objects, Services, ports and URLs of the real chart."""
    return path("data-flywheel-chart-facts.md")
