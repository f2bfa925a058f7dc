"""Nutanix resolver check against the real resolver of the machine running the test."""

import socket

from tests.harness import run_playbook


def run(servers, tmp_path):
    playbook = tmp_path / "resolver.yml"
    playbook.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: dataflywheel.blueprint.remediate\n"
        "        tasks_from: nutanix_resolver\n"
    )
    out = run_playbook(playbook, {"remediate_nfs_servers": servers}, json_output=True).json
    failures = [h["localhost"] for t in out["plays"][0]["tasks"] for h in [t["hosts"]] if h["localhost"].get("failed")]
    return out["stats"]["localhost"], failures


def test_names_that_resolve_pass_quietly(tmp_path):
    socket.getaddrinfo("localhost", None)  # the premise: this machine resolves localhost
    stats, failures = run([{"storage_class": "nai-nfs-storage", "server": "localhost"}], tmp_path)
    assert failures == []
    assert stats["failures"] == 0 and stats["changed"] == 0


def test_unresolvable_name_fails_with_node_and_remedy(tmp_path):
    bad = "files01.dfw-resolver-test.invalid"  # RFC 6761: .invalid never resolves
    try:
        socket.getaddrinfo(bad, None)
        raise AssertionError(f"{bad} unexpectedly resolves here")
    except socket.gaierror:
        pass
    servers = [
        {"storage_class": "nutanix-volume", "server": "localhost"},
        {"storage_class": "nai-nfs-storage", "server": bad},
    ]
    stats, failures = run(servers, tmp_path)
    assert stats["failures"] == 1
    msg = failures[0]["msg"]
    assert f"Node localhost cannot resolve {bad} (StorageClass nai-nfs-storage)" in msg
    assert "localhost (StorageClass nutanix-volume)" not in msg
    assert "search domains" in msg and "FQDN or IP" in msg


def test_bad_input_is_named(tmp_path):
    stats, failures = run("files01", tmp_path)
    assert stats["failures"] == 1 and stats["changed"] == 0
    assert "option 'remediate_nfs_servers' is of type str" in failures[0]["msg"]
