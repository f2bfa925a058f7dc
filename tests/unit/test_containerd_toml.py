"""Unit tests for the format-preserving containerd config editor (config v3 and refusals).

Config v2 against the real containerd 1.6 binary is in tests/integration/test_containerd_config.py.
containerd 2.x (config v3) is not installable from Debian 12, so v3 is checked here only as TOML.
"""

import tomllib

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.containerd_toml import (
    TomlEditError,
    config_version,
    ensure,
    get,
    nvidia_settings,
)

V3 = """version = 3
imports = ["/etc/containerd/conf.d/*.toml"]

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
"""


def test_v3_runtime_goes_under_cri_v1_runtime():
    text, changed = ensure(V3, nvidia_settings(config_version(V3), "/usr/bin/nvidia-container-runtime", True))
    assert len(changed) == 3
    data = tomllib.loads(text)
    runtimes = data["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]
    assert runtimes["nvidia"]["options"] == {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True}
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert data["imports"] == ["/etc/containerd/conf.d/*.toml"]
    assert ensure(text, nvidia_settings(3, "/usr/bin/nvidia-container-runtime", True)) == (text, [])


def test_get_reads_quoted_table_names():
    table = ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc", "options")
    assert get(V3, table, "SystemdCgroup") == "true"
    assert get(V3, table, "BinaryName") is None


def test_multiline_array_value_is_replaced_whole():
    text = 'version = 2\nimports = [\n  "/a.toml",\n  "/b.toml",\n]\n'
    new, changed = ensure(text, [((), "imports", ["/a.toml"])])
    assert changed == ["imports"]
    assert tomllib.loads(new)["imports"] == ["/a.toml"]


@pytest.mark.parametrize("version", [1, 4])
def test_unsupported_versions_are_refused(version):
    with pytest.raises(TomlEditError, match="config migrate"):
        nvidia_settings(version, "/usr/bin/nvidia-container-runtime", True)


def test_missing_version_means_1():
    assert config_version('[plugins.cri]\n  sandbox_image = "pause"\n') == 1


def test_inline_table_is_refused_not_mangled():
    text = (
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
        '  runtimes = { runc = { runtime_type = "x" } }\n'
    )
    with pytest.raises(TomlEditError, match="inline table or dotted key"):
        ensure(text, nvidia_settings(2, "/usr/bin/nvidia-container-runtime", True))
