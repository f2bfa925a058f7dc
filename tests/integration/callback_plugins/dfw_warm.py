# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Test-only callback: load the Jinja filter and test plugins once in ansible-playbook's main process.

ansible-playbook forks one worker process per task. Each worker that templates a filter or a test and finds
the plugin loader's wrapper cache empty loads every plugin file again (ansible-core 2.19: about 9 ms of CPU
per task, a tenth of a cheap playbook run). Loading them in the main process when the playbook starts, before
the first fork, gives every worker the filled cache. Nothing else changes: the same plugins from the same
paths, and the loader still empties its cache when a role adds a plugin directory. (Loading this collection's
own filter files there as well made runs slower, not faster: measured, left out.) Enabled for every playbook
the tests run (tests/harness.py); `make demo` and users' runs do not load it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: dfw_warm
type: aggregate
short_description: Load the Jinja plugins before the first worker fork (tests only)
description:
  - Looks up one builtin filter and one builtin test in the main process when the playbook starts, so
    the forked workers inherit the plugin loader's filled wrapper caches.
requirements:
  - enabled in callbacks_enabled
"""

from ansible.plugins.callback import CallbackBase  # noqa: E402 - after the plugin documentation
from ansible.plugins.loader import filter_loader, test_loader  # noqa: E402


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dfw_warm"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        # builtin plugins: the first lookup of any fills the loader's wrapper cache for all of them
        filter_loader.get("ansible.builtin.bool")
        test_loader.get("ansible.builtin.match")
