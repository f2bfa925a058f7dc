"""What the GPU hosts stage left in the Debian 12 root filesystem (molecule scenario gpu_host).

Runs after converge and the idempotence run. Each check reads the real rootfs: dpkg, apt's policy,
dkms, the initramfs image and containerd's own parser.
"""

import os
import re
import subprocess
import sys
import tomllib

PINNED = "535.261.03-1"
DRIVER_PACKAGES = ["nvidia-kernel-dkms", "nvidia-smi", "libcuda1", "libnvidia-ml1", "nvidia-kernel-support"]


def test_driver_packages_pinned_to_the_version_not_the_newest(host):
    for name in DRIVER_PACKAGES:
        pkg = host.package(name)
        assert pkg.is_installed, name
        assert pkg.version == PINNED, (name, pkg.version)
    policy = host.check_output("apt-cache policy nvidia-smi")
    # bookworm-security has a newer 535 driver: only the pin keeps 535.261.03 as the candidate
    newer = [v for v in re.findall(r"^\s+(?:\*\*\* )?(535\.[0-9.]+-\S+) ", policy, re.M) if v != PINNED]
    assert newer, "expected a newer 535 version in the sources; the pin test proves nothing without it:\n" + policy
    assert re.search(r"Candidate: " + re.escape(PINNED), policy), policy
    pref = host.file("/etc/apt/preferences.d/dataflywheel-nvidia-driver.pref")
    assert "Package: src:nvidia-graphics-drivers" in pref.content_string
    assert "Pin: version 535.261.03-*" in pref.content_string


def test_no_held_packages(host):
    assert host.check_output("apt-mark showhold") == ""


def test_headers_for_the_rootfs_kernel(host, kernel):
    assert host.package("linux-headers-" + kernel).is_installed


def test_dkms_build_deferred_module_added(host, kernel):
    assert host.file("/etc/dkms/no-autoinstall").exists
    status = host.check_output("dkms status 2>/dev/null")
    assert re.search(r"^nvidia-current/535\.261\.03: added$", status, re.M), status
    assert not host.file(f"/lib/modules/{kernel}/updates/dkms/nvidia-current.ko").exists
    assert host.file("/usr/src/nvidia-current-535.261.03/dkms.conf").exists


def test_nouveau_blacklisted_in_the_initramfs(host, kernel):
    conf = host.file("/etc/modprobe.d/dataflywheel-blacklist-nouveau.conf")
    assert "blacklist nouveau" in conf.content_string
    assert "options nouveau modeset=0" in conf.content_string
    listing = host.check_output(f"lsinitramfs /boot/initrd.img-{kernel}")
    assert "etc/modprobe.d/dataflywheel-blacklist-nouveau.conf" in listing.split()


def dump(host):
    return tomllib.loads(host.check_output("containerd --config /etc/containerd/config.toml config dump"))


def test_containerd_accepts_the_config_with_the_nvidia_runtime(host):
    cri = dump(host)["plugins"]["io.containerd.grpc.v1.cri"]
    nvidia = cri["containerd"]["runtimes"]["nvidia"]
    assert nvidia["runtime_type"] == "io.containerd.runc.v2"
    assert nvidia["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert nvidia["options"]["SystemdCgroup"] is True


def test_containerd_existing_settings_and_imports_kept(host):
    config = dump(host)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["sandbox_image"] == "registry.example.test/pause:3.9"
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert cri["containerd"]["default_runtime_name"] == "runc"
    assert config["oom_score"] == -999
    # the drop-in is still imported: its value reaches the merged configuration
    assert config["plugins"]["io.containerd.gc.v1.scheduler"]["pause_threshold"] == 0.03
    text = host.file("/etc/containerd/config.toml").content_string
    assert text.startswith("# written by the cluster's node tooling: keep\n")
    assert 'imports = ["/etc/containerd/conf.d/*.toml"]' in text
    assert "SystemdCgroup = true  # kubelet uses the systemd cgroup driver" in text
    # CDI is not set: Debian 12's containerd is 1.6
    assert "enable_cdi" not in text


def gpu_hosts_play(*extra_vars):
    """ansible-playbook playbooks/gpu_hosts.yml against the scenario's inventory (the rootfs)."""
    args = [arg for var in extra_vars for arg in ("-e", var)]
    return subprocess.run(  # noqa: S603 - fixed arguments
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "playbooks", "gpu_hosts.yml"),
            *args,
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )


def test_missing_headers_stop_before_any_change(host, rootfs):
    """The host's kernel (what ansible_kernel reports in a chroot) has no Debian headers package."""
    before = host.check_output("find /etc /var/lib/dpkg/status -newer /etc/hostname -printf '%p %T@\\n' | sort")
    run = gpu_hosts_play("gpu_driver_kernel_release=''", "gpu_driver_version=535.309.01")
    out = run.stdout + run.stderr  # ansible-core 2.19 prints task errors on stderr
    assert run.returncode != 0, out
    assert "no package linux-headers-" + os.uname().release in out, out
    assert "No driver package was changed" in out
    assert re.search(r"changed=0\s", out), out
    after = host.check_output("find /etc /var/lib/dpkg/status -newer /etc/hostname -printf '%p %T@\\n' | sort")
    assert before == after


def test_version_switch_through_a_held_package_then_quiet(host):
    """Last in this file: it changes the rootfs. A hold left by earlier tooling (apt-mark hold) on one
    driver package does not stop a switch to bookworm-security's newer 535 driver; every driver
    package moves together, the pin and the deferred DKMS module follow, and a rerun changes nothing."""
    host.check_output("apt-mark hold nvidia-smi")
    switch = gpu_hosts_play("gpu_driver_version=535.309.01")
    out = switch.stdout + switch.stderr
    assert switch.returncode == 0, out[-4000:]
    for name in DRIVER_PACKAGES:
        version = host.package(name).version
        assert version.startswith("535.309.01-"), (name, version)
    pref = host.file("/etc/apt/preferences.d/dataflywheel-nvidia-driver.pref")
    assert "Pin: version 535.309.01-*" in pref.content_string
    status = host.check_output("dkms status 2>/dev/null")
    assert re.search(r"^nvidia-current/535\.309\.01: added$", status, re.M), status
    assert "535.261.03" not in status, status
    again = gpu_hosts_play("gpu_driver_version=535.309.01")
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert re.search(r"changed=0\s", again.stdout), again.stdout[-3000:]
