"""The user-facing docs cannot drift from the code.

- docs/troubleshooting.md's unit table is what tests/tools/troubleshooting.py generates from the units'
  own Symptom/Cause/Fix/Check blocks (found in every role README), every unit a task names has such a
  block, and every unit has its row.
- Every relative link of the README, docs/, awx/, rbac/ and the role READMEs resolves (file and heading).
- The README and docs/ name only files that exist and variables the code uses.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import pytest
import yaml

from tests import upstream
from tests.tools import troubleshooting as ts

ROOT = Path(__file__).resolve().parents[2]
LINKED_DOCS = sorted(
    {ROOT / "README.md", ROOT / "awx" / "README.md", ROOT / "rbac" / "README.md"}
    | set((ROOT / "docs").rglob("*.md"))
    | set((ROOT / "roles").glob("*/README.md"))
)
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
TOP_DIRS = (
    *("roles", "playbooks", "plugins", "tests", "docs", "awx"),
    *("rbac", "inventories", "molecule", "meta", "changelogs"),
)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_troubleshooting_index_is_what_the_units_say():
    current = ts.INDEX.read_text()
    wanted = ts.rewrite(current, ts.render(ts.readme_units()))
    assert current == wanted, "docs/troubleshooting.md is stale: run `make docs` (tests/tools/troubleshooting.py)"


def test_every_unit_has_its_block_and_its_row():
    units = ts.readme_units()
    assert len(units) >= 10, "fewer unit blocks than the remediations the collection has"
    by_name = {u.name: u for u in units}
    assert len(by_name) == len(units), "two unit blocks share a name"
    for unit in units:
        missing = [f for f in ts.FIELDS if not unit.fields.get(f)]
        assert not missing, f"{rel(unit.readme)} unit {unit.name}: no {', '.join(missing)}"
    named = ts.task_units()
    without = {name: rel(path) for name, path in named.items() if name not in by_name}
    assert not without, f"units named in tasks without a Symptom/Cause/Fix/Check block in a role README: {without}"
    index = ts.INDEX.read_text()
    for unit in units:
        assert f"[{unit.name}](" in index, f"unit {unit.name} has no row in docs/troubleshooting.md"


def test_anchor_matches_github():
    assert ts.github_anchor("evaluator-secret-delete (all platforms) — `tasks/evaluator_rbac.yml`") == (
        "evaluator-secret-delete-all-platforms--tasksevaluator_rbacyml"
    )
    assert ts.anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=rel)
def test_links_resolve(doc):
    text = doc.read_text()
    broken = []
    for target in LINK.findall(re.sub(r"```.*?```", "", text, flags=re.S)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _hash, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if ROOT.resolve() not in dest.parents and dest != ROOT.resolve():
            broken.append(f"{target}: outside the repository")
            continue
        if anchor and (dest.suffix != ".md" or anchor not in ts.anchors(dest.read_text())):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{rel(doc)}:\n" + "\n".join(broken)


@functools.cache
def code_words() -> set[str]:
    words: set[str] = set()
    for pattern in ("roles/**/*.yml", "roles/**/*.j2", "playbooks/*.yml", "inventories/**/*.yml", "plugins/**/*.py"):
        for path in ROOT.glob(pattern):
            words.update(re.findall(r"[a-z][a-z0-9_]+", path.read_text()))
    return words


@pytest.mark.parametrize("doc", USER_DOCS, ids=rel)
def test_docs_name_existing_files_and_variables(doc):
    text = doc.read_text()
    roles = [p.name for p in (ROOT / "roles").iterdir() if p.is_dir()]
    words = code_words()
    wrong = []
    for quoted in re.findall(r"`([^`\n]+)`", text):
        token = quoted.strip()
        if re.fullmatch(rf"(?:{'|'.join(TOP_DIRS)})/[\w./-]*", token) and not (ROOT / token).exists():
            wrong.append(f"`{token}`: no such file in the repository")
        if "/" in token:
            continue
        for name in re.findall(r"\b[a-z][a-z0-9_]*\b", token):
            if any(name.startswith(f"{role}_") for role in roles) and name not in words:
                wrong.append(f"`{token}`: {name} is used nowhere in roles/, playbooks/, inventories/ or plugins/")
    assert not wrong, f"{rel(doc)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("doc", [ROOT / "docs" / "compatibility.md", ROOT / "README.md"], ids=rel)
def test_compatibility_versions_are_the_defaults(doc):
    """The version tables write a role default as `variable: value` and a pinned test version as
    `KEY=value` (tests/sim/versions.env); each must be what the code says. A cell that calls a value
    "supported" (another version that also works) is not a default and is not compared."""
    defaults = {}
    for path in (ROOT / "roles").glob("*/defaults/main.yml"):
        defaults.update(yaml.safe_load(path.read_text()) or {})
    pins = dict(
        line.split("=", 1)
        for line in (ROOT / "tests/sim/versions.env").read_text().splitlines()
        if re.match(r"[A-Z_]+=", line)
    )
    checked, wrong = 0, []
    for line in doc.read_text().splitlines():
        for cell in line.split("|"):
            if "supported" in cell:
                continue
            for name, value in re.findall(r"`([a-z][a-z0-9_]+): ([^`]+)`", cell):
                if name in defaults:
                    checked += 1
                    if str(defaults[name]) != value.strip().strip("\"'"):
                        wrong.append(f"`{name}: {value}`: the default is {defaults[name]!r}")
            for name, value in re.findall(r"`([A-Z][A-Z0-9_]+)=([^`]+)`", cell):
                checked += 1
                if pins.get(name) != value:
                    wrong.append(f"`{name}={value}`: tests/sim/versions.env says {pins.get(name)!r}")
    assert checked >= 5, f"{rel(doc)} names fewer than five version variables"
    assert not wrong, f"{rel(doc)}:\n" + "\n".join(wrong)


def test_readme_support_matrix_names_the_upstream_versions_the_tests_use():
    """Every upstream repository and tag whose files the tests read (provenance.json of the upstream
    reference files) is in the README's support matrix as `owner/name **tag**`, and the matrix names
    no tag the tests do not read."""
    used = {(f["repo"], f["tag"]) for f in upstream.load_json("provenance.json")["files"]}
    readme = (ROOT / "README.md").read_text()
    matrix = readme.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    named = set()
    for repo, tags in re.findall(r"([\w.-]+/[\w.-]+) ((?:\*\*[^*]+\*\*(?: and )?)+)", matrix):
        named.update((repo, tag) for tag in re.findall(r"\*\*([^*]+)\*\*", tags))
    assert len(used) >= 4, f"provenance.json lists only {sorted(used)}"
    assert used - named == set(), f"README.md's support matrix does not name {sorted(used - named)}"
    assert named - used == set(), f"README.md's support matrix names versions no test reads: {sorted(named - used)}"


def test_readme_links_every_role_and_stays_short():
    readme = (ROOT / "README.md").read_text()
    for role in sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "README.md").is_file()):
        assert f"(roles/{role}/README.md)" in readme, f"README.md does not link roles/{role}/README.md"
    assert len(readme.splitlines()) <= 160, "README.md is longer than 160 lines: move details to docs/"


@functools.cache
def repo_documents() -> set[str]:
    """Names of the Markdown files of the repository (not of the venv or caches)."""
    names: set[str] = set()
    for _folder, dirs, files in os.walk(ROOT):
        dirs[:] = [
            d for d in dirs if d not in {".git", ".venv", ".cache", "collections", ".collections", "node_modules"}
        ]
        names.update(f for f in files if f.endswith(".md"))
    return names


@functools.cache
def written_documents() -> set[str]:
    """Markdown files the roles and plugins write (reports), which a README may name."""
    names: set[str] = set()
    for pattern in ("roles/**/*.yml", "roles/**/*.j2", "plugins/**/*.py"):
        for path in ROOT.glob(pattern):
            names.update(re.findall(r"[\w.-]+\.md\b", path.read_text()))
    return names


HISTORY = re.compile(r"\b(issue|session) #?\d+|\bplanned\b|\bseeds/|\breference/|\.\./shared\b", re.I)


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=rel)
def test_user_docs_describe_the_product_as_it_is(doc):
    """No development history, no stale "planned", no document that is not in the repository."""
    text = doc.read_text()
    in_repo = repo_documents() | written_documents()
    wrong = [f"{m.group(0)!r}" for m in HISTORY.finditer(text)]
    wrong += [
        f"{name!r}: no such document in the repository" for name in set(re.findall(r"[\w.-]+\.md\b", text)) - in_repo
    ]
    assert not wrong, f"{rel(doc)}:\n" + "\n".join(wrong)
