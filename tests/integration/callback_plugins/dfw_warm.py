# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Test-only callback: load the Jinja filter and test plugins once in ansible-playbook's main process, and share
the AnsiballZ module payloads between the playbook runs of one test process.

ansible-playbook forks one worker process per task. Each worker that templates a filter or a test and finds
the plugin loader's wrapper cache empty loads every plugin file again (ansible-core 2.19: about 9 ms of CPU
per task, a tenth of a cheap playbook run). Loading them in the main process when the playbook starts, before
the first fork, gives every worker the filled cache. Nothing else changes: the same plugins from the same
paths, and the loader still empties its cache when a role adds a plugin directory. (Loading this collection's
own filter files there as well made runs slower, not faster: measured, left out.) Enabled for every playbook
the tests run (tests/harness.py); `make demo` and users' runs do not load it.

AnsiballZ payloads: before a worker runs a Python module it builds the module's zip (every module_utils file it
imports, found by parsing them: 0.1-0.2 CPU-s per module) and keeps it in the run's own temporary directory, so
every ansible-playbook run builds each module it uses again. With DFW_ANSIBALLZ_CACHE=<dir> (tests/harness.py
sets it, one directory per test process) the run's cache directory is a link to a directory under <dir> named
by what the payloads are built from: this ansible-core, the collection search paths and the newest file of the
collections' plugins (a plugin edited between two runs gets a new directory). Ansible itself fills and reads
it, with its own lock, exactly as it does its per-run cache; the payloads a module receives are the same.
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
  - With E(DFW_ANSIBALLZ_CACHE) set, links the run's AnsiballZ payload cache to a directory shared by the runs
    that build payloads from the same sources.
requirements:
  - enabled in callbacks_enabled
"""

import hashlib  # noqa: E402 - after the plugin documentation, as Ansible plugins are laid out
import json  # noqa: E402
import os  # noqa: E402

import ansible  # noqa: E402
from ansible import constants as C  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402
from ansible.plugins.loader import filter_loader, test_loader  # noqa: E402
from ansible.utils.collection_loader import AnsibleCollectionConfig  # noqa: E402


def _newest_plugin(root):
    """The newest modification time of a file of this collection's plugins under a collection root (0 if none)."""
    newest = 0.0
    plugins = os.path.join(root, "ansible_collections", "dataflywheel", "blueprint", "plugins")
    for dirpath, _dirs, files in os.walk(plugins):
        for file_name in files:
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, file_name)).st_mtime)
            except OSError:
                continue
    return newest


def _sources():
    """What the payloads of this run are built from: ansible-core and the collection roots it searches, in order
    (the playbook's own collections/ first), with the newest file of this collection's plugins."""
    real = [os.path.realpath(p) for p in AnsibleCollectionConfig.collection_paths if os.path.isdir(p)]
    return {
        "ansible": [ansible.__version__, os.path.realpath(os.path.dirname(ansible.__file__))],
        "collections": [[p, _newest_plugin(p)] for p in real],
        "compression": C.DEFAULT_MODULE_COMPRESSION,
    }


def share_ansiballz_cache(shared):
    """Link this run's AnsiballZ cache (<local tmp>/ansiballz_cache, ansible-core 2.19) to its directory in `shared`."""
    key = hashlib.sha256(json.dumps(_sources(), sort_keys=True).encode()).hexdigest()[:20]
    target = os.path.join(shared, key)
    os.makedirs(target, exist_ok=True)
    link = os.path.join(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")
    if not os.path.lexists(link):
        os.symlink(target, link)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dfw_warm"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        # builtin plugins: the first lookup of any fills the loader's wrapper cache for all of them
        filter_loader.get("ansible.builtin.bool")
        test_loader.get("ansible.builtin.match")
        shared = os.environ.get("DFW_ANSIBALLZ_CACHE")
        if shared:
            share_ansiballz_cache(shared)
