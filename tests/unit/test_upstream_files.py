"""tests/upstream.py: where upstream's reference files are, and that they are upstream's bytes."""

from __future__ import annotations

import hashlib

import pytest

from tests import upstream


def test_missing_shared_dir_fails_naming_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("DFW_SHARED_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(pytest.fail.Exception, match="DFW_SHARED_DIR"):
        upstream.upstream_dir()


def test_unknown_operator_version_fails():
    with pytest.raises(pytest.fail.Exception, match="v2.0.2, v3.1.2"):
        upstream.nim_operator_crd_files("v9.9.9")


def test_copies_match_provenance():
    """Every copied file is byte-identical to the upstream blob provenance.json records."""
    files = upstream.load_json("provenance.json")["files"]
    assert len(files) >= 25
    for entry in files:
        data = upstream.path(entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]


@pytest.mark.parametrize(("version", "kinds"), [("v2.0.2", 8), ("v3.1.2", 9)])
def test_nim_operator_crds_per_version(version, kinds):
    crds = upstream.nim_operator_crds(version)
    assert len(crds) == kinds
    assert {c["spec"]["group"] for c in crds} == {"apps.nvidia.com"}
    assert ("NIMBuild" in {c["spec"]["names"]["kind"] for c in crds}) == (version == "v3.1.2")


def test_gpu_operator_crds_and_required_spec():
    kinds = {c["spec"]["names"]["kind"] for c in upstream.gpu_operator_crds()}
    assert kinds == {"ClusterPolicy", "NVIDIADriver"}
    assert "driver" in upstream.crd_schema("ClusterPolicy")["properties"]["spec"]["required"]


def test_key_paths_and_unknown_keys():
    tree = {"a": {"b": 1, "c": [{"d": 1}]}, "e": {}, "f": None}
    assert upstream.key_paths(tree) == {"a", "a.b", "a.c", "a.c[].d", "e", "f"}
    assert upstream.unknown_keys({"a": {"b": 2, "x": 1}, "e": {"free": 1}, "f": {"any": 1}}, tree) == ["a.x"]
    assert upstream.unknown_keys({"a": {"c": [{"z": 1}]}}, tree) == ["a.c[].z"]


def test_chart_values_and_api_contract_load():
    assert upstream.chart_values("data-flywheel")["foundationalFlywheelServer"]["config"]["nmp_config"]
    assert upstream.chart_meta("k8s-nim-operator", "v2.0.2")["version"] == "2.0.2"
    assert upstream.api_contract()["exchanges"]
    assert upstream.chart_facts_path().name == "data-flywheel-chart-facts.md"
