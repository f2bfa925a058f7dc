"""The AWX definitions under awx/ against the collection: every survey question sets a real role
variable with a matching type, its default (a string, as AWX sends it) passes that role's argument
spec, the workflow runs site.yml's stages in site.yml's order, and configure.yml parses.

There is no AWX server here: what awx/configure.yml does on a controller is not exercised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from tests import harness
from tests.integration import automation
from tests.integration.automation import awx_credential_types, awx_custom_credential_env

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
        assert set(jt["credentials"]) <= {"kubernetes", "vault", "machine", "flywheel_api", "keys"}, jt["name"]
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
    assert set(site_jt["credentials"]) == {"kubernetes", "vault", "machine", "flywheel_api", "keys"}


def test_configure_playbook_parses():
    proc = harness.run_playbook("awx/configure.yml", args=["--syntax-check"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


ENV_READ = re.compile(r"lookup\(\s*'(?:ansible\.builtin\.)?env'\s*,\s*'([A-Z0-9_]+)'\s*\)")
KEYS_TYPE = "Data Flywheel - model and registry keys"


def role_defaults_env() -> dict[str, set[str]]:
    """Environment variable -> the role options whose default in defaults/main.yml reads it."""
    out: dict[str, set[str]] = {}
    for defaults_file in (ROOT / "roles").glob("*/defaults/main.yml"):
        for option, value in (yaml.safe_load(defaults_file.read_text()) or {}).items():
            for variable in ENV_READ.findall(str(value)):
                out.setdefault(variable, set()).add(option)
    return out


def configure_tasks() -> list[dict]:
    return yaml.load((ROOT / "awx" / "configure.yml").read_text(), Loader=automation._AwxYamlLoader)[0]["tasks"]  # noqa: S506


def test_custom_credential_types_keep_secrets_secret_and_inject_only_their_fields():
    types = awx_credential_types()
    assert KEYS_TYPE in types and "Data Flywheel API" in types
    for name, spec in types.items():
        fields = {f["id"]: f for f in spec["inputs"]["fields"]}
        for field_id, field in fields.items():
            if re.search(r"key|token|password|secret", field_id):
                assert field.get("secret") is True, f"{name}: field {field_id} is not secret"
        for variable, template in spec["injectors"].get("env", {}).items():
            assert not variable.startswith("ANSIBLE_"), f"{name}: AWX refuses to inject {variable}"
            used = set(re.findall(r"{{\s*(\w+)", template)) - {"tower"}
            assert used <= set(fields), f"{name}: {variable} uses {used - set(fields)}, not a field"


def test_keys_credential_injects_the_variables_the_roles_read():
    read = role_defaults_env()
    injected = set(awx_credential_types()[KEYS_TYPE]["injectors"]["env"])
    assert {"NGC_API_KEY", "NVIDIA_API_KEY", "HF_TOKEN", "LLM_JUDGE_API_KEY", "EMB_API_KEY"} <= injected
    assert not injected - set(read), f"injected but read by no role default: {injected - set(read)}"
    # every secret role input that falls back to an environment variable gets it from some AWX credential
    all_injected = {v for spec in awx_credential_types().values() for v in spec["injectors"].get("env", {})}
    for variable, options in read.items():
        secret = [o for o in options if OPTIONS.get(o, {}).get("no_log")]
        if secret:
            assert variable in all_injected, f"{secret} read {variable}, which no credential type of awx/ injects"


def test_keys_credential_renders_like_awx():
    env = awx_custom_credential_env(KEYS_TYPE, {"ngc_api_key": "nvapi-one", "hf_token": "hf_two"})
    assert env["NGC_API_KEY"] == "nvapi-one" and env["HF_TOKEN"] == "hf_two"
    assert env["NVIDIA_API_KEY"] == env["LLM_JUDGE_API_KEY"] == env["EMB_API_KEY"] == ""  # empty, not "None"


def test_every_credential_task_hides_its_inputs():
    tasks = configure_tasks()
    custom = set(awx_credential_types())
    builtin = {"OpenShift or Kubernetes API Bearer Token", "Vault", "Machine"}
    credentials = [t for t in tasks if "awx.awx.credential" in t]
    assert len(credentials) >= 5
    for task in credentials:
        assert task.get("no_log") is True, task["name"]
        kind = task["awx.awx.credential"]["credential_type"].replace("{{ dfw_awx_name_prefix }}", "")
        assert kind in custom | builtin, f"{task['name']}: unknown credential type {kind}"
