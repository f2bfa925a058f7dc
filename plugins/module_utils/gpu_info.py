# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""GPU facts from nvidia-smi output or, without a working driver, from PCI data.

Pure parsing, so it is unit-tested on recorded outputs without a GPU:

* ``parse_query_csv(text)``: ``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits``
* ``parse_header(text)``: driver and CUDA versions from the ``nvidia-smi -q`` header
* ``parse_list(text)``: MIG devices from ``nvidia-smi -L``
* ``parse_proc_version(text)``: ``/proc/driver/nvidia/version`` (loaded kernel module, open or proprietary)
* ``pci_gpus(devices)``: NVIDIA display/3D controllers from sysfs attributes
* ``smi_failed_reason(rc, text)``: why nvidia-smi could not answer (no driver, driver/library mismatch)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

QUERY_FIELDS = (
    "index",
    "name",
    "pci.bus_id",
    "uuid",
    "driver_version",
    "memory.total",
    "mig.mode.current",
    "mig.mode.pending",
)
NVIDIA_VENDOR = "0x10de"
# PCI class 0x0300 VGA controller, 0x0302 3D controller (data-centre GPUs)
GPU_CLASSES = ("0x0300", "0x0302")

_HEADER_RE = re.compile(r"^\s*(Driver Version|CUDA Version)\s*:\s*(\S+)\s*$", re.MULTILINE)
_GPU_LINE_RE = re.compile(r"^GPU (\d+): (.+?) \(UUID: (GPU-[0-9a-fA-F-]+)\)\s*$")
_MIG_LINE_RE = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[0-9a-fA-F-]+)\)\s*$")
_PROC_RE = re.compile(r"NVRM version: NVIDIA UNIX (.*?)\s{2,}(\d+\.\d+(?:\.\d+)?)\s")


class GpuInfoError(Exception):
    """Output that does not have the expected format."""


def _na(value):
    return None if value in ("[N/A]", "N/A", "[Not Supported]", "") else value


def _mig(value):
    value = _na(value)
    return None if value is None else value.lower() == "enabled"


def parse_query_csv(text):
    gpus = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(", ")]
        if len(cells) != len(QUERY_FIELDS):
            raise GpuInfoError(
                "nvidia-smi query line %d has %d fields, expected %d (%s): %r"
                % (lineno, len(cells), len(QUERY_FIELDS), ",".join(QUERY_FIELDS), line)
            )
        row = dict(zip(QUERY_FIELDS, cells))
        memory = _na(row["memory.total"])
        gpus.append(
            {
                "index": int(row["index"]),
                "name": row["name"],
                "pci_bus_id": row["pci.bus_id"].lower(),
                "uuid": row["uuid"],
                "driver_version": _na(row["driver_version"]),
                "memory_mib": int(float(memory)) if memory else None,
                "mig_mode": _mig(row["mig.mode.current"]),
                "mig_mode_pending": _mig(row["mig.mode.pending"]),
                "mig_devices": [],
            }
        )
    return gpus


def parse_header(text):
    found = dict(_HEADER_RE.findall(text))
    return {"driver_version": found.get("Driver Version"), "cuda_version": _na(found.get("CUDA Version", ""))}


def parse_list(text):
    """MIG devices per GPU index from ``nvidia-smi -L``."""
    migs = {}
    current = None
    for line in text.splitlines():
        gpu = _GPU_LINE_RE.match(line)
        if gpu:
            current = int(gpu.group(1))
            migs[current] = []
            continue
        mig = _MIG_LINE_RE.match(line)
        if mig and current is not None:
            migs[current].append({"profile": mig.group(1), "device": int(mig.group(2)), "uuid": mig.group(3)})
    return migs


def parse_proc_version(text):
    match = _PROC_RE.search(text or "")
    if not match:
        return None
    return {"version": match.group(2), "open": "Open Kernel Module" in match.group(1)}


def smi_failed_reason(rc, text):
    if rc == 0:
        return None
    if "couldn't communicate with the NVIDIA driver" in text:
        return "no_driver"
    if "Driver/library version mismatch" in text:
        return "version_mismatch"
    if "No devices were found" in text:
        return "no_devices"
    return "error"


def pci_gpus(devices):
    """``devices``: {bus_id: {"vendor": "0x10de", "device": "0x20b2", "class": "0x030200", "driver": "nvidia"}}."""
    gpus = []
    for bus_id in sorted(devices):
        attrs = devices[bus_id]
        if attrs.get("vendor", "").lower() != NVIDIA_VENDOR:
            continue
        if not attrs.get("class", "").lower().startswith(GPU_CLASSES):
            continue
        gpus.append(
            {
                "pci_bus_id": bus_id.lower(),
                "device_id": attrs.get("device", "").lower(),
                "kernel_driver": attrs.get("driver") or None,
            }
        )
    return gpus


def build_facts(smi=None, pci=None, proc_version=None, nouveau_loaded=False):
    """Combine what was read into the module's return value.

    ``smi``: None when nvidia-smi is absent, else {"rc", "query", "header", "list", "output"}.
    """
    loaded = parse_proc_version(proc_version)
    facts = {
        "source": "pci",
        "nvidia_smi": smi is not None,
        "nvidia_smi_error": None,
        "driver_loaded": loaded is not None,
        "driver_version": loaded["version"] if loaded else None,
        "kernel_module_open": loaded["open"] if loaded else None,
        "cuda_version": None,
        "nouveau_loaded": bool(nouveau_loaded),
        "gpus": [],
        "mig_enabled": False,
        "count": 0,
    }
    if smi is not None:
        reason = smi_failed_reason(smi["rc"], smi.get("output", ""))
        facts["nvidia_smi_error"] = reason
        if reason is None:
            gpus = parse_query_csv(smi["query"])
            migs = parse_list(smi.get("list", ""))
            for gpu in gpus:
                gpu["mig_devices"] = migs.get(gpu["index"], [])
            header = parse_header(smi.get("header", ""))
            facts.update(
                source="nvidia-smi",
                gpus=gpus,
                driver_version=header["driver_version"] or (gpus[0]["driver_version"] if gpus else None),
                cuda_version=header["cuda_version"],
                mig_enabled=any(g["mig_mode"] for g in gpus),
            )
    if facts["source"] == "pci":
        facts["gpus"] = pci_gpus(pci or {})
    facts["count"] = len(facts["gpus"])
    return facts
