"""The containerd config the NVIDIA runtime edit produces, checked by the real containerd binary.

Uses Debian's containerd package (1.6, config version 2; `make gpu-host-deps` installs it):
``containerd --config <file> config dump`` loads the file (and its imports) the way the daemon
does and prints the merged result, which is parsed and compared here.
"""

import shutil
import subprocess
import tomllib

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.containerd_toml import (
    config_version,
    ensure,
    nvidia_settings,
)
from tests.harness import run_module

CONTAINERD = shutil.which("containerd")
pytestmark = pytest.mark.skipif(CONTAINERD is None, reason="containerd is not installed: run make gpu-host-deps")

CRI = 'plugins."io.containerd.grpc.v1.cri"'
EXISTING = f"""# managed by the platform team: keep these
version = 2
imports = ["/etc/containerd/conf.d/*.toml"]
oom_score = -999

[{CRI}]
  sandbox_image = "registry.example.test/pause:3.9"
  [{CRI}.registry]
    config_path = "/etc/containerd/certs.d"

[{CRI}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{CRI}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{CRI}.containerd.runtimes.runc.options]
  SystemdCgroup = true  # cgroup v2 hosts need this
"""
DROPIN = """version = 2
[plugins."io.containerd.gc.v1.scheduler"]
  pause_threshold = 0.03
"""


def dump(path):
    out = subprocess.run(
        [CONTAINERD, "--config", str(path), "config", "dump"], capture_output=True, text=True, check=True
    )
    return tomllib.loads(out.stdout)


def cri(config):
    return config["plugins"]["io.containerd.grpc.v1.cri"]


@pytest.fixture
def etc(tmp_path):
    (tmp_path / "conf.d").mkdir()
    return tmp_path


def write(etc, text, dropin=True):
    config = etc / "config.toml"
    config.write_text(text.replace("/etc/containerd/conf.d", str(etc / "conf.d")))
    if dropin:
        (etc / "conf.d" / "10-gvisor.toml").write_text(DROPIN)
    return config


def test_nvidia_runtime_added_and_existing_settings_kept(etc):
    config = write(etc, EXISTING)
    before = config.read_text()
    text, changed = ensure(before, nvidia_settings(2, "/usr/bin/nvidia-container-runtime", True, set_default=True))
    assert "plugins.io.containerd.grpc.v1.cri.containerd.runtimes.nvidia.runtime_type" in changed
    config.write_text(text)
    merged = dump(config)
    runtimes = cri(merged)["containerd"]["runtimes"]
    assert runtimes["nvidia"]["runtime_type"] == "io.containerd.runc.v2"
    assert runtimes["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert runtimes["nvidia"]["options"]["SystemdCgroup"] is True
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert cri(merged)["containerd"]["default_runtime_name"] == "nvidia"
    assert cri(merged)["sandbox_image"] == "registry.example.test/pause:3.9"
    assert cri(merged)["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert merged["oom_score"] == -999
    assert str(etc / "conf.d" / "10-gvisor.toml") in merged["imports"]
    # the imported drop-in is still read, i.e. the import line is intact
    assert merged["plugins"]["io.containerd.gc.v1.scheduler"]["pause_threshold"] == 0.03
    # only lines were added or one value changed; comments and the rest stay as written
    assert "# managed by the platform team: keep these" in text
    assert "SystemdCgroup = true  # cgroup v2 hosts need this" in text
    kept = [line for line in before.splitlines() if "default_runtime_name" not in line]
    remaining = iter(text.splitlines())
    assert all(line in remaining for line in kept), "an existing line was lost or reordered"
    assert '  default_runtime_name = "nvidia"' in text.splitlines()


def test_second_run_changes_nothing(etc):
    config = write(etc, EXISTING)
    # enable_cdi is left out: containerd 1.6 has no CDI support (1.7+), its dump drops the key
    settings = nvidia_settings(2, "/usr/bin/nvidia-container-runtime", True, set_default=True)
    once, first_changes = ensure(config.read_text(), settings)
    assert len(first_changes) == 4
    twice, changed = ensure(once, settings)
    assert changed == []
    assert twice == once
    config.write_text(twice)
    assert cri(dump(config))["containerd"]["default_runtime_name"] == "nvidia"


def test_a_dropin_would_replace_the_whole_cri_section_on_containerd_1_6(etc):
    """Why the runtime is edited into the main file: containerd 1.x replaces whole plugin sections from imports."""
    config = write(etc, EXISTING)
    (etc / "conf.d" / "99-nvidia.toml").write_text(
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'
        '  runtime_type = "io.containerd.runc.v2"\n'
    )
    merged = dump(config)
    assert cri(merged)["sandbox_image"] != "registry.example.test/pause:3.9"
    assert "runc" not in cri(merged)["containerd"]["runtimes"] or not cri(merged)["containerd"]["runtimes"]["runc"].get(
        "options", {}
    ).get("SystemdCgroup")


def test_fresh_default_config_gets_systemd_cgroup(etc):
    default = subprocess.run([CONTAINERD, "config", "default"], capture_output=True, text=True, check=True).stdout
    assert config_version(default) == 2
    settings = nvidia_settings(2, "/usr/bin/nvidia-container-runtime", True)
    runc_options = ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "runc", "options")
    settings.append((runc_options, "SystemdCgroup", True))
    text, changed = ensure(default, settings)
    assert "plugins.io.containerd.grpc.v1.cri.containerd.runtimes.runc.options.SystemdCgroup" in changed
    config = write(etc, text, dropin=False)
    runtimes = cri(dump(config))["containerd"]["runtimes"]
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert runtimes["nvidia"]["options"]["SystemdCgroup"] is True


def module(args, check=False, diff=False):
    return run_module("containerd_nvidia_runtime", args, check=check, diff=diff)


def test_module_check_mode_diff_then_apply_then_no_change(etc):
    config = write(etc, EXISTING)
    before = config.read_text()
    preview = module({"path": str(config)}, check=True, diff=True)
    assert preview["changed"] is True, preview
    assert config.read_text() == before, "check mode wrote the file"
    assert "runtimes.nvidia" in preview["diff"]["after"]
    assert preview["diff"]["before"] == before
    # SystemdCgroup copied from runc (true in the cluster's file)
    assert preview["systemd_cgroup"] is True

    applied = module({"path": str(config)})
    assert applied["changed"] is True, applied
    merged = dump(config)
    assert cri(merged)["containerd"]["runtimes"]["nvidia"]["options"]["SystemdCgroup"] is True
    assert cri(merged)["containerd"]["default_runtime_name"] == "runc"
    assert merged["plugins"]["io.containerd.gc.v1.scheduler"]["pause_threshold"] == 0.03

    again = module({"path": str(config)})
    assert again["changed"] is False, again
    assert again["changed_keys"] == []


def test_module_creates_the_file_from_config_default(etc):
    config = etc / "new" / "config.toml"
    result = module({"path": str(config)})
    assert result["changed"] is True and result["created"] is True, result
    runtimes = cri(dump(config))["containerd"]["runtimes"]
    # containerd 1.6's default has SystemdCgroup = false on runc; the nvidia runtime follows it
    assert runtimes["runc"]["options"]["SystemdCgroup"] is False
    assert runtimes["nvidia"]["options"]["SystemdCgroup"] is False
    assert module({"path": str(config)})["changed"] is False


def test_module_refuses_a_version_1_config(etc):
    config = etc / "config.toml"
    config.write_text('[plugins.cri]\n  sandbox_image = "x"\n')
    result = module({"path": str(config)})
    assert result.get("failed") is True, result
    assert "containerd config migrate" in result["msg"]
    assert config.read_text() == '[plugins.cri]\n  sandbox_image = "x"\n'
