"""The doctor's findings catalogue and checks (plugins/module_utils/diagnosis.py) on scenes built here: every
catalogue entry names a fix that exists, each check finds what it is for and nothing on a healthy scene, the
reports escape and redact. The same checks against the local cluster: tests/integration/test_diagnose.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import diagnosis as dg
from ansible_collections.dataflywheel.blueprint.plugins.module_utils import nemo_jobs

ROOT = Path(__file__).resolve().parents[2]
NS = "nemo"


def test_every_catalogue_entry_is_complete_and_names_a_real_fix():
    units = set(re.findall(r"^### ([a-z0-9-]+)", (ROOT / "roles/remediate/README.md").read_text(), re.M))
    for check_id, entry in dg.CATALOGUE.items():
        assert entry["severity"] in dg.SEVERITIES, check_id
        assert entry["symptom"] and entry["cause"], check_id
        fix = entry["fix"]
        assert fix.get("role") or fix.get("manual"), check_id
        if fix.get("role"):
            role = fix["role"].removeprefix("dataflywheel.blueprint.")
            assert (ROOT / "roles" / role / "tasks" / "main.yml").exists(), (check_id, role)
            specs = (ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text()
            for variable in re.findall(r"\b([a-z]+_[a-z_]+)\b", fix.get("variable") or ""):
                owner = variable.split("_")[0]
                if owner == role.split("_")[0]:
                    assert variable in specs or variable in (ROOT / "roles" / role / "defaults/main.yml").read_text(), (
                        check_id,
                        variable,
                    )
        if fix.get("role") == "dataflywheel.blueprint.remediate" and fix.get("unit"):
            assert fix["unit"] in units, (check_id, fix["unit"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x-1 fatal\n  symptom: s\n  cause: c\n  manual: m\n", "line 1: want a new `<id> <severity>`"),
        ("x-1 error\n  symptom: s\n  cause: c\n  manual: m\nx-1 error\n", "line 5: want a new `<id>"),
        ("x-1 error\n  symptom: s\n  reason: c\n", "line 3: want `symptom|cause|role|unit|variable|manual: <text>`"),
        ("x-1 error\n  symptom: s\n  cause: c\n  unit: u\n", "entry x-1: a symptom, a cause and a role or manual"),
    ],
)
def test_the_catalogue_text_is_parsed_strictly(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        dg.parse_catalogue(text)


def test_a_catalogue_field_continues_on_deeper_lines_and_only_there():
    parsed = dg.parse_catalogue(
        "a-b warning\n  symptom: one\n    two\n  cause: c\n  role: r\nc-d info\n  symptom: s\n  cause: c\n  manual: m\n"
    )
    assert parsed == {
        "a-b": {"severity": "warning", "symptom": "one two", "cause": "c", "fix": {"role": "r"}},
        "c-d": {"severity": "info", "symptom": "s", "cause": "c", "fix": {"manual": "m"}},
    }
    with pytest.raises(ValueError, match="line 2"):
        dg.parse_catalogue("a-b warning\n    continues nothing\n")


def test_every_id_the_checks_file_under_is_in_the_catalogue():
    used = set(dg.NEEDLE_IDS.values()) | set(dg.CUSTOMIZER_IDS) | {"deployment-not-found", "preflight-check-failed"}
    used |= set(re.findall(r'finding\(\s*"([a-z0-9-]+)"', (ROOT / "plugins/module_utils/diagnosis.py").read_text()))
    assert used - set(dg.CATALOGUE) == set()
    assert len(dg.CATALOGUE) == dg.CATALOGUE_TEXT.count("\n\n") + 1  # one block an entry, none lost


def test_every_hint_of_the_nemo_job_diagnosis_is_filed_under_a_catalogue_entry():
    """The doctor reads failed job parts with nemo_jobs' own needles (one definition), each mapped to an entry."""
    for needle, _hint in nemo_jobs.HINTS:
        assert dg.NEEDLE_IDS[needle] in dg.CATALOGUE
        assert nemo_jobs.needle_for("x %s y" % needle) == needle


def scene(**objects):
    base = {
        "platform": {"platform": "vanilla"},
        "objects": {NS: {k: [] for k, _c, _m in dg.NAMESPACED_READS}},
        "secrets": {NS: []},
        "crs": {"NemoEvaluator": [], "NemoCustomizer": [], "NIMService": [], "NemoEntitystore": []},
        "scratch_policies": {"map": [], "map_bindings": [], "kyverno": [], "served": []},
        "service_index": {NS: []},
        "not_checked": [],
    }
    for key, value in objects.items():
        if key in base["objects"][NS]:
            base["objects"][NS][key] = value
        else:
            base[key] = value
    return base


def evaluator(endpoint="http://entity-store:8000"):
    return {"metadata": {"name": "ev", "namespace": NS}, "spec": {"entitystore": {"endpoint": endpoint}}}


OPERATOR_ROLE = {
    "metadata": {"name": "ev"},
    "rules": [{"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": ["get", "list", "create"]}],
}
EXTRA_ROLE = {
    "metadata": {"name": "ev-extra"},
    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["delete"]}],
}


def binding(name, role):
    return {
        "metadata": {"name": name},
        "roleRef": {"kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "ev", "namespace": NS}],
    }


def test_evaluator_rbac_adds_up_roles_as_the_authorizer_does():
    broken = scene(roles=[OPERATOR_ROLE], rolebindings=[binding("ev", "ev")], crs={"NemoEvaluator": [evaluator()]})
    found = dg.check_evaluator_secret_delete(broken)
    assert [f["id"] for f in found] == ["evaluator-secret-delete"]
    assert "RoleBinding nemo/ev -> Role ev grants secrets: create, get, list (no delete)" in found[0]["evidence"]
    fixed = scene(
        roles=[OPERATOR_ROLE, EXTRA_ROLE],
        rolebindings=[binding("ev", "ev"), binding("ev-extra", "ev-extra")],
        crs={"NemoEvaluator": [evaluator()]},
    )
    assert dg.check_evaluator_secret_delete(fixed) == []


def test_entity_store_endpoint_must_name_a_service():
    wrong = scene(
        crs={"NemoEvaluator": [evaluator("http://nemo-entity-store:8000")]}, service_index={NS: ["entity-store"]}
    )
    assert [f["id"] for f in dg.check_evaluator_entity_store_url(wrong)] == ["evaluator-entity-store-url"]
    right = scene(
        crs={"NemoEvaluator": [evaluator("http://entity-store.nemo.svc.cluster.local:8000")]},
        service_index={NS: ["entity-store"]},
    )
    assert dg.check_evaluator_entity_store_url(right) == []
    outside = scene(crs={"NemoEvaluator": [evaluator("https://es.example.com")]}, service_index={NS: []})
    assert dg.check_evaluator_entity_store_url(outside) == []  # outside the cluster: not the doctor's to judge


def handler_pod(scratch):
    spec = {
        "containers": [
            {"name": "main", "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}] if scratch else []}
        ]
    }
    if scratch:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return {
        "metadata": {"name": "cust-1-entity-handler-0-x", "labels": {"job-name": "cust-1-entity-handler-0"}},
        "spec": spec,
    }


def test_scratch_policy_or_a_customizer_that_mounts_it():
    bare = scene(pods=[handler_pod(False)])
    found = dg.check_scratch_volume(bare)
    assert found[0]["id"] == "scratch-volume" and "has no /scratch volume" in found[0]["evidence"][1]
    assert dg.check_scratch_volume(scene(pods=[handler_pod(True)])) == []
    with_policy = scene(
        pods=[handler_pod(False)],
        scratch_policies={"map": ["dfw-scratch-nemo"], "map_bindings": ["dfw-scratch-nemo"], "kyverno": []},
    )
    assert dg.check_scratch_volume(with_policy) == []
    policy_without_binding = scene(
        pods=[handler_pod(False)], scratch_policies={"map": ["dfw-scratch-nemo"], "map_bindings": []}
    )
    assert dg.check_scratch_volume(policy_without_binding)


RANGE = {NS: {"annotations": {"openshift.io/sa.scc.uid-range": "1000680000/10000"}}}


def pvc_pod(name, container, path, claim="model-store", uid=None, terminated=None):
    pod = {
        "metadata": {"name": name},
        "spec": {
            "volumes": [{"name": "m", "persistentVolumeClaim": {"claimName": claim}}, {"name": "s", "emptyDir": {}}],
            "containers": [
                {
                    "name": container,
                    "volumeMounts": [{"name": "m", "mountPath": path}, {"name": "s", "mountPath": "/scratch"}],
                    **({"securityContext": {"runAsUser": uid}} if uid else {}),
                }
            ],
        },
    }
    if terminated:
        pod["status"] = {"containerStatuses": [{"name": container, "lastState": {"terminated": terminated}}]}
    return pod


def ownership_job(completed_at=None, claim="model-store"):
    job = {
        "metadata": {"name": "dfw-model-perms-%s-abc123" % claim},
        "spec": {"template": {"spec": {"volumes": [{"name": "model", "persistentVolumeClaim": {"claimName": claim}}]}}},
        "status": {},
    }
    if completed_at:
        job["status"] = {"completionTime": completed_at, "conditions": [{"type": "Complete", "status": "True"}]}
    return job


DENIED = "Cannot read directory '/mount/models/llama32_1b-instruct_2_0'. Reason: [Errno 13] Permission denied"


def test_model_pvc_ownership_from_a_termination_message_on_openshift_only():
    pod = pvc_pod(
        "nim-0",
        "nim",
        "/model-store",
        terminated={"message": "PermissionError: [Errno 13] Permission denied: '/model-store/x'"},
    )
    broken = scene(pods=[pod], platform={"platform": "openshift"}, namespaces=RANGE)
    found = dg.check_model_pvc_ownership(broken)
    assert [f["id"] for f in found] == ["model-pvc-ownership"]
    assert found[0]["evidence"] == [
        "Pod nemo/nim-0 container nim terminated: PermissionError: [Errno 13] Permission denied: '/model-store/x'",
        "PVC model-store mounted at /model-store; the container runs as the UID OpenShift picks from the range (the "
        "spec sets none); namespace nemo has openshift.io/sa.scc.uid-range 1000680000/10000",
        "no ownership Job for PVC model-store (dfw-model-perms-model-store-*)",
    ]
    fixed = scene(
        pods=[pod], platform={"platform": "openshift"}, namespaces=RANGE, jobs=[ownership_job("2026-12-05T00:01:00Z")]
    )
    assert dg.check_model_pvc_ownership(fixed) == []  # no time on the message: the completed Job is taken as the fix
    assert dg.check_model_pvc_ownership(dict(broken, platform={"platform": "vanilla"})) == []


def test_model_pvc_ownership_from_the_log_and_when_the_fix_ran():
    def with_log(jobs, when="2026-12-05T00:00:05.123456789Z", line=DENIED):
        return scene(
            pods=[pvc_pod("train-0", "train", "/mount/models", uid=1000680000)],
            jobs=jobs,
            platform={"platform": "openshift"},
            namespaces=RANGE,
            logs={(NS, "train-0", "train"): ["%s starting" % when, "%s %s" % (when, line)]},
        )

    found = dg.check_model_pvc_ownership(with_log([]))
    assert found[0]["evidence"][0] == "Pod nemo/train-0 container train log at 2026-12-05T00:00:05Z: " + DENIED
    assert "the container runs as UID 1000680000" in found[0]["evidence"][1]
    assert found[0]["where"] == "nemo/train-0"
    assert dg.check_model_pvc_ownership(with_log([ownership_job("2026-12-05T00:01:00Z")])) == []
    pending = dg.check_model_pvc_ownership(with_log([ownership_job()]))
    assert pending[0]["evidence"][2] == "ownership Job dfw-model-perms-model-store-abc123 not completed"
    after = dg.check_model_pvc_ownership(with_log([ownership_job("2026-12-05T00:01:00Z")], "2026-12-05T00:02:00Z"))
    assert "completed at 2026-12-05T00:01:00Z, before this denial" in after[0]["evidence"][2]
    other_pvc = dg.check_model_pvc_ownership(with_log([ownership_job("2026-12-05T00:01:00Z", claim="other")]))
    assert len(other_pvc) == 1
    scratch = with_log([], line="PermissionError: [Errno 13] Permission denied: '/scratch'")
    assert dg.check_model_pvc_ownership(scratch) == []  # not under the PVC: the scratch-volume check's


def test_the_doctor_reads_the_logs_the_checks_need_only():
    customizer = {
        "metadata": {"name": "nemocustomizer-7d9-x"},
        "spec": {"containers": [{"name": "api"}, {"name": "sidecar"}]},
    }
    handler = {"metadata": {"name": "cust-1-entity-handler-0-x"}, "spec": {"containers": [{"name": "main"}]}}
    trainer = pvc_pod("train-0", "train", "/mount/models")
    assert dg.log_containers(customizer) == ["api", "sidecar"]
    assert dg.log_containers(handler, "openshift") == []
    assert dg.log_containers(trainer, "openshift") == ["train"]
    assert dg.log_containers(trainer, "vanilla") == []


def test_customizer_keyerror_state_from_its_log():
    log = [
        "2025-10-10T12:04:17.000000000Z INFO: customizer - Loaded in-cluster K8s config",
        "2025-10-10T12:04:17.000000000Z ERROR: customizer - JobWatcher(cust-9Hk) caught exception in watch loop",
        "2025-10-10T12:04:17.000000000Z Traceback (most recent call last):",
        "2025-10-10T12:04:17.000000000Z KeyError: 'state'",
    ]
    found = dg.check_customizer_logs(scene(logs={(NS, "nemocustomizer-0", "api"): log}))
    assert [f["id"] for f in found] == ["customizer-keyerror-state"]
    assert found[0]["evidence"] == [
        "Pod nemo/nemocustomizer-0 container api log: KeyError: 'state'",
        "the error it follows: ERROR: customizer - JobWatcher(cust-9Hk) caught exception in watch loop",
    ]
    assert dg.check_customizer_logs(scene(logs={(NS, "nemocustomizer-0", "api"): log[:2]})) == []


def test_log_evidence_is_redacted():
    token = "hf_" + "Zq7" * 8
    log = ["ERROR: customizer - download with HF_TOKEN=%s failed" % token, "KeyError: 'state'"]
    report = dg.diagnose(scene(logs={(NS, "nemocustomizer-0", "api"): log}), checks=["customizer-logs"])
    text = json.dumps(report) + dg.markdown(report) + dg.html(report) + "\n".join(dg.summary_lines(report))
    assert "HF_TOKEN=<redacted>" in report["findings"][0]["evidence"][1]
    assert token not in text


def test_job_failures_are_filed_by_kind():
    summaries = [
        {
            "id": "j1",
            "status": "completed",
            "failures": [
                {"part": "m customization", "error": "The training job is pending"},
                {"part": "m icl-eval", "error": "Error in evaluation: KeyError: 'state'"},
                {"part": "m base-eval", "error": "GET /v1/models/meta/m 404"},
            ],
        }
    ]
    found = dg.check_flywheel_jobs(scene(flywheel_jobs=summaries))
    assert [f["id"] for f in found] == ["training-pending", "flywheel-job-failed-parts", "entity-store-404"]


def test_pull_secrets_and_misplaced_chart_secrets():
    dep = {
        "metadata": {"name": "df-api-deployment"},
        "spec": {
            "template": {
                "spec": {
                    "imagePullSecrets": [{"name": "nvcrimagepullsecret"}],
                    "containers": [
                        {
                            "name": "api",
                            "image": "nvcr.io/nvidia/blueprint/foundational-flywheel-server:0.3.1",
                            "env": [
                                {
                                    "name": "NVIDIA_API_KEY",
                                    "valueFrom": {"secretKeyRef": {"name": "nvidia-api", "key": "k"}},
                                }
                            ],
                        }
                    ],
                }
            }
        },
    }
    broken = scene(deployments=[dep], secrets={NS: [], dg.UPSTREAM_SECRET_NAMESPACE: ["nvidia-api"]})
    misplaced = dg.check_chart_secrets_namespace(broken)
    assert (
        "needs Secret nvidia-api, which is not in namespace nemo but in nv-nvidia-blueprint-data-flywheel"
        in misplaced[0]["evidence"][0]
    )
    pull = dg.check_image_pull_credentials(broken)
    assert pull[0]["fix"]["role"] == "dataflywheel.blueprint.flywheel"  # the flywheel's namespace: its chart makes it
    healthy = scene(deployments=[dep], secrets={NS: ["nvidia-api", "nvcrimagepullsecret"]})
    assert dg.check_chart_secrets_namespace(healthy) == [] and dg.check_image_pull_credentials(healthy) == []
    unreadable = scene(deployments=[dep], secrets={NS: None})
    assert dg.check_chart_secrets_namespace(unreadable) == []  # not checked, not guessed


def test_reports_redact_and_escape():
    secret = "nvapi-" + "a1b2" * 10
    external = [
        {"id": "embedding-dimension", "evidence": "key %s <script>" % secret},
        {"id": "nope", "evidence": "Bearer abcdefghijkl"},
    ]
    report = dg.diagnose(scene(), checks=["discovery"], external=external, secrets=[secret])
    text = json.dumps(report) + dg.markdown(report) + dg.html(report) + "\n".join(dg.summary_lines(report))
    assert secret not in text and "abcdefghijkl" not in text
    assert "<script>" not in dg.html(report) and "&lt;script&gt;" in dg.html(report)
    assert [f["id"] for f in report["findings"]] == [
        "deployment-not-found",
        "embedding-dimension",
        "preflight-check-failed",
    ]
    assert report["counts"]["critical"] == 1 and not report["healthy"]


@pytest.mark.parametrize("check", dg.CHECKS)
def test_every_check_is_quiet_on_an_empty_healthy_scene(check):
    healthy = scene(
        deployments=[
            {
                "metadata": {"name": "df-api-deployment"},
                "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "x"}]}}},
            }
        ]
    )
    assert dg.CHECK_FUNCTIONS[check](healthy) == []


def test_role_and_module_offer_the_same_checks():
    doc = yaml.safe_load(
        re.search(
            r'DOCUMENTATION = r"""(.*?)"""', (ROOT / "plugins/modules/flywheel_diagnose.py").read_text(), re.S
        ).group(1)
    )
    assert doc["options"]["checks"]["choices"] == list(dg.CHECKS)


def test_secret_metadata_keeps_no_value():
    """kubectl apply stores a Secret's data in its last-applied annotation: the doctor drops every annotation but
    helm's ownership ones."""
    meta = {
        "name": "nvidia-api",
        "namespace": "nv-nvidia-blueprint-data-flywheel",
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"data": {"NVIDIA_API_KEY": "bnZhcGktc2VjcmV0"}}',
            "meta.helm.sh/release-name": "dfp",
        },
    }
    kept = dg._secret_meta(meta)
    assert kept["annotations"] == {"meta.helm.sh/release-name": "dfp"} and "bnZhcGktc2VjcmV0" not in json.dumps(kept)
