# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Test-only callback: record which role set which facts on which host, in the file named by DFW_FACTS_FILE.

The role-contract test reads it after a converged run to check every fact a role's README documents as
exported was set by that role. Names only: fact values (which may carry secrets) are never written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: dfw_facts
type: aggregate
short_description: Write the names of the facts each role sets to a file (tests only)
description:
  - Appends one JSON line C({"host", "role", "facts"}) per task that returned facts or registered its result to
    the file named by E(DFW_FACTS_FILE). Only names are written, never values.
requirements:
  - enabled in callbacks_enabled
"""

import json  # noqa: E402 - after the plugin documentation, as Ansible plugins are laid out
import os  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dfw_facts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.path = os.environ.get("DFW_FACTS_FILE")

    def v2_runner_on_ok(self, result):
        facts = set((result._result or {}).get("ansible_facts") or {})
        if result._task.register:
            facts.add(result._task.register)
        if not self.path or not facts:
            return
        role = result._task._role.get_name(include_role_fqcn=False) if result._task._role else ""
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"host": result._host.get_name(), "role": role, "facts": sorted(facts)}) + "\n")
