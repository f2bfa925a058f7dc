"""Every role README declares its contract (what it reads, changes and exports), and the declaration
matches the role's files: every variable of another role (or collection-level variable) the role
reads is listed with where it comes from, nothing listed is unread, every exported fact is set by the
role, and every "fact exported by X" a role relies on is one X declares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests import role_contracts as rc

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("role", rc.ROLES)
def test_contract_lists_exactly_what_the_role_reads_from_outside(role):
    declared = rc.contract(role)
    read = rc.foreign_reads(role)
    missing = {name: where for name, where in read.items() if name not in declared.reads}
    assert not missing, f"roles/{role}/README.md contract does not list what the role reads: {missing}"
    stale = sorted(set(declared.reads) - set(read))
    assert not stale, f"roles/{role}/README.md contract lists what the role does not read: {stale}"


@pytest.mark.parametrize("role", rc.ROLES)
def test_exported_facts_are_prefixed_set_by_the_role_and_name_a_real_entry_point(role):
    declared = rc.contract(role)
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    set_here = rc.set_facts(role) | rc.defined_by(role)
    for fact, entry in declared.exports.items():
        assert fact.startswith(role + "_"), f"{role}: export {fact} lacks the role prefix"
        assert fact in rc.set_facts(role) or re.search(
            rf"register:\s*{fact}\b", "".join(p.read_text() for p in (ROOT / "roles" / role / "tasks").rglob("*.yml"))
        ), f"{role}: {fact} is documented as exported but no task sets it"
        assert fact in set_here
        assert entry in specs, f"{role}: export {fact} names entry point {entry!r}, not one of {sorted(specs)}"


def test_every_fact_a_role_relies_on_is_exported_by_the_role_it_names():
    exports = {role: rc.contract(role).exports for role in rc.ROLES}
    for role in rc.ROLES:
        for name, source in rc.contract(role).reads.items():
            named = re.findall(r"facts? exported by `([a-z_]+)`", source)
            if not named:
                assert "inventory" in source or "the role that includes it" in source, (
                    f"{role} reads {name} from {source!r}: say which role exports it, or that it is the inventory's"
                )
                continue
            assert name in exports[named[0]], f"{role} reads {name} as exported by {named[0]}, which does not export it"


def test_playbooks_carry_no_cross_role_jinja():
    """Roles exchange data through exported facts read by their own defaults; a playbook only orders them."""
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        text = path.read_text()
        for match in re.finditer(r"\{\{(.*?)\}\}", text, re.S):
            names = {n for n in re.findall(r"[a-z][a-z0-9_]*", match.group(1)) if rc.owner(n)}
            # the connection definition, inventory groups and the inventory's per-host settings
            allowed = {
                "flywheel_k8s_module_defaults",
                "flywheel_helm_module_defaults",
                "flywheel_k8s_task_timeout",
                "flywheel_clusters",
                "flywheel_cluster",
                "preflight_gpu_hosts",
                "preflight_cluster",
                "preflight_nfs_servers",
            }
            assert names <= allowed, f"{path.name}: cross-role Jinja {sorted(names - allowed)}"
