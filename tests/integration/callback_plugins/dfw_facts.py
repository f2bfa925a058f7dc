# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Test-only callback: record which role set which facts on which host, in the file named by DFW_FACTS_FILE.

tests/integration/test_site_converges.py reads it after real runs to check that every fact a role's README
documents as exported was set by that role. Names only: fact values (which may carry secrets) are never written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: dfw_facts
type: aggregate
short_description: Write the names of the facts each role sets to a file (tests only)
description:
  - Appends one JSON line C({"host", "role", "facts"}) per task that returned facts (C(set_fact), also per loop
    item) or registered a result that was not skipped, to the file named by E(DFW_FACTS_FILE), and at the end of
    the run one line C({"roles_ran"}) naming every role that had a task started. Only names are written, never
    values.
requirements:
  - enabled in callbacks_enabled
"""

import json  # noqa: E402 - after the plugin documentation, as Ansible plugins are laid out
import os  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402


def _role(task):
    return task._role.get_name(include_role_fqcn=False) if task._role else ""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dfw_facts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.path = os.environ.get("DFW_FACTS_FILE")
        self.roles_ran = set()

    def _write(self, record):
        if self.path:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        if task._role:
            self.roles_ran.add(_role(task))

    def v2_runner_on_ok(self, result):
        res = result._result or {}
        facts = set(res.get("ansible_facts") or {})
        # a set_fact in a loop returns its facts per item
        for item in res.get("results") or []:
            if isinstance(item, dict) and not item.get("skipped"):
                facts |= set(item.get("ansible_facts") or {})
        if result._task.register:
            facts.add(result._task.register)
        if facts:
            self._write({"host": result._host.get_name(), "role": _role(result._task), "facts": sorted(facts)})

    def v2_playbook_on_stats(self, stats):
        self._write({"roles_ran": sorted(self.roles_ran)})
