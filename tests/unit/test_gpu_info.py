"""Unit tests for gpu_info parsing.

The files in tests/unit/data/gpu_info/ follow the output formats of nvidia-smi
(``--query-gpu ... --format=csv,noheader,nounits``, the ``-q`` header, ``-L``), of
/proc/driver/nvidia/version and of sysfs PCI attributes. There is no GPU where this is
developed: they were written in those formats, not captured from a machine (values are
illustrative).
"""

import json
from pathlib import Path

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.gpu_info import (
    GpuInfoError,
    build_facts,
    parse_list,
    parse_proc_version,
    parse_query_csv,
    pci_gpus,
    smi_failed_reason,
)

DATA = Path(__file__).parent / "data" / "gpu_info"


def text(name):
    return (DATA / name).read_text()


def smi(prefix, rc=0):
    return {
        "rc": rc,
        "query": text(prefix + ".csv"),
        "output": text(prefix + ".csv"),
        "header": text(prefix + "_q.txt"),
        "list": text(prefix + "_L.txt") if (DATA / (prefix + "_L.txt")).exists() else "",
    }


def test_eight_gpus_from_nvidia_smi():
    facts = build_facts(
        smi=smi("dgx_a100_8gpu"), pci={}, proc_version=text("proc_driver_nvidia_version.txt"), nouveau_loaded=False
    )
    assert facts["source"] == "nvidia-smi"
    assert facts["count"] == 8
    assert facts["driver_version"] == "535.261.03"
    assert facts["cuda_version"] == "12.2"
    assert facts["mig_enabled"] is False
    assert facts["kernel_module_open"] is False
    assert [g["index"] for g in facts["gpus"]] == list(range(8))
    assert facts["gpus"][3]["pci_bus_id"] == "00000000:4e:00.0"
    assert facts["gpus"][0]["memory_mib"] == 81920
    assert facts["gpus"][7]["uuid"].startswith("GPU-8f3c7d35")


def test_mig_on_one_gpu_pending_on_other():
    facts = build_facts(smi=smi("mig_h100_2gpu"), proc_version=text("proc_driver_nvidia_version_open.txt"))
    assert facts["mig_enabled"] is True
    assert facts["cuda_version"] == "12.4"
    assert facts["kernel_module_open"] is True
    gpu0, gpu1 = facts["gpus"]
    assert gpu0["mig_mode"] is True
    assert [m["profile"] for m in gpu0["mig_devices"]] == ["3g.40gb", "2g.20gb", "1g.10gb"]
    assert gpu0["mig_devices"][2]["uuid"].startswith("MIG-2e913c8a")
    # MIG enabled but not yet active (needs a GPU reset): current off, pending on
    assert gpu1["mig_mode"] is False
    assert gpu1["mig_mode_pending"] is True
    assert gpu1["mig_devices"] == []


def test_gpu_without_mig_support_reports_none():
    (gpu,) = parse_query_csv(text("t4_no_mig.csv"))
    assert gpu["name"] == "Tesla T4"
    assert gpu["mig_mode"] is None
    assert gpu["mig_mode_pending"] is None


def test_no_driver_falls_back_to_pci():
    no_driver = {"rc": 9, "query": "", "output": text("no_driver_smi.txt")}
    pci = json.loads(text("pci_no_driver.json"))
    facts = build_facts(smi=no_driver, pci=pci, proc_version=None, nouveau_loaded=True)
    assert facts["source"] == "pci"
    assert facts["nvidia_smi"] is True
    assert facts["nvidia_smi_error"] == "no_driver"
    assert facts["driver_loaded"] is False
    assert facts["driver_version"] is None
    assert facts["nouveau_loaded"] is True
    # the HDMI audio function (class 0x0403/0x0680) and other vendors' VGA are not GPUs
    assert [g["pci_bus_id"] for g in facts["gpus"]] == ["0000:17:00.0", "0000:65:00.0"]
    assert facts["gpus"][1]["kernel_driver"] == "nouveau"
    assert facts["count"] == 2


def test_host_without_any_nvidia_software_or_gpu():
    facts = build_facts(smi=None, pci={"0000:00:00.0": {"vendor": "0x8086", "class": "0x060000"}})
    assert facts == {
        "source": "pci",
        "nvidia_smi": False,
        "nvidia_smi_error": None,
        "driver_loaded": False,
        "driver_version": None,
        "kernel_module_open": None,
        "cuda_version": None,
        "nouveau_loaded": False,
        "gpus": [],
        "mig_enabled": False,
        "count": 0,
    }


@pytest.mark.parametrize(
    ("rc", "output", "reason"),
    [
        (0, "", None),
        (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "no_driver"),
        (18, "Failed to initialize NVML: Driver/library version mismatch", "version_mismatch"),
        (6, "No devices were found", "no_devices"),
        (255, "Segmentation fault", "error"),
    ],
)
def test_failure_reasons(rc, output, reason):
    assert smi_failed_reason(rc, output) == reason


def test_version_mismatch_uses_loaded_module_version():
    facts = build_facts(
        smi={"rc": 18, "query": "", "output": "Failed to initialize NVML: Driver/library version mismatch"},
        pci=json.loads(text("pci_no_driver.json")),
        proc_version=text("proc_driver_nvidia_version.txt"),
    )
    assert facts["nvidia_smi_error"] == "version_mismatch"
    assert facts["driver_loaded"] is True
    assert facts["driver_version"] == "535.261.03"
    assert facts["source"] == "pci"


def test_malformed_query_line_is_an_error():
    with pytest.raises(GpuInfoError, match="line 1 has 3 fields"):
        parse_query_csv("0, Tesla T4, 00000000:00:1E.0\n")


def test_proc_version_and_list_edge_cases():
    assert parse_proc_version("") is None
    assert parse_proc_version(text("proc_driver_nvidia_version_open.txt")) == {"version": "550.127.08", "open": True}
    assert parse_list("GPU 0: Tesla T4 (UUID: GPU-bc6fa068-4f7d-4b1a-96e8-7bac2f4a6eee)\n") == {0: []}
    assert pci_gpus({}) == []
