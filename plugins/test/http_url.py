# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Test plugin http_url (documented in http_url.yml): the modules' URL check, for role asserts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import url_problem


def http_url(value):
    return url_problem(value) is None


class TestModule(object):
    def tests(self):
        return {"http_url": http_url}
