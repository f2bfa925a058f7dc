"""Where each chart comes from and which credentials its repository gets (filters chart_source, chart_sources,
chart_source_variables), read against the chart roles' real defaults/main.yml files."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.dataflywheel.blueprint.plugins.filter.charts import (
    chart_source,
    chart_source_variables,
    chart_sources,
)

ROOT = Path(__file__).resolve().parents[2]
ROLES = yaml.safe_load((ROOT / "roles" / "preflight" / "defaults" / "main.yml").read_text())["preflight_chart_roles"]
DEFAULTS = [
    yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    for role in sorted({r["role"] for r in ROLES})
]
KEY = "nvapi-unit-key"


def names(sources):
    return [s["name"] for s in sources]


@pytest.mark.parametrize(
    ("ref", "repo", "kind", "ngc"),
    [
        ("gpu-operator", "https://helm.ngc.nvidia.com/nvidia", "remote", True),
        ("oci://nvcr.io/nvidia/blueprint/nvidia-blueprint-data-flywheel", "", "oci", True),
        ("volcano", "https://volcano-sh.github.io/helm-charts", "remote", False),
        ("/charts/gpu-operator-v26.7.0.tgz", "https://helm.ngc.nvidia.com/nvidia", "local", False),
        ("gpu-operator-v26.7.0.tgz", "", "local", False),
        ("./charts/flywheel", "", "local", False),
    ],
)
def test_chart_source_kind_and_ngc_default_credentials(ref, repo, kind, ngc):
    source = chart_source(ref, repo, "", "", KEY)
    assert (source["local"], source["oci"], source["remote"]) == (kind == "local", kind == "oci", kind != "local")
    assert source["ngc"] is ngc
    # NGC gets $oauthtoken and the key when nothing explicit is given; anything else gets nothing
    assert (source["username"], source["password"], source["authenticated"]) == (
        ("$oauthtoken", KEY, True) if ngc else ("", "", False)
    )


def test_chart_source_explicit_credentials_win_and_mirrors_count_as_ngc():
    explicit = chart_source("gpu-operator", "https://helm.ngc.nvidia.com/nvidia", "robot", "s3cret", KEY)
    assert (explicit["username"], explicit["password"]) == ("robot", "s3cret")
    # a mirror of NGC (or the loopback repository of the tests) takes the NGC key once listed
    mirror_url = "https://user@charts.example.com:8443/ngc"
    mirror = chart_source("gpu-operator", mirror_url, "", "", KEY, ["charts.example.com"])
    assert mirror["host"] == "charts.example.com" and mirror["ngc"] and mirror["password"] == KEY
    # a look-alike host is not NGC
    assert not chart_source("x", "https://helm.ngc.nvidia.com.evil.example/x", "", "", KEY)["ngc"]
    # NGC without a key: no credentials (preflight refuses that, naming flywheel_ngc_api_key)
    empty = chart_source("gpu-operator", "https://helm.ngc.nvidia.com/nvidia", "", "", "")
    assert empty["ngc"] and not empty["authenticated"] and empty["username"] == ""


def test_chart_sources_defaults_vanilla_installs_four_charts_three_from_ngc():
    sources = chart_sources(ROLES, DEFAULTS, {}, "vanilla", KEY)
    # the NeMo chart is the flywheel chart's subchart by default (no release of its own)
    assert names(sources) == ["GPU Operator", "NIM Operator", "Volcano", "Data Flywheel"]
    assert [s["name"] for s in sources if s["ngc"]] == ["GPU Operator", "NIM Operator", "Data Flywheel"]
    assert {s["password"] for s in sources if s["ngc"]} == {KEY}
    assert all(not s["explicit"] for s in sources)
    assert (
        sources[3]["prefix"] == "flywheel" and sources[3]["repo_url"] == "https://helm.ngc.nvidia.com/nvidia/blueprint"
    )


def test_chart_sources_platform_method_and_modes():
    # OpenShift: the operators' install method auto means OLM, not helm
    assert names(chart_sources(ROLES, DEFAULTS, {}, "openshift", KEY)) == ["Volcano", "Data Flywheel"]
    # an AWX survey sends strings: "false" disables
    values = {
        "gpu_operator_enabled": "false",
        "nemo_platform_volcano_enabled": "no",
        "nim_operator_install_method": "helm",
    }
    assert names(chart_sources(ROLES, DEFAULTS, values, "openshift", KEY)) == ["NIM Operator", "Data Flywheel"]
    # NeMo standalone by helm: its own release, from its own repository
    standalone = chart_sources(ROLES, DEFAULTS, {"nemo_platform_helm_mode": "standalone"}, "vanilla", KEY)
    assert "NeMo microservices" in names(standalone)
    # explicit credentials for one chart: marked explicit, the NGC key not used for it
    values = {"flywheel_chart_repo_username": "robot", "flywheel_chart_repo_password": "pw"}
    flywheel = chart_sources(ROLES, DEFAULTS, values, "vanilla", KEY)[-1]
    assert flywheel["explicit"] and (flywheel["username"], flywheel["password"]) == ("robot", "pw")


def test_chart_source_variables_cover_what_chart_sources_reads():
    wanted = chart_source_variables(ROLES)
    assert "flywheel_chart_repo_password" in wanted and "nemo_platform_helm_mode" in wanted
    assert "gpu_operator_install_method" in wanted and "nemo_platform_volcano_enabled" in wanted
    # every one of them has a default in the role (so an empty inventory works)
    merged = {k: v for d in DEFAULTS for k, v in d.items()}
    assert [n for n in wanted if n not in merged] == []


def test_chart_sources_names_a_missing_or_templated_setting():
    missing = "gpu_operator_enabled is set neither in the inventory nor in role gpu_operator"
    with pytest.raises(AnsibleFilterError, match=missing):
        chart_sources(ROLES, [], {}, "vanilla", KEY)
    defaults = DEFAULTS + [{"flywheel_chart_repo_url": "{{ my_mirror }}/blueprint"}]
    with pytest.raises(AnsibleFilterError, match="set flywheel_chart_repo_url in the inventory"):
        chart_sources(ROLES, defaults, {}, "vanilla", KEY)
