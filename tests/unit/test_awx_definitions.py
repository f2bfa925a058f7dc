"""The AWX definitions under awx/ against the collection: every survey question sets a real role
variable with a matching type, its default (a string, as AWX sends it) passes that role's argument
spec, the workflow runs site.yml's stages in site.yml's order, and configure.yml parses.

There is no AWX server here: what awx/configure.yml does on a controller is not exercised."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROOT = Path(__file__).resolve().parents[2]
DEFS = yaml.safe_load((ROOT / "awx" / "vars" / "templates.yml").read_text())
SURVEY_TYPE = {"integer": "int", "text": "str", "password": "str", "float": "float"}


def role_options() -> dict:
    out = {}
    for spec_file in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        for entry in (yaml.safe_load(spec_file.read_text())["argument_specs"] or {}).values():
            out.update(entry.get("options") or {})
    return out


OPTIONS = role_options()
QUESTIONS = [q for section in DEFS["dfw_awx_surveys"].values() for q in section]


@pytest.mark.parametrize("question", QUESTIONS, ids=[q["variable"] for q in QUESTIONS])
def test_question_matches_the_role_argument_spec(question):
    variable = question["variable"]
    assert variable in OPTIONS, f"survey asks for {variable}, which no role declares"
    spec = OPTIONS[variable]
    if question["type"] == "multiplechoice" and set(question["choices"]) == {"true", "false"}:
        assert spec["type"] == "bool", variable
    elif question["type"] == "multiplechoice":
        assert set(question["choices"]) <= set(spec.get("choices", question["choices"])), variable
    else:
        assert spec["type"] == SURVEY_TYPE[question["type"]], variable
    # AWX hands answers over as strings: the role's spec must accept the default that way
    result = ArgumentSpecValidator({variable: spec}).validate({variable: str(question["default"])})
    assert not result.error_messages, result.error_messages
    if question["type"] == "integer":
        assert question["min"] <= int(question["default"]) <= question["max"], variable
    assert question["question_name"] and question["question_description"], variable


def test_a_bad_string_answer_is_rejected_with_the_variable_named():
    spec = OPTIONS["flywheel_run_wait_timeout"]
    result = ArgumentSpecValidator({"flywheel_run_wait_timeout": spec}).validate({"flywheel_run_wait_timeout": "soon"})
    assert any("flywheel_run_wait_timeout" in m for m in result.error_messages), result.error_messages


def test_job_templates_reference_real_playbooks_surveys_and_credentials():
    names = [jt["name"] for jt in DEFS["dfw_awx_job_templates"]]
    assert len(names) == len(set(names))
    for jt in DEFS["dfw_awx_job_templates"]:
        assert (ROOT / jt["playbook"]).is_file(), jt["playbook"]
        assert set(jt["surveys"]) <= set(DEFS["dfw_awx_surveys"]), jt["name"]
        assert set(jt["credentials"]) <= {"kubernetes", "vault", "machine", "flywheel_api"}, jt["name"]
        variables = [q["variable"] for s in jt["surveys"] for q in DEFS["dfw_awx_surveys"][s]]
        assert len(variables) == len(set(variables)), f"{jt['name']} asks a variable twice"
    assert set(DEFS["dfw_awx_workflow"]["stages"]) <= set(names)


def test_workflow_runs_the_stages_of_site_yml_in_order():
    by_name = {jt["name"]: jt["playbook"] for jt in DEFS["dfw_awx_job_templates"]}
    site = [
        f"playbooks/{entry['ansible.builtin.import_playbook']}"
        for entry in yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    ]
    assert [by_name[s] for s in DEFS["dfw_awx_workflow"]["stages"]] == site
    site_jt = next(jt for jt in DEFS["dfw_awx_job_templates"] if jt["playbook"] == "playbooks/site.yml")
    assert set(site_jt["credentials"]) == {"kubernetes", "vault", "machine", "flywheel_api"}


def test_configure_playbook_parses():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check", "awx/configure.yml"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
