"""testinfra on the scenario's Debian 12 root filesystem, through testinfra's chroot backend."""

import os

import pytest
import testinfra


@pytest.fixture(scope="session")
def rootfs():
    return os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "rootfs")


@pytest.fixture(scope="session")
def host(rootfs):
    return testinfra.get_host(rootfs, connection="chroot")


@pytest.fixture(scope="session")
def kernel(host):
    releases = host.check_output("ls -1v /lib/modules").split()
    assert releases, "the rootfs has no kernel"
    return releases[-1]
