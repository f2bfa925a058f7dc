#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: containerd_nvidia_runtime
short_description: Add the NVIDIA runtime to a containerd config.toml, keeping everything else
version_added: "0.1.0"
description:
  - Edits containerd's C(config.toml) in place for the NVIDIA container runtime, for hosts where
    C(nvidia-ctk runtime configure) is not available (Debian ships no NVIDIA Container Toolkit).
  - Changes only the keys of the NVIDIA runtime (C(runtime_type), C(BinaryName), C(SystemdCgroup)) and,
    when asked, C(default_runtime_name) and C(enable_cdi). Comments, C(imports), the C(runc) runtime
    and its C(SystemdCgroup), and every other setting stay as written.
  - Config version 2 (containerd 1.x) and 3 (containerd 2.x). Version 1 files are refused with the
    migration command; inline tables that own the runtime tables are refused rather than rewritten.
  - When the file does not exist, starts from C(containerd config default) of the target's containerd.
  - Supports check mode and diff mode.
author:
  - dataflywheel.blueprint maintainers (@dataflywheel)
options:
  path:
    description: The containerd configuration file.
    type: path
    default: /etc/containerd/config.toml
  runtime_name:
    description: Name of the runtime entry.
    type: str
    default: nvidia
  runtime_path:
    description: The runtime binary (C(BinaryName)).
    type: path
    default: /usr/bin/nvidia-container-runtime
  systemd_cgroup:
    description:
      - C(SystemdCgroup) of the NVIDIA runtime. Unset copies the C(runc) runtime's setting, and is
        C(true) when C(runc) has none (the kubelet's systemd cgroup driver).
    type: bool
  set_default:
    description: Make the NVIDIA runtime containerd's default runtime.
    type: bool
    default: false
  enable_cdi:
    description: Set C(enable_cdi = true) in the CRI plugin (containerd 1.7 and later only).
    type: bool
    default: false
  containerd_path:
    description: The C(containerd) binary, for C(config default) when the file does not exist.
    type: path
  backup:
    description: Keep a timestamped copy of the previous file when it changes.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: NVIDIA runtime in containerd, keeping the cluster's settings
  dataflywheel.blueprint.containerd_nvidia_runtime:
    path: /etc/containerd/config.toml
  notify: Restart containerd

- name: NVIDIA as the default runtime, with CDI (containerd 1.7+)
  dataflywheel.blueprint.containerd_nvidia_runtime:
    set_default: true
    enable_cdi: true
"""

RETURN = r"""
changed_keys:
  description: Dotted keys the edit set or changed.
  returned: always
  type: list
  elements: str
  sample: ["plugins.io.containerd.grpc.v1.cri.containerd.runtimes.nvidia.runtime_type"]
config_version:
  description: The file's config version.
  returned: always
  type: int
  sample: 2
created:
  description: Whether the file was created from C(containerd config default).
  returned: always
  type: bool
systemd_cgroup:
  description: The C(SystemdCgroup) value the NVIDIA runtime has.
  returned: always
  type: bool
backup_file:
  description: The copy of the previous file.
  returned: when a backup was made
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.containerd_toml import (
    CRI_V2,
    CRI_V3_RUNTIME,
    TomlEditError,
    config_version,
    ensure,
    get,
    nvidia_settings,
)


def runc_systemd_cgroup(text, version):
    base = CRI_V2 if version == 2 else CRI_V3_RUNTIME
    raw = get(text, base + ("containerd", "runtimes", "runc", "options"), "SystemdCgroup")
    if raw is None:
        return None
    return raw.split("#")[0].strip() == "true"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/containerd/config.toml"),
            runtime_name=dict(type="str", default="nvidia"),
            runtime_path=dict(type="path", default="/usr/bin/nvidia-container-runtime"),
            systemd_cgroup=dict(type="bool"),
            set_default=dict(type="bool", default=False),
            enable_cdi=dict(type="bool", default=False),
            containerd_path=dict(type="path"),
            backup=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    created = not os.path.exists(path)
    if created:
        binary = module.params["containerd_path"] or module.get_bin_path("containerd")
        if not binary:
            module.fail_json(
                msg="containerd_nvidia_runtime: %s does not exist and containerd is not installed; "
                "install containerd first or set containerd_path" % path
            )
        rc, before, err = module.run_command([binary, "config", "default"])
        if rc != 0:
            module.fail_json(msg="containerd_nvidia_runtime: `containerd config default` failed: %s" % err.strip())
    else:
        with open(path) as handle:
            before = handle.read()

    try:
        version = config_version(before)
        systemd_cgroup = module.params["systemd_cgroup"]
        if systemd_cgroup is None:
            runc = runc_systemd_cgroup(before, version) if version in (2, 3) else None
            systemd_cgroup = True if runc is None else runc
        settings = nvidia_settings(
            version,
            module.params["runtime_path"],
            systemd_cgroup,
            set_default=module.params["set_default"],
            enable_cdi=module.params["enable_cdi"],
            runtime_name=module.params["runtime_name"],
        )
        after, changed_keys = ensure(before, settings)
    except TomlEditError as exc:
        module.fail_json(msg="containerd_nvidia_runtime: %s: %s" % (path, exc))

    changed = created or after != before
    result = dict(
        changed=changed,
        changed_keys=changed_keys,
        config_version=version,
        created=created,
        systemd_cgroup=systemd_cgroup,
    )
    if module._diff:
        result["diff"] = dict(before="" if created else before, after=after, before_header=path, after_header=path)
    if changed and not module.check_mode:
        if module.params["backup"] and not created:
            result["backup_file"] = module.backup_local(path)
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        tmp = os.path.join(directory, ".%s.dfw-tmp" % os.path.basename(path))
        with open(tmp, "w") as handle:
            handle.write(after)
        if created:
            os.chmod(tmp, 0o644)
        module.atomic_move(tmp, path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
