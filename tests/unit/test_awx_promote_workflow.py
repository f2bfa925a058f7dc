"""awx/flywheel_promote_workflow.yml: decide -> approval node -> deploy, only the deploy step
approved, and every survey variable declared by the flywheel_promote role. (AWX itself cannot run
here; this checks the definitions it would receive, and ansible-playbook --syntax-check.)"""

import subprocess
import sys
from pathlib import Path

import yaml

from tests import harness

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "awx" / "flywheel_promote_workflow.yml"


def play():
    return yaml.safe_load(WORKFLOW.read_text())[0]


def tasks_using(module):
    return [t for t in play()["tasks"] if module in t]


def test_nodes_chain_decide_approval_deploy():
    nodes = {
        t["awx.awx.workflow_job_template_node"]["identifier"]: t
        for t in tasks_using("awx.awx.workflow_job_template_node")
        if "loop" not in t
    }
    assert set(nodes) == {"promote-decide", "promote-approval", "promote-deploy"}
    approval = nodes["promote-approval"]["awx.awx.workflow_job_template_node"]
    assert "approval_node" in approval and "unified_job_template" not in approval
    assert approval["approval_node"]["timeout"]
    links = next(t for t in tasks_using("awx.awx.workflow_job_template_node") if "loop" in t)["loop"]
    assert links == [
        {"identifier": "promote-decide", "success_nodes": ["promote-approval"]},
        {"identifier": "promote-approval", "success_nodes": ["promote-deploy"]},
    ]
    assert "failure_nodes" not in str(links) and "always_nodes" not in str(links)


def test_only_the_deploy_template_is_approved():
    templates = play()["vars"]["dfw_awx_promote_templates"]
    assert [t["extra_vars"]["flywheel_promote_approved"] for t in templates] == [False, True]
    jt = tasks_using("awx.awx.job_template")[0]["awx.awx.job_template"]
    assert jt["playbook"] == "playbooks/flywheel_promote.yml" and (ROOT / jt["playbook"]).exists()


def test_survey_variables_are_declared_by_the_role():
    specs = yaml.safe_load((ROOT / "roles/flywheel_promote/meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    for question in play()["vars"]["dfw_awx_promote_survey"]["spec"]:
        assert question["variable"] in options, question["variable"]
        if question["type"] == "multiplechoice":
            declared = options[question["variable"]].get("choices")
            assert declared is None or set(question["choices"]) <= set(declared)


def test_syntax_check():
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check", str(WORKFLOW)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**harness.ansible_settings(), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
