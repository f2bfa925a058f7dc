# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for the Data Flywheel app config (module_utils/flywheel_config.py). Documented in
flywheel_app_config.yml, flywheel_nmp_config.yml and flywheel_config_expected.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_config


def flywheel_app_config(nmp, **kwargs):
    try:
        return flywheel_config.app_config(nmp, **kwargs)
    except flywheel_config.FlywheelConfigError as err:
        raise AnsibleFilterError("flywheel: %s" % err) from None


def flywheel_nmp_config(endpoints, gateway_url="", overrides=None, nmp_namespace="dfwbp"):
    try:
        return flywheel_config.derive_nmp(endpoints, gateway_url, overrides, nmp_namespace)
    except flywheel_config.FlywheelConfigError as err:
        raise AnsibleFilterError("flywheel: %s" % err) from None


def flywheel_config_expected(config):
    return flywheel_config.expected(config)


class FilterModule(object):
    def filters(self):
        return {
            "flywheel_app_config": flywheel_app_config,
            "flywheel_nmp_config": flywheel_nmp_config,
            "flywheel_config_expected": flywheel_config_expected,
        }
