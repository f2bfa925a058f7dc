# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Test-only callback: append one line per task start to the file named by DFW_TASK_MARKER_FILE.

The interruption tests watch that file to kill ansible-playbook at a chosen task boundary
(task N has started, or a moment into it), independent of the stdout callback's buffering.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: dfw_task_marker
type: aggregate
short_description: Write a line per task start to a file (tests only)
description:
  - Appends C(<index>\t<task name>) to the file named by E(DFW_TASK_MARKER_FILE) when a task starts.
requirements:
  - enabled in callbacks_enabled
"""

import os  # noqa: E402 - after the plugin documentation, as Ansible plugins are laid out

from ansible.plugins.callback import CallbackBase  # noqa: E402


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dfw_task_marker"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.path = os.environ.get("DFW_TASK_MARKER_FILE")
        self.count = 0

    def _mark(self, task, kind):
        if not self.path:
            return
        self.count += 1
        with open(self.path, "a") as handle:
            handle.write("%d\t%s\t%s\n" % (self.count, kind, task.get_name()))
            handle.flush()
            os.fsync(handle.fileno())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._mark(task, "task")

    def v2_playbook_on_handler_task_start(self, task):
        self._mark(task, "handler")
