"""Every module, plugin and role documents itself: ansible-doc renders each module and plugin, and
every role has a README, argument specs for each entry point and only prefixed, documented defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.dataflywheel.blueprint.plugins.lookup.role_argument_specs import relax, role_specs
from tests import harness

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


def ansible_doc(*args: str) -> dict:
    if args[0] == "-t":
        return harness.ansible_doc(*args[2:], plugin_type=args[1])
    return harness.ansible_doc(*args)


def test_every_module_renders_in_ansible_doc():
    assert {"access_review", "platform_info", "flywheel_job"} <= set(MODULES)
    docs = ansible_doc(*(f"dataflywheel.blueprint.{m}" for m in MODULES))
    assert sorted(docs) == [f"dataflywheel.blueprint.{m}" for m in MODULES]
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["doc"]["author"], name
        assert doc["examples"].strip(), name
        assert doc["return"], name
        for option, spec in doc["doc"].get("options", {}).items():
            assert spec.get("description"), f"{name}.{option}"


def test_kubernetes_modules_document_the_awx_credential_variables():
    docs = ansible_doc("dataflywheel.blueprint.platform_info", "dataflywheel.blueprint.access_review")
    for name, doc in docs.items():
        options = doc["doc"]["options"]
        text = json.dumps({k: options[k]["description"] for k in ("host", "api_key", "validate_certs", "ca_cert")})
        for variable in ("K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_VERIFY_SSL", "K8S_AUTH_SSL_CA_CERT"):
            assert variable in text, f"{name}: {variable}"


@pytest.mark.parametrize(
    ("kind", "name"),
    [("lookup", "role_argument_specs"), ("lookup", "k8s_api_server"), ("filter", "nemo_platform_gateway_resolver")],
)
def test_plugin_renders_in_ansible_doc(kind, name):
    doc = ansible_doc("-t", kind, f"dataflywheel.blueprint.{name}")
    options = doc[f"dataflywheel.blueprint.{name}"]["doc"]["options"]
    assert options["_terms" if kind == "lookup" else "_input"]["description"]


@pytest.mark.parametrize("role", ROLES)
def test_role_has_readme_argument_specs_and_documented_prefixed_defaults(role):
    base = ROOT / "roles" / role
    readme = (base / "README.md").read_text()
    assert readme.startswith("# ") and len(readme) > 300, f"{role}/README.md says too little"
    assert "## " in readme, f"{role}/README.md has no sections"
    specs = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert "main" in specs, f"{role}: no argument spec for the main entry point"
    tasks = {p.stem for p in (base / "tasks").glob("*.yml")}
    for entry, spec in specs.items():
        assert entry in tasks, f"{role}: argument spec for missing entry point {entry}"
        assert spec.get("short_description"), f"{role}:{entry}"
        for option, option_spec in (spec.get("options") or {}).items():
            assert option.startswith(f"{role}_"), f"{role}: option {option} lacks the role prefix"
            assert option_spec.get("description"), f"{role}: {option} undocumented"
            assert option_spec.get("type"), f"{role}: {option} has no type (surveys send strings)"
    documented = {o for spec in specs.values() for o in (spec.get("options") or {})}
    defaults_file = base / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) or {} if defaults_file.exists() else {}
    for name in defaults:
        assert name.startswith(f"{role}_"), f"{role}: default {name} lacks the role prefix"
        assert name in documented, f"{role}: default {name} is not in meta/argument_specs.yml"


def test_role_argument_specs_lookup_relaxes_only_what_defaults_provide(tmp_path):
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(
        yaml.safe_dump(
            {
                "argument_specs": {
                    "main": {
                        "options": {
                            "demo_url": {"type": "str", "required": True},
                            "demo_platform": {
                                "type": "str",
                                "default": "{{ flywheel_platform }}",
                                "choices": ["a", "b"],
                            },
                            "demo_token": {"type": "str", "required": True},
                            "demo_items": {
                                "type": "list",
                                "elements": "dict",
                                "options": {"name": {"type": "str", "required": True}},
                            },
                        }
                    },
                    "other": {"options": {"demo_x": {"type": "int"}}},
                }
            }
        )
    )
    (role / "defaults" / "main.yml").write_text(
        "demo_url: \"{{ lookup('env', 'DEMO_URL') }}\"\ndemo_items: []\ndemo_platform: \"{{ flywheel_platform }}\"\n"
    )
    (tmp_path / "roles" / "nospec" / "tasks").mkdir(parents=True)
    items = role_specs(str(tmp_path / "roles"))
    assert [(i["role"], i["entry_point"]) for i in items] == [("demo", "main")]
    options = items[0]["options"]
    assert "required" not in options["demo_url"]  # the role's defaults provide it
    assert options["demo_token"]["required"] is True  # nothing provides it
    assert "default" not in options["demo_platform"]  # a templated default is not a value to validate
    assert options["demo_items"]["options"]["name"]["required"] is True  # nested specs untouched
    assert [i["entry_point"] for i in role_specs(str(tmp_path / "roles"), entry_point="")] == ["main", "other"]
    assert role_specs(str(tmp_path / "roles"), exclude=["demo"]) == []
    assert relax({"a": {"required": True}}, {"a"}) == {"a": {}}
