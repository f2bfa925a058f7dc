"""The fixture charts carry the real charts' facts, checked against upstream's files in the shared
reference (tests/upstream.py), not by eye:

- each packaged fixture chart's values.yaml is the real chart's at the pinned version (same key tree:
  packaging copies the file in); the fixture templates read only keys that file has;
- every value key a role sets exists in the real chart's values.yaml (the roles' rendered values);
- the flywheel fixture renders the objects, namespaces, Services and ports data-flywheel-chart-facts.md
  lists (its tables are parsed, not retyped);
- the NeMo chart (no upstream file; its fixture values are ours, exempt from the key-tree test) names
  its Services as the facts file's §6 and NVIDIA's docs give them for a standalone release `nemo`, and
  with the flywheel release's prefix as a subchart, and the roles' URL derivation gives the same;
  it refuses the bitnamilegacy images without global.security.allowInsecureImages, and its bundled NIM
  Operator is on by default (the role turns it off);
- with the real chart's default `config` under them, the role's values render a df-config equal to
  the role's variables, for a remote and a local judge (through the role's post-renderer).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_config as fc
from ansible_collections.dataflywheel.blueprint.plugins.module_utils import nemo_platform as npf
from tests import upstream

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "tests" / "fixtures" / "charts"
STAMP = ROOT / "roles" / "flywheel" / "files" / "df_config_stamp.py"
# fixture chart -> (packaged file, upstream chart version)
PACKAGES = {
    "gpu-operator": [(f"gpu-operator-{upstream.GPU_OPERATOR_VERSION}.tgz", None)],
    "k8s-nim-operator": [(f"k8s-nim-operator-{v.lstrip('v')}.tgz", v) for v in upstream.NIM_OPERATOR_VERSIONS],
    "data-flywheel": [(f"nvidia-blueprint-data-flywheel-{upstream.FLYWHEEL_VERSION.lstrip('v')}.tgz", None)],
}
NEMO = "nemo-microservices-helm-chart-25.8.0.tgz"
FLYWHEEL = PACKAGES["data-flywheel"][0][0]


def packaged_values(charts: str, package: str) -> bytes:
    with tarfile.open(Path(charts) / package) as tar:
        member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/values.yaml"))
        return tar.extractfile(member).read()


def helm_template(tool_env, chart: str, release: str, namespace: str, values: dict | None = None, check=True):
    cmd = ["helm", "template", release, chart, "-n", namespace, "-f", "-"]
    proc = subprocess.run(
        cmd, input=yaml.safe_dump(values or {}), env=tool_env, capture_output=True, text=True, check=False
    )
    if check:
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]
    return proc


@pytest.mark.parametrize("chart", sorted(PACKAGES))
def test_packaged_fixture_values_are_the_real_charts(fixture_charts, chart):
    for package, version in PACKAGES[chart]:
        real = upstream.chart_dir(chart, version) / "values.yaml"
        ours = packaged_values(fixture_charts, package)
        assert ours == real.read_bytes(), package
        assert upstream.key_paths(yaml.safe_load(ours)) == upstream.key_paths(upstream.chart_values(chart, version))
    # and no values.yaml of our own in the repository (it would drift from upstream's)
    assert not (CHARTS / chart / "values.yaml").exists()


def test_the_nemo_chart_is_exempt_and_covers_what_the_flywheel_chart_sets():
    """No upstream values.yaml of the NeMo chart is available: its fixture says so, and its values hold at
    least every key the real flywheel chart sets for it."""
    assert "no upstream file" in (CHARTS / "nemo-microservices-helm-chart" / "Chart.yaml").read_text()
    ours = yaml.safe_load((CHARTS / "nemo-microservices-helm-chart" / "values.yaml").read_text())
    theirs = upstream.chart_values("data-flywheel")["nemo-microservices-helm-chart"]
    assert not upstream.unknown_keys(theirs, {**ours, "enabled": True})


VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


@pytest.mark.parametrize("chart", sorted(PACKAGES))
def test_fixture_templates_read_only_keys_the_real_values_have(chart):
    real = set()
    for _package, version in PACKAGES[chart]:
        real |= upstream.key_paths(upstream.chart_values(chart, version))
    read = set()
    for template in (CHARTS / chart / "templates").glob("*"):
        read |= {m.group(1).lstrip(".") for m in VALUES_REF.finditer(template.read_text())}
    assert read, chart
    assert not sorted(read - real), chart


def test_role_values_use_only_keys_of_the_real_charts(roles_rendered):
    gpu = upstream.unknown_keys(roles_rendered["gpu_operator_values"], upstream.chart_values("gpu-operator"))
    assert not gpu
    for version in upstream.NIM_OPERATOR_VERSIONS:
        values = roles_rendered["nim_operator_values"][version.lstrip("v")]
        assert not upstream.unknown_keys(values, upstream.chart_values("k8s-nim-operator", version)), version
    # 2.0.2 has no admission controller: the role does not set it there
    assert "admissionController" not in roles_rendered["nim_operator_values"]["2.0.2"]["operator"]
    real_flywheel = upstream.chart_values("data-flywheel")
    nemo_fixture = yaml.safe_load((CHARTS / "nemo-microservices-helm-chart" / "values.yaml").read_text())
    for judge, out in roles_rendered["flywheel"].items():
        values = json.loads(json.dumps(out["values"]))
        nemo = values.pop("nemo-microservices-helm-chart")
        # the app config is the flywheel's own file, checked against its config models (test_flywheel_config)
        values["foundationalFlywheelServer"].pop("config")
        assert not upstream.unknown_keys(values, real_flywheel), judge
        assert not upstream.unknown_keys(nemo, {**nemo_fixture, "enabled": True}), judge
    for mode in ("nemo_standalone_values", "nemo_subchart_values"):
        assert not upstream.unknown_keys(roles_rendered[mode], {**nemo_fixture, "enabled": True}), mode


def fact_rows(section: str) -> list[list[str]]:
    """The rows of the first table under `## <section>` in data-flywheel-chart-facts.md."""
    text = upstream.chart_facts_path().read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_flywheel_fixture_renders_the_objects_services_and_ports_of_the_facts(fixture_charts, tool_env):
    values = upstream.chart_values("data-flywheel")
    docs = helm_template(tool_env, str(Path(fixture_charts) / FLYWHEEL), "data-flywheel", "rel-ns")
    own = [d for d in docs if not d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/instance")]
    found = {(d["kind"], d["metadata"]["name"]): d["metadata"].get("namespace") for d in own}
    rows = fact_rows("2. Objects the chart renders")
    assert len(rows) >= 20
    for _template, kind, pattern, namespace, _when, default in rows:
        name = ticked(pattern.split("->")[-1])[0]
        key = (kind.split(" ")[0], name)
        if default.startswith("yes"):
            assert key in found, (key, sorted(found))
            want = {"release": None, "`.Release.Namespace`": "rel-ns", "`.Values.namespace`": values["namespace"]}
            assert found[key] == want[namespace], (key, found[key])
        elif default.startswith("no"):
            assert key not in found, key
    services = {d["metadata"]["name"]: d for d in own if d["kind"] == "Service"}
    for service, port, selects, _path, default in fact_rows("3. Services and ports"):
        name = ticked(service)[0]
        if not default.startswith("yes"):
            assert name not in services
            continue
        spec = services[name]["spec"]
        assert spec["type"] == "NodePort" and spec["ports"][0]["port"] == int(port.split(",")[0]), name
        assert spec["selector"] == {"app": ticked(selects)[0].split("=", 1)[1]}, name


def test_nemo_service_names_standalone_and_as_subchart_match_the_sources_and_the_roles(fixture_charts, tool_env):
    facts = {ticked(r[0])[0]: int(r[1]) for r in fact_rows("6. Service names") if ticked(r[0])[0].startswith("nemo-")}
    assert len(facts) == 7, facts
    legacy = {"global": {"security": {"allowInsecureImages": True}}}
    standalone = helm_template(tool_env, str(Path(fixture_charts) / NEMO), "nemo", "nemo", legacy)
    services = {d["metadata"]["name"]: d["spec"]["ports"][0]["port"] for d in standalone if d["kind"] == "Service"}
    assert services == facts
    found = npf.endpoints("helm", "standalone", "nemo", "nemo", guardrails=True)
    derived = {u.split("//")[1].split(".")[0]: int(u.rsplit(":", 1)[1]) for u in found.values() if isinstance(u, str)}
    assert derived == facts

    sub = helm_template(tool_env, str(Path(fixture_charts) / FLYWHEEL), "data-flywheel", "fw")
    prefixed = {d["metadata"]["name"]: d["spec"]["ports"][0]["port"] for d in sub if d["kind"] == "Service"}
    for name, port in facts.items():
        assert prefixed[name.replace("nemo-", "data-flywheel-", 1)] == port, name
    found = npf.endpoints("helm", "subchart", "fw", "data-flywheel", guardrails=True)
    for key, url in found.items():
        if isinstance(url, str):
            name, port = url.split("//")[1].split(".")[0], int(url.rsplit(":", 1)[1])
            assert prefixed[name] == port, key


def test_nemo_chart_refuses_bitnami_legacy_images_without_allow_insecure(fixture_charts, tool_env):
    chart = str(Path(fixture_charts) / NEMO)
    legacy = {"entity-store": {"postgresql": {"image": {"repository": "bitnamilegacy/postgresql"}}}}
    refused = helm_template(tool_env, chart, "nemo", "nemo", legacy, check=False)
    assert refused.returncode != 0
    assert "global.security.allowInsecureImages" in refused.stderr and "bitnamilegacy/postgresql" in refused.stderr
    allowed = helm_template(
        tool_env, chart, "nemo", "nemo", {**legacy, "global": {"security": {"allowInsecureImages": True}}}
    )
    assert any(d["kind"] == "StatefulSet" for d in allowed)


def test_bundled_nim_operator_is_on_by_default_and_off_in_the_roles_values(fixture_charts, tool_env, roles_rendered):
    chart = str(Path(fixture_charts) / NEMO)

    def operators(docs):
        return [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"
                and d["metadata"]["labels"].get("app.kubernetes.io/name") == "k8s-nim-operator"]  # fmt: skip

    assert operators(helm_template(tool_env, chart, "nemo", "nemo")) == ["nemo-nim-operator"]
    role = helm_template(tool_env, chart, "nemo", "nemo", roles_rendered["nemo_standalone_values"])
    assert operators(role) == []
    # the NeMo Operator (training jobs) is another operator and stays
    assert "nemo-nemo-operator-controller-manager" in [d["metadata"]["name"] for d in role]


@pytest.mark.parametrize("judge", ["remote", "local"])
def test_rendered_df_config_equals_the_role_variables(fixture_charts, tool_env, roles_rendered, tmp_path, judge):
    """The real chart's default `config` (local judge with context_length, gpus, pvc_size, tag; a local
    embedding NIM) lies under the role's values: df-config must hold exactly what the variables say."""
    out = roles_rendered["flywheel"][judge]
    expected = fc.expected(out["app_config"])
    assert expected["llm_judge_config"] == {k: v for k, v in out["judge"].items() if v is not None}
    chart_default = upstream.chart_values("data-flywheel")["foundationalFlywheelServer"]["config"]
    # the chart default really is different, so this could fail
    assert chart_default["llm_judge_config"] != expected["llm_judge_config"]
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    args = f"--expect '{tmp_path}/expected.json' --report '{tmp_path}/m.txt'"
    (tmp_path / "post-render").write_text(f"#!/bin/sh\nexec '{sys.executable}' '{STAMP}' {args}\n")
    (tmp_path / "post-render").chmod(0o700)
    cmd = ["helm", "template", "data-flywheel", str(Path(fixture_charts) / FLYWHEEL), "-n", "data-flywheel", "-f", "-",
           "--post-renderer", str(tmp_path / "post-render")]  # fmt: skip
    proc = subprocess.run(
        cmd, input=yaml.safe_dump(out["values"]), env=tool_env, capture_output=True, text=True, check=False
    )
    mismatch = (tmp_path / "m.txt").read_text() if (tmp_path / "m.txt").exists() else ""
    assert proc.returncode == 0, proc.stderr + mismatch
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "df-config")
    assert yaml.safe_load(config["data"]["config.yaml"]) == expected
    stamped = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Deployment"
        and "dataflywheel.blueprint/config-sha256" in (d["spec"]["template"]["metadata"].get("annotations") or {})
    }
    assert stamped == {"df-api-deployment", "df-celery-worker-deployment", "df-celery-parent-worker-deployment"}
