"""The in-process module runner (tests/harness.py) reports what Ansible reports: the same calls through
`ansible localhost -m` and in-process give the same result (return values, changed, failed, msg,
warnings, diff, the no_log-masked invocation), in normal, check and diff mode, for a success, an idempotent
rerun, a failure and a warning. Only the keys the controller adds itself differ."""

from __future__ import annotations

import os
import resource
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import harness
from tests.harness import run_module
from tests.integration.flywheel_sim import control
from tests.sim.entity_store.simulator import start as start_entity_store
from tests.sim.flywheel_api.simulator import start as start_flywheel_api

# added by the controller around every module result, never by the module
CONTROLLER_KEYS = {"_ansible_no_log", "action", "exception"}


def both(module: str, args: dict, **kwargs) -> tuple[dict, dict]:
    """(in-process result, controller result) of one call."""
    return run_module(module, args, **kwargs), run_module(module, args, via="ansible", **kwargs)


def same(inprocess: dict, controller: dict) -> None:
    assert set(controller) - set(inprocess) <= CONTROLLER_KEYS, sorted(set(controller) - set(inprocess))
    assert set(inprocess) <= set(controller), sorted(set(inprocess) - set(controller))
    for key in set(inprocess):
        assert inprocess[key] == controller[key], (key, inprocess[key], controller[key])


@pytest.fixture
def store():
    server = start_entity_store()
    yield server
    server.shutdown()


def test_create_check_diff_rerun_and_bad_input_match_the_controller(store):
    args = {
        "entity_store_url": store.url,
        "namespace": "meta",
        "name": "llama-3.2-1b-instruct",
        "nim_service": "llama-3-2-1b-instruct",
        "nim_namespace": "nim",
        "spec": {"num_parameters": 1000000000, "context_size": 8192, "num_virtual_tokens": 0, "is_chat": True},
    }
    dry, dry_controller = both("nemo_model", args, check=True, diff=True)
    same(dry, dry_controller)
    assert dry["changed"] is True and store.state.models == {}
    created = run_module("nemo_model", args, diff=True)
    assert created["changed"] is True
    rerun, rerun_controller = both("nemo_model", args, diff=True)
    same(rerun, rerun_controller)
    assert rerun["changed"] is False
    moved, moved_controller = both("nemo_model", dict(args, nim_namespace="nim2"), check=True, diff=True)
    same(moved, moved_controller)
    assert moved["changed"] is True and moved["diff"]["before"] != moved["diff"]["after"]
    bad, bad_controller = both("nemo_model", dict(args, entity_store_url="store:8000"))
    same(bad, bad_controller)
    assert bad["failed"] is True and "entity_store_url='store:8000'" in bad["msg"]


def test_warnings_and_no_log_match_the_controller():
    sim = start_flywheel_api(unit_seconds=0.05)
    try:
        control(sim, "/_sim/config", {"workloads": {"w": {"scenario": "nim_failed"}}})
        base = {"api_url": sim.url, "api_token": "dfw-harness-secret-0123", "wait_sleep": 1}
        failed = run_module("flywheel_job", {**base, "workload_id": "w", "client_id": "dev", "wait": True})
        assert failed["failed"] is True
        args = {**base, "job_id": failed["job"]["id"], "fail_on_failed_parts": False}
        lenient, lenient_controller = both("flywheel_job", args)
        same(lenient, lenient_controller)
        assert lenient["warnings"] and any("failed" in w for w in lenient["warnings"])
        assert "dfw-harness-secret-0123" not in str(lenient), "no_log value in the result"
    finally:
        sim.shutdown()


def test_playbooks_run_side_by_side_are_each_counted_once(ansible_playbook, tmp_path):
    """The CPU the cost table gives a playbook run is that run's own (wait4 of its ansible-playbook), not the
    CPU of whatever else the test process reaped meanwhile: two runs side by side (as test_site_converges and
    test_interruption run theirs) add up to what this process's children used, not twice that."""
    book = tmp_path / "waits.yml"
    wait = "    - ansible.builtin.command: sleep 2\n      changed_when: false\n"
    book.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n" + wait * 2)

    def children():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before = children()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _i: ansible_playbook(book, {}), range(2)))
    spent = children() - before
    assert [run.returncode for run in runs] == [0, 0], runs[0].tail()
    assert all(run.cpu > 0.2 for run in runs), [run.cpu for run in runs]
    assert abs(sum(run.cpu for run in runs) - spent) < 0.1 * spent, ([run.cpu for run in runs], spent)


def test_playbook_runs_of_a_test_process_share_each_modules_payload(ansible_playbook, tmp_path):
    """callback_plugins/dfw_warm.py: a run builds a module's AnsiballZ payload only when no earlier run of the
    test process built it from the same sources (ansible-core, the collection roots searched, the newest file of
    this collection's plugins); a plugin edited between two runs, or another collection root, gets a new build."""
    shared = tmp_path / "ansiballz"
    shared.mkdir()
    book = tmp_path / "stat.yml"
    book.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.stat:\n        path: {tmp_path}\n      register: seen\n"
        "    - ansible.builtin.assert:\n        that: seen.stat.isdir\n"
    )
    payload = "ansible.modules.stat-ZIP_DEFLATED-none"

    def run(**env):
        ran = ansible_playbook(book, {}, env={"DFW_ANSIBALLZ_CACHE": str(shared), **env})
        assert ran.returncode == 0, ran.tail()
        # a rebuilt payload is a new file (written beside, then renamed over the old one): a new inode
        built = {key.name: (key / payload).stat() for key in shared.iterdir() if (key / payload).exists()}
        return {name: (st.st_ino, st.st_mtime_ns) for name, st in built.items()}

    first = run()
    assert len(first) == 1, sorted(first)
    again = run()
    assert again == first, "the second run built the payload again"
    # another collection root first in the search path, holding this collection's plugins: its own payloads
    plugin = tmp_path / "roots" / "ansible_collections" / "dataflywheel" / "blueprint" / "plugins" / "modules" / "x.py"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("# a plugin file\n")
    roots = f"{tmp_path / 'roots'}:{harness.ROOT / 'collections'}"
    other = run(ANSIBLE_COLLECTIONS_PATH=roots)
    assert len(other) == 2 and {k: v for k, v in other.items() if k in first} == first, sorted(other)
    os.utime(plugin, (plugin.stat().st_atime, plugin.stat().st_mtime + 10))  # the plugin edited
    edited = run(ANSIBLE_COLLECTIONS_PATH=roots)
    assert len(edited) == 3 and {k: v for k, v in edited.items() if k in other} == other, sorted(edited)
