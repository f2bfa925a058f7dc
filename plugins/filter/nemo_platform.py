# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for the NeMo platform's endpoints, gateway routes and chart values
(module_utils/nemo_platform.py). Documented in nemo_platform_endpoints.yml,
nemo_platform_gateway_routes.yml, nemo_platform_gateway_resolver.yml and nemo_platform_chart_values.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import nemo_platform


def _wrap(name, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except nemo_platform.NemoPlatformError as err:
        raise AnsibleFilterError("%s: %s" % (name, err)) from None


def nemo_platform_endpoints(style, helm_mode, namespace, release, guardrails=False, nims=None):
    return _wrap(
        "nemo_platform_endpoints", nemo_platform.endpoints, style, helm_mode, namespace, release, guardrails, nims
    )


def nemo_platform_gateway_routes(endpoints):
    return nemo_platform.gateway_routes(endpoints)


def nemo_platform_gateway_resolver(override, services=None):
    return _wrap("nemo_platform_gateway_resolver", nemo_platform.gateway_resolver, override, services)


def nemo_platform_chart_values(subchart, namespace, release, postgresql_image, bitnami_helper_images, **kwargs):
    return _wrap(
        "nemo_platform_chart_values",
        nemo_platform.chart_values,
        subchart,
        namespace,
        release,
        postgresql_image,
        bitnami_helper_images,
        **kwargs,
    )


class FilterModule(object):
    def filters(self):
        return {
            "nemo_platform_endpoints": nemo_platform_endpoints,
            "nemo_platform_gateway_routes": nemo_platform_gateway_routes,
            "nemo_platform_gateway_resolver": nemo_platform_gateway_resolver,
            "nemo_platform_chart_values": nemo_platform_chart_values,
        }
