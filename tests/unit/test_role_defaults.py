"""What `ansible-doc -t role` shows as an option's default is what the role really uses.

For every role and every entry point of meta/argument_specs.yml: an option that defaults/main.yml sets
documents that very value as its `default`, an option defaults/main.yml does not set documents no
default, and no option is both `required` and defaulted (ansible-core refuses that pair, and a role
default makes `required` meaningless). Roles and entry points are discovered, not listed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from tests import harness

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())


def load(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def role_defaults(role: str) -> dict:
    return load(ROOT / "roles" / role / "defaults" / "main.yml")


def entry_points(role: str) -> dict:
    return load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]


def templated(value) -> bool:
    return "{{" in json.dumps(value)


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_defaults_equal_role_defaults(role):
    defaults = role_defaults(role)
    problems = []
    for entry, spec in entry_points(role).items():
        for option, option_spec in (spec.get("options") or {}).items():
            where = f"{role}:{entry} {option}"
            if option in defaults:
                if "default" not in option_spec:
                    problems.append(
                        f"{where}: no default in argument_specs, defaults/main.yml sets {defaults[option]!r}"
                    )
                elif option_spec["default"] != defaults[option]:
                    spec_default, role_default = option_spec["default"], defaults[option]
                    problems.append(f"{where}: argument_specs {spec_default!r}, defaults/main.yml {role_default!r}")
                if option_spec.get("required"):
                    problems.append(f"{where}: required although defaults/main.yml sets it")
            elif "default" in option_spec:
                problems.append(
                    f"{where}: argument_specs default {option_spec['default']!r} is set nowhere in the role"
                )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_pass_their_own_argument_spec(role):
    """The literal defaults satisfy the spec's types and choices (templated ones are judged when the role runs)."""
    defaults = role_defaults(role)
    for entry, spec in entry_points(role).items():
        options = spec.get("options") or {}
        values = {o: v for o, v in defaults.items() if o in options and not templated(v)}
        checked = {o: s for o, s in options.items() if o in values}
        result = ArgumentSpecValidator(checked).validate(values)
        assert not result.error_messages, f"{role}:{entry}: {result.error_messages}"


def test_ansible_doc_shows_the_role_defaults():
    """One ansible-doc call over every role: what a user reads is the defaults/main.yml value."""
    docs = harness.ansible_doc(*(f"dataflywheel.blueprint.{r}" for r in ROLES), plugin_type="role")
    assert sorted(docs) == [f"dataflywheel.blueprint.{r}" for r in ROLES]
    wrong = []
    for role in ROLES:
        defaults = role_defaults(role)
        for entry, spec in docs[f"dataflywheel.blueprint.{role}"]["entry_points"].items():
            for option, option_doc in (spec.get("options") or {}).items():
                if option in defaults and option_doc.get("default") != defaults[option]:
                    wrong.append(f"{role}:{entry} {option}: ansible-doc shows {option_doc.get('default')!r}")
    assert not wrong, "\n".join(wrong)
