# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Benchmark-only callback: per task, the wall time, the CPU time it cost and the modules it started.

Writes one JSON line per task to the file named by DFW_TASK_CPU_FILE (tests/bench/cluster_rerun.py reads
it). CPU time is that of the controller process itself plus its finished children (the task's worker, the
module it ran and what that started, e.g. helm): workers are reaped when the next task is queued, so a
task's CPU is counted up to the start of the next one. Names and counts only, never results.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: dfw_task_cpu
type: aggregate
short_description: Per task wall time, CPU time and module starts, to a file (benchmarks only)
description:
  - Appends one JSON line C({"task", "role", "action", "wall", "cpu", "modules"}) per task to the file named by
    E(DFW_TASK_CPU_FILE).
requirements:
  - enabled in callbacks_enabled
"""

import json  # noqa: E402 - after the plugin documentation, as Ansible plugins are laid out
import os  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402

# actions that run in the controller alone: no module process is started for them
CONTROLLER_ONLY = {
    "set_fact", "assert", "debug", "fail", "meta", "include_role", "include_tasks", "import_role",
    "import_tasks", "include_vars", "validate_argument_spec", "set_stats", "add_host", "group_by",
}  # fmt: skip


def _cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dfw_task_cpu"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.path = os.environ.get("DFW_TASK_CPU_FILE")
        self.current = None

    def _close(self):
        if self.current is None or not self.path:
            return
        task = self.current
        self.current = None
        with open(self.path, "a") as handle:
            handle.write(
                json.dumps(
                    {
                        "task": task["task"],
                        "role": task["role"],
                        "action": task["action"],
                        "wall": time.monotonic() - task["wall"],
                        "cpu": _cpu() - task["cpu"],
                        "modules": task["modules"],
                    }
                )
                + "\n"
            )

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        role = task._role.get_name(include_role_fqcn=False) if task._role else ""
        self.current = {
            "task": task.get_name(),
            "role": role or "(play)",
            "action": task.action,
            "wall": time.monotonic(),
            "cpu": _cpu(),
            "modules": 0,
        }

    def _ran(self, result):
        if self.current is None or result._task.action.rsplit(".", 1)[-1] in CONTROLLER_ONLY:
            return
        self.current["modules"] += 1

    def v2_runner_on_ok(self, result):
        if "results" not in result._result:
            self._ran(result)

    v2_runner_on_failed = v2_runner_on_ok

    def v2_runner_item_on_ok(self, result):
        self._ran(result)

    v2_runner_item_on_failed = v2_runner_item_on_ok
    v2_runner_retry = v2_runner_item_on_ok

    def v2_playbook_on_stats(self, stats):
        self._close()
        if self.path:
            own = resource.getrusage(resource.RUSAGE_SELF)
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"controller_cpu": own.ru_utime + own.ru_stime}) + "\n")
