"""Fixtures every test can use: the one playbook runner and the one module runner (tests/harness.py).

    def test_rerun_is_quiet(ansible_playbook, vanilla_kubeconfig):
        run = ansible_playbook("playbooks/preflight.yml", {"x": 1}, env={"K8S_AUTH_KUBECONFIG": vanilla_kubeconfig})
        assert run.returncode == 0, run.tail()

    def test_check_mode_posts_nothing(ansible_module, sim):
        result = ansible_module("flywheel_job", {"api_url": sim.url, ...}, check=True)
        assert result["changed"] is True

At the end of the run pytest prints what Ansible cost per test file (playbook runs, forked and in-process
module calls, their CPU seconds), so a new test's cost shows up in every run.
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path

import pytest

from tests import harness


# ---------------------------------------------------------------- parallel runs (pytest-xdist)
#
# `make integration` runs the tests in two pytest-xdist workers (TEST_WORKERS).
# Each worker has its own local clusters, so tests that snapshot cluster-wide state, pause the API server or
# install cluster-wide releases never share a cluster with another worker's tests. The unit of work is a test
# file (its module-scoped scene is built once); the files that use the openshift, pcai or nutanix clusters form
# one unit ("profiles") and those that use the search engine another ("search-engine"), so each of those is
# started by one worker only. Units start heaviest first (WEIGHTS) so that the workers finish together.

# Seconds a unit took on its own (2 cores); only the order matters. A file not listed counts as DEFAULT_WEIGHT.
WEIGHTS = {
    "profiles": 600,
    "search-engine": 500,
    "tests/integration/test_interruption.py": 480,
    "tests/integration/test_cluster_stack.py": 420,
    "tests/integration/test_faults.py": 420,
    "tests/integration/test_awx_rbac.py": 300,
    "tests/integration/test_flywheel_promote_role.py": 240,
    "tests/integration/test_bad_inputs.py": 150,
    "tests/integration/test_tls_private_ca.py": 150,
    "tests/integration/test_flywheel_run_role.py": 150,
    "tests/integration/test_diagnose.py": 90,
}
DEFAULT_WEIGHT = 30
_PROFILE_NAME = re.compile(r"""["'](openshift|pcai|nutanix)["']""")
_OPENSHIFT_FIXTURE = re.compile(r"def test_\w+\([^)]*\bopenshift\b")


# A test of another file whose parameter id names one of those profiles (a scenario of a data file, e.g.
# test_interruption.py's remediate-openshift) joins "profiles" too, so no other worker starts that cluster.
_PROFILE_PARAM = re.compile(r"\[(?:[^\]]*-)?(openshift|pcai|nutanix)(?:-[^\]]*)?\]$")


@functools.lru_cache(maxsize=None)
def work_unit(test_file: str) -> str:
    """The unit of work of a test file (its path relative to the repository)."""
    source = (harness.ROOT / test_file).read_text()
    if "search_engine" in source:
        return "search-engine"
    uses_profiles = "kubeconfig_for" in source and _PROFILE_NAME.search(source)
    if uses_profiles or _OPENSHIFT_FIXTURE.search(source):
        return "profiles"
    return test_file


def unit_of_test(nodeid: str) -> str:
    """The unit of work of one test: its file's, or "profiles" when its parameter id names such a profile."""
    unit = work_unit(nodeid.split("::", 1)[0])
    if unit not in ("profiles", "search-engine") and _PROFILE_PARAM.search(nodeid):
        return "profiles"
    return unit


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only with pytest-xdist

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_test(nodeid)

    config.option.loadscopereorder = False  # keep the order of pytest_collection_modifyitems
    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, heavy units first (a stable sort: a file's tests keep their order)."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: -WEIGHTS.get(unit_of_test(item.nodeid), DEFAULT_WEIGHT))


def pytest_configure(config):
    """A pytest-xdist worker's own local clusters: DFW_CLUSTERS_DIR=<dir>-gw0, ... Set here, before any test
    module imports tests/sim/cluster.py."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not os.environ.get("TEST_KUBECONFIG"):
        cache = os.environ.get("DFW_CACHE_DIR") or Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "dataflywheel-blueprint"
        )
        base = os.environ.get("DFW_CLUSTERS_DIR") or str(Path(cache) / "clusters")
        os.environ["DFW_CLUSTERS_DIR"] = f"{base}-{worker}"


@pytest.fixture(scope="session")
def ansible_playbook():
    """harness.run_playbook: `ansible_playbook(playbook, extra_vars, inventory=..., env=..., json_output=...,
    check=..., diff=..., verbosity=..., args=[...])` -> PlaybookRun (returncode, stdout, stderr, recap(host),
    json, tail())."""
    return harness.run_playbook


@pytest.fixture(scope="session")
def ansible_module():
    """harness.run_module: `ansible_module(name, args, check=..., diff=..., env=..., via=None|"ansible")` ->
    the module's result dict, in-process unless via="ansible" or DFW_MODULE_RUNNER=ansible."""
    return harness.run_module


# ---------------------------------------------------------------- the cost report


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Wall and CPU time of each test file (all phases; a module-scoped scene is in its first test's setup and
    its last test's teardown). CPU counts this process and the processes it waited for (ansible, helm, ...),
    not the local clusters' daemons."""
    started, cpu = time.monotonic(), harness.self_and_children_cpu()
    yield
    harness.COSTS[item.nodeid.split("::", 1)[0]].add(
        {"wall": time.monotonic() - started, "cpu": harness.self_and_children_cpu() - cpu}
    )


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: hand the counts to the controller
        workeroutput["dfw_ansible_costs"] = {f: vars(c) for f, c in harness.COSTS.items()}


@pytest.hookimpl(optionalhook=True)  # pytest-xdist
def pytest_testnodedown(node, error):
    for name, cost in (getattr(node, "workeroutput", {}) or {}).get("dfw_ansible_costs", {}).items():
        harness.COSTS[name].add(cost)


def pytest_terminal_summary(terminalreporter):
    def ran_ansible(cost):
        return cost.playbooks or cost.forked or cost.inprocess

    if not any(ran_ansible(cost) for cost in harness.COSTS.values()):
        return
    # files that ran Ansible, and any other that took 5 s or more
    costs = {name: cost for name, cost in harness.COSTS.items() if ran_ansible(cost) or cost.wall >= 5}
    write = terminalreporter.write_line
    terminalreporter.section("Ansible cost per test file (tests/harness.py)")
    columns = ("playbooks", "cpu-s", "forked", "cpu-s", "in-proc", "cpu-s", "wall-s", "all-cpu")
    write(" ".join(f"{c:>{w}}" for c, w in zip(columns, (9, 7, 6, 7, 7, 6, 7, 7))) + "  file")
    total = harness.Cost()
    for name, cost in sorted(costs.items(), key=lambda kv: -(kv[1].playbook_cpu + kv[1].forked_cpu)):
        total.add(vars(cost))
        write(_cost_line(cost, name))
    write(_cost_line(total, "total"))
    write("all-cpu: CPU-s of the test process and every process it waited for (ansible, helm), not the clusters")


def _cost_line(cost: harness.Cost, name: str) -> str:
    return (
        f"{cost.playbooks:9d} {cost.playbook_cpu:7.1f} {cost.forked:6d} {cost.forked_cpu:7.1f} "
        f"{cost.inprocess:7d} {cost.inprocess_cpu:6.1f} {cost.wall:7.1f} {cost.cpu:7.1f}  {name}"
    )
