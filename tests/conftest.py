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

import os
from pathlib import Path

import pytest

from tests import harness


def pytest_configure(config):
    """Under pytest-xdist each worker has its own local clusters (DFW_CLUSTERS_DIR=<dir>-gw0, ...): tests that
    snapshot cluster-wide state, pause the API server or install cluster-wide releases never share a cluster
    with another worker's tests. Set here, before any test module imports tests/sim/cluster.py."""
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


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: hand the counts to the controller
        workeroutput["dfw_ansible_costs"] = {f: vars(c) for f, c in harness.COSTS.items()}


@pytest.hookimpl(optionalhook=True)  # pytest-xdist
def pytest_testnodedown(node, error):
    for name, cost in (getattr(node, "workeroutput", {}) or {}).get("dfw_ansible_costs", {}).items():
        harness.COSTS[name].add(cost)


def pytest_terminal_summary(terminalreporter):
    costs = {name: cost for name, cost in harness.COSTS.items() if any(vars(cost).values())}
    if not costs:
        return
    write = terminalreporter.write_line
    terminalreporter.section("Ansible cost per test file (tests/harness.py)")
    write(f"{'playbooks':>9} {'cpu-s':>7} {'forked':>6} {'cpu-s':>7} {'in-proc':>7} {'cpu-s':>6}  file")
    total = harness.Cost()
    for name, cost in sorted(costs.items(), key=lambda kv: -(kv[1].playbook_cpu + kv[1].forked_cpu)):
        total.add(vars(cost))
        write(
            f"{cost.playbooks:9d} {cost.playbook_cpu:7.1f} {cost.forked:6d} {cost.forked_cpu:7.1f} "
            f"{cost.inprocess:7d} {cost.inprocess_cpu:6.1f}  {name}"
        )
    write(
        f"{total.playbooks:9d} {total.playbook_cpu:7.1f} {total.forked:6d} {total.forked_cpu:7.1f} "
        f"{total.inprocess:7d} {total.inprocess_cpu:6.1f}  total"
    )
