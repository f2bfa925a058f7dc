#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_info
short_description: Report NVIDIA GPUs, driver and CUDA versions and MIG mode of a host
version_added: "0.1.0"
description:
  - Uses C(nvidia-smi) when it is installed and can talk to the driver. Then it reports GPUs (index, name,
    PCI bus id, UUID, memory), driver and CUDA versions, MIG mode (current and pending) and
    MIG devices.
  - Without NVIDIA software, or when C(nvidia-smi) fails (no driver loaded, driver/library
    mismatch after an upgrade without reboot), reports the NVIDIA display and 3D controllers
    from PCI data in C(/sys/bus/pci/devices) and the kernel module from
    C(/proc/driver/nvidia/version). Never fails because NVIDIA software is missing.
  - Read-only; supports check mode.
author:
  - dataflywheel.blueprint maintainers (@dataflywheel)
options:
  nvidia_smi_path:
    description: Path of C(nvidia-smi); empty looks it up in C(PATH).
    type: path
  sysfs_root:
    description: Root of the sysfs and procfs tree to read (for image builds in a chroot).
    type: path
    default: /
"""

EXAMPLES = r"""
- name: Read the GPUs of the host
  dataflywheel.blueprint.gpu_info:
  register: gpu

- name: Stop when no NVIDIA GPU is present
  ansible.builtin.assert:
    that: gpu.gpu_info.count > 0
    fail_msg: "{{ inventory_hostname }} has no NVIDIA GPU on the PCI bus"
"""

RETURN = r"""
gpu_info:
  description: GPU facts.
  returned: always
  type: dict
  contains:
    source:
      description: Where the GPU list comes from, C(nvidia-smi) or C(pci).
      type: str
      sample: nvidia-smi
    nvidia_smi:
      description: Whether C(nvidia-smi) is installed.
      type: bool
    nvidia_smi_error:
      description: >-
        Why C(nvidia-smi) did not answer (C(no_driver), C(version_mismatch), C(no_devices),
        C(error)) or null.
      type: str
    driver_loaded:
      description: Whether an NVIDIA kernel module is loaded (C(/proc/driver/nvidia/version)).
      type: bool
    driver_version:
      description: Loaded driver version.
      type: str
      sample: 535.261.03
    kernel_module_open:
      description: Whether the loaded module is the open kernel module; null when none is loaded.
      type: bool
    cuda_version:
      description: Highest CUDA version the driver supports (from C(nvidia-smi)).
      type: str
      sample: "12.2"
    nouveau_loaded:
      description: Whether the nouveau module is loaded.
      type: bool
    mig_enabled:
      description: Whether MIG mode is on for at least one GPU.
      type: bool
    count:
      description: Number of GPUs found.
      type: int
    gpus:
      description: >-
        One entry per GPU. From nvidia-smi C(index), C(name), C(pci_bus_id), C(uuid),
        C(driver_version), C(memory_mib), C(mig_mode), C(mig_mode_pending), C(mig_devices);
        from PCI data C(pci_bus_id), C(device_id), C(kernel_driver).
      type: list
      elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.gpu_info import (
    QUERY_FIELDS,
    GpuInfoError,
    build_facts,
)


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _pci_devices(root):
    base = os.path.join(root, "sys/bus/pci/devices")
    devices = {}
    if not os.path.isdir(base):
        return devices
    for bus_id in os.listdir(base):
        path = os.path.join(base, bus_id)
        driver = os.path.join(path, "driver")
        devices[bus_id] = {
            "vendor": _read(os.path.join(path, "vendor")) or "",
            "device": _read(os.path.join(path, "device")) or "",
            "class": _read(os.path.join(path, "class")) or "",
            "driver": os.path.basename(os.path.realpath(driver)) if os.path.islink(driver) else None,
        }
    return devices


def _smi(module, path):
    rc, out, err = module.run_command([path, "--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits"])
    result = {"rc": rc, "query": out, "output": out + err}
    if rc == 0:
        result["header"] = module.run_command([path, "-q", "-d", "COMPUTE"])[1]
        result["list"] = module.run_command([path, "-L"])[1]
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi_path=dict(type="path"),
            sysfs_root=dict(type="path", default="/"),
        ),
        supports_check_mode=True,
    )
    root = module.params["sysfs_root"]
    smi_path = module.params["nvidia_smi_path"] or module.get_bin_path("nvidia-smi")
    if module.params["nvidia_smi_path"] and not os.path.exists(smi_path):
        module.fail_json(
            msg="gpu_info: nvidia_smi_path %s does not exist; leave it empty to look it up in PATH" % smi_path
        )
    try:
        facts = build_facts(
            smi=_smi(module, smi_path) if smi_path else None,
            pci=_pci_devices(root),
            proc_version=_read(os.path.join(root, "proc/driver/nvidia/version")),
            nouveau_loaded=os.path.isdir(os.path.join(root, "sys/module/nouveau")),
        )
    except GpuInfoError as exc:
        module.fail_json(msg="gpu_info: unexpected nvidia-smi output: %s" % exc)
    module.exit_json(changed=False, gpu_info=facts)


if __name__ == "__main__":
    main()
