# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The kubernetes Python client, imported when it is first used.

Importing it builds every API and model class (about 0.3 CPU-s per process). The REST modules reach
Kubernetes only when a Service is named (module_utils.rest_options), and the controller-side plugins that
share module_utils with them never do, so they should not pay for it in every module run and every
worker process.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib


class LazyModule(object):
    """Stands for the module `name`, imported on the first attribute read."""

    def __init__(self, name):
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr):
        module = self.__dict__.get("_lazy_module")
        if module is None:
            module = importlib.import_module(self.__dict__["_lazy_name"])
            self.__dict__["_lazy_module"] = module
        return getattr(module, attr)


client = LazyModule("kubernetes.client")
stream = LazyModule("kubernetes.stream")


class _NoApiException(Exception):
    """What api_exception() gives without the kubernetes library: no error is one."""


def api_exception():
    """kubernetes' ApiException, for an `except api_exception() as exc:` clause (evaluated only when an
    exception is raised, so the library is imported only then)."""
    try:
        return importlib.import_module("kubernetes.client.rest").ApiException
    except ImportError:
        return _NoApiException
