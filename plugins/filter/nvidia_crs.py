# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that build the NVIDIA custom resources the roles create (module_utils/nvidia_crs.py).

Documented in nim_operator_cr_shape.yml, nemo_platform_crs.yml, nemo_platform_nim_objects.yml,
nim_service.yml and gpu_operator_cluster_policy_spec.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import nvidia_crs


def _wrap(name, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except nvidia_crs.CRInputError as err:
        raise AnsibleFilterError("%s: %s" % (name, err)) from None


def nim_operator_cr_shape(version, variable="nim_operator_version"):
    return _wrap("nim_operator_cr_shape", nvidia_crs.operator_shape, version, variable)


def nim_operator_served_shape(crd_names):
    return nvidia_crs.served_shape(crd_names)


def nemo_platform_crs(params):
    return _wrap("nemo_platform_crs", nvidia_crs.nemo_crs, params)


def nemo_platform_nim_objects(
    nims,
    namespace,
    storage_size,
    storage_class="",
    ngc_secret="ngc-api",  # noqa: S107 - a Secret's name
    pull_secret="",
):
    return _wrap(
        "nemo_platform_nim_objects",
        nvidia_crs.nim_objects,
        nims,
        namespace,
        storage_size,
        storage_class=storage_class,
        ngc_secret=ngc_secret,
        pull_secret=pull_secret,
    )


def nim_service(name, namespace, **kwargs):
    env = kwargs.pop("env", None)
    if isinstance(env, dict):
        env = [{"name": k, "value": v} for k, v in env.items()]
    return _wrap("nim_service", nvidia_crs.nim_service, name, namespace, env=env, **kwargs)


def gpu_operator_cluster_policy_spec(manage_host_software, driver_version, kernel_module_type="auto"):
    return _wrap(
        "gpu_operator_cluster_policy_spec",
        nvidia_crs.cluster_policy_spec,
        manage_host_software,
        driver_version,
        kernel_module_type,
    )


class FilterModule(object):
    def filters(self):
        return {
            "nim_operator_cr_shape": nim_operator_cr_shape,
            "nim_operator_served_shape": nim_operator_served_shape,
            "nemo_platform_crs": nemo_platform_crs,
            "nemo_platform_nim_objects": nemo_platform_nim_objects,
            "nim_service": nim_service,
            "gpu_operator_cluster_policy_spec": gpu_operator_cluster_policy_spec,
        }
