"""The role contracts as the role READMEs declare them (section "## Contract"), and what the role files
really read, so the docs and the code cannot drift apart: tests/unit/test_role_contracts.py compares
the two, and tests/integration/test_site_converges.py checks that real runs on the local clusters set every
documented export (the dfw_facts callback records which role set which fact).

A contract section looks like:

    ## Contract

    Reads (besides its own variables, `meta/argument_specs.yml`):

    | variable | from |
    |---|---|
    | `nemo_platform_services_namespace` | fact exported by `nemo_platform` (entry point `facts`) |

    Changes: <prose>

    Exports:

    | fact | entry point | content |
    |---|---|---|
    | `remediate_facts` | admission | ... |

"Reads: only its own variables" and "Exports: none ..." are allowed instead of the tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES_DIR = ROOT / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir())
# longest first, so flywheel_run_x belongs to flywheel_run, not flywheel
PREFIXES = sorted(ROLES, key=len, reverse=True)
CODE_DIRS = ("tasks", "templates", "defaults", "vars", "handlers")
# module names read like variables in prose and messages; they are not (filter names are only ever used
# after '|' or '.', which the reading below skips, and several share a name with the fact they compute)
PLUGINS = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py")}


@dataclass
class Contract:
    role: str
    reads: dict[str, str] = field(default_factory=dict)  # variable -> where from
    exports: dict[str, str] = field(default_factory=dict)  # fact -> entry point
    changes: str = ""


def _table_after(text: str, label: str) -> list[list[str]] | None:
    """Rows (cells stripped) of the Markdown table that follows the paragraph starting with `label`, or None when
    that paragraph has no table (e.g. "Exports: none")."""
    match = re.search(rf"^{label}\b", text, re.M)
    if not match:
        raise AssertionError(f"no paragraph starting with {label!r}")
    # the paragraph may wrap over several lines; the table follows it after a blank line (or at once)
    paragraph = re.compile(r"(?:[^|\n][^\n]*\n)+").match(text, match.start())
    rest = text[paragraph.end() if paragraph else match.start() :].lstrip("\n")
    if not rest.startswith("|"):
        return None
    rows = []
    for line in rest.splitlines():
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set("".join(cells)) <= set("-: "):
            continue
        rows.append(cells)
    return rows[1:]  # without the header


def _names(cell: str) -> list[str]:
    return re.findall(r"`([a-z][a-z0-9_]*)`", cell)


def contract(role: str) -> Contract:
    readme = (ROLES_DIR / role / "README.md").read_text()
    start = readme.find("\n## Contract\n")
    if start < 0:
        raise AssertionError(f"roles/{role}/README.md has no '## Contract' section")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end > 0 else None]
    out = Contract(role)
    reads = _table_after(section, "Reads")
    for row in reads or []:
        for name in _names(row[0]):
            out.reads[name] = row[1]
    changes = re.search(r"^Changes:\s*(.+?)(?:\n\n|\Z)", section, re.M | re.S)
    if not changes:
        raise AssertionError(f"roles/{role}/README.md: the contract has no 'Changes:' paragraph")
    out.changes = changes.group(1)
    exports = _table_after(section, "Exports")
    for row in exports or []:
        entry = row[1].split()[0] if row[1] else ""
        for name in _names(row[0]):
            out.exports[name] = entry
    return out


def owner(name: str) -> str | None:
    """The role whose prefix the name carries (None for names of no role, e.g. ansible_check_mode)."""
    for role in PREFIXES:
        if name.startswith(role + "_"):
            return role
    return None


def _files(role: str):
    for sub in CODE_DIRS:
        base = ROLES_DIR / role / sub
        if base.is_dir():
            yield from sorted(p for p in base.rglob("*") if p.is_file())


# a name used as a value: not after '.', '|' (a filter), '/', '-' or another name character, and not
# the key of a YAML mapping line (which sets a variable: include_role vars, set_fact, defaults)
_USE = re.compile(r"(?<![\w.|/-])([a-z][a-z0-9_]*)\b(?!\s*:(?:\s|$))")
_KEY = re.compile(r"^\s*(?:-\s+)?([a-z][a-z0-9_]*)\s*:", re.M)
_REGISTER = re.compile(r"\b(?:register|loop_var|index_var):\s*([a-z][a-z0-9_]*)")


def defined_by(role: str) -> set[str]:
    """Names the role itself defines: its defaults, argument_specs options, the keys it sets (set_fact, vars,
    include_role arguments) and what it registers."""
    names: set[str] = set()
    spec = ROLES_DIR / role / "meta" / "argument_specs.yml"
    if spec.exists():
        for entry in (yaml.safe_load(spec.read_text()) or {}).get("argument_specs", {}).values():
            names |= set((entry or {}).get("options") or {})
    for path in _files(role):
        text = path.read_text()
        names |= set(_KEY.findall(text)) | set(_REGISTER.findall(text))
    return names


def _code(path: Path) -> str:
    """The file without its YAML comment lines."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def foreign_reads(role: str) -> dict[str, str]:
    """Variables of other roles (or collection-level variables carrying a role prefix, such as
    flywheel_kubeconfig) that the role's files read: name -> first file that reads it."""
    own = defined_by(role)
    found: dict[str, str] = {}
    for path in _files(role):
        for name in _USE.findall(_code(path)):
            if name in own or name in found or name in ROLES or name in PLUGINS or owner(name) is None:
                continue
            found[name] = str(path.relative_to(ROOT))
    return found


def set_facts(role: str) -> set[str]:
    """Names the role's tasks set as facts (set_fact keys; a close reading, not an Ansible parse)."""
    names: set[str] = set()
    for path in _files(role):
        if path.parent.name == "defaults" or path.suffix not in (".yml", ".yaml"):
            continue
        for task in _tasks(yaml.safe_load(path.read_text()) or []):
            facts = task.get("ansible.builtin.set_fact") or task.get("set_fact")
            if isinstance(facts, dict):
                names |= set(facts)
    return names


def _tasks(items):
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        yield item
        for key in ("block", "rescue", "always"):
            yield from _tasks(item.get(key))
