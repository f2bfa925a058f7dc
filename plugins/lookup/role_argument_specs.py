# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: role_argument_specs
short_description: The argument specs of the roles in a roles directory, ready for validate_argument_spec
version_added: "0.1.0"
author:
  - dataflywheel.blueprint maintainers (@dataflywheel)
description:
  - Reads C(meta/argument_specs.yml) of every role under the given directories and returns one item per
    role and entry point, so a preflight can validate the inputs of every stage before any stage runs
    (a role validates its own arguments only when it starts, after earlier stages have changed things).
  - An option the role's C(defaults/main.yml) sets is not C(required) here and carries no C(default),
    because the role's defaults are not loaded while another role runs (a templated default such as
    C({{ flywheel_platform }}) would be validated as a literal string); the role itself still validates
    the option when it starts.
options:
  _terms:
    description: Directories holding roles (for example C({{ role_path }}/..)).
    required: true
    type: list
    elements: path
  entry_point:
    description: Entry point to return; empty returns every entry point.
    type: str
    default: main
  exclude:
    description: Role names to leave out.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Validate the inputs of every role of the collection
  ansible.builtin.validate_argument_spec:
    argument_spec: "{{ item.options }}"
  loop: "{{ query('dataflywheel.blueprint.role_argument_specs', role_path ~ '/..', exclude=['preflight']) }}"
  loop_control:
    label: "{{ item.role }}"
"""

RETURN = r"""
_raw:
  description: One item per role and entry point, sorted by role name.
  type: list
  elements: dict
  contains:
    role:
      description: Role name (its directory name).
      type: str
    entry_point:
      description: Entry point name.
      type: str
    options:
      description:
        - The entry point's options, with C(required) and C(default) dropped where the role defaults set the option.
      type: dict
"""

import os

import yaml

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def _load(path):
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def relax(options, defaulted):
    """Copy of options with required and default dropped for the options in defaulted (nested options untouched)."""
    out = {}
    for name, spec in (options or {}).items():
        copy = dict(spec or {})
        if name in defaulted:
            copy.pop("required", None)
            copy.pop("default", None)
        out[name] = copy
    return out


def role_specs(roles_dir, entry_point="main", exclude=()):
    items = []
    if not os.path.isdir(roles_dir):
        raise AnsibleLookupError("role_argument_specs: %s is not a directory" % roles_dir)
    for role in sorted(os.listdir(roles_dir)):
        spec_file = None
        for name in ("argument_specs.yml", "argument_specs.yaml"):
            candidate = os.path.join(roles_dir, role, "meta", name)
            if os.path.isfile(candidate):
                spec_file = candidate
                break
        if role in exclude or spec_file is None:
            continue
        defaults_file = os.path.join(roles_dir, role, "defaults", "main.yml")
        defaulted = set(_load(defaults_file)) if os.path.isfile(defaults_file) else set()
        for entry, spec in sorted((_load(spec_file).get("argument_specs") or {}).items()):
            if entry_point and entry != entry_point:
                continue
            items.append({"role": role, "entry_point": entry, "options": relax((spec or {}).get("options"), defaulted)})
    return items


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        out = []
        for term in terms:
            out.extend(role_specs(term, self.get_option("entry_point"), self.get_option("exclude")))
        return out
