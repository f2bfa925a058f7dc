"""The playbooks as AWX runs them: ansible-runner, credentials only from the K8S_AUTH_* variables of
AWX's Kubernetes bearer-token credential (a ServiceAccount token on the local cluster, no kubeconfig
anywhere), survey answers as strings, and the least-privilege rbac/ manifests enforced by the real
API server. The Data Flywheel API is the SIMULATOR (tests/sim/flywheel_api)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.integration.automation import (
    ROOT,
    awx_credential_env,
    awx_custom_credential_env,
    clean_environ,
    delete_account,
    make_account,
    output,
    run,
    task_failures,
    token,
    totals,
)
from tests.integration.conftest import api_client, kubeconfig_for
from tests.integration.flywheel_sim import control
from tests.sim.flywheel_api.simulator import start

pytestmark = pytest.mark.cluster
# site.yml's remediations include the scratch unit's MutatingAdmissionPolicy, which the installer Role must
# cover: the profile that serves it (vanilla with the feature gate on).
PROFILE = "vanilla-map"


@pytest.fixture(scope="module")
def cluster_kubeconfig():
    return kubeconfig_for(PROFILE)


@pytest.fixture(scope="module")
def cluster(cluster_kubeconfig):
    return api_client(PROFILE)


SURVEYS = yaml.safe_load((ROOT / "awx" / "vars" / "templates.yml").read_text())["dfw_awx_surveys"]
JOBS = [{"workload_id": "primary_assistant", "client_id": "aiva-1"}]
# credential field -> the flywheel chart's Secret and its data key (upstream names)
KEY_SECRETS = {
    "ngc_api_key": ("ngc-api", "NGC_API_KEY"),
    "nvidia_api_key": ("nvidia-api", "NVIDIA_API_KEY"),
    "hf_token": ("hf-secret", "HF_TOKEN"),
    "llm_judge_api_key": ("llm-judge-api", "LLM_JUDGE_API_KEY"),
    "emb_api_key": ("emb-api", "EMB_API_KEY"),
}


# The local inventory loads the demo's log files into a search engine that `make demo` starts; these
# tests are about credentials and RBAC, so the run stage starts its jobs without loading logs.
NO_LOG_LOAD = {"flywheel_run_logs": []}


def survey_answers(*sections: str, **overrides) -> dict:
    """The survey defaults of these sections, as strings (how AWX passes answers on)."""
    answers = {q["variable"]: str(q["default"]) for s in sections for q in SURVEYS[s]}
    answers.update({k: str(v) for k, v in overrides.items()})
    return answers


def as_account(env: dict) -> client.ApiClient:
    """A Python client with the account's token and the CA, as the AWX credential gives them."""
    cfg = client.Configuration()
    cfg.host = env["K8S_AUTH_HOST"]
    cfg.ssl_ca_cert = env["K8S_AUTH_SSL_CA_CERT"]
    cfg.api_key = {"authorization": f"Bearer {env['K8S_AUTH_API_KEY']}"}
    return client.ApiClient(cfg)


def can_i(result_env: dict, tmp: Path, checks: list[dict]) -> list[dict]:
    """access_review (SelfSubjectAccessReview) with the K8S_AUTH_* credentials only."""
    playbook = tmp / f"can-i-{uuid.uuid4().hex[:6]}.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - dataflywheel.blueprint.access_review:\n        checks: " + json.dumps(checks) + "\n"
        "      register: review\n"
        "    - ansible.builtin.copy:\n        content: '{{ review.results | to_json }}'\n"
        f"        dest: {playbook}.json\n        mode: '0600'\n"
    )
    result = run(tmp, str(playbook), result_env)
    assert result.status == "successful", output(result)
    return json.loads(Path(f"{playbook}.json").read_text())


@pytest.fixture
def sim():
    server = start(unit_seconds=0.05)
    control(server, "/_sim/config", {"workloads": {"primary_assistant/aiva-1": {"records": 300}}})
    yield server
    server.shutdown()


def helm_releases(tool_env: dict, kubeconfig: str) -> dict[str, str]:
    listed = subprocess.run(
        ["helm", "list", "-A", "-o", "json", "--kubeconfig", kubeconfig],
        env=tool_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {r["name"]: r["status"] for r in json.loads(listed)}


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:6]
    return {"data-flywheel": f"awx-df-{tag}", "nemo": f"awx-nemo-{tag}", "dataflywheel-automation": f"awx-sa-{tag}"}


def test_site_with_awx_credential_variables_only(
    cluster_kubeconfig, cluster, tool_env, fixture_charts, sim, names, tmp_path, monkeypatch
):
    """Must show 2 (first half): the whole site.yml under ansible-runner, credentials from K8S_AUTH_* only,
    as an account bound to rbac/inspect.yml + rbac/installer.yml; the cluster stage installs the full
    stack from the FIXTURE charts (operators, NeMo, gateway, flywheel chart), so rbac/installer.yml is
    proven to cover them; rerun changed=0; survey strings coerced; uninstall.yml with the same account.
    The model and registry keys come only from the environment the awx/ "model and registry keys"
    credential type injects (rendered from configure.yml as AWX renders it) and end up in the chart's
    Secrets without appearing in the output."""
    account = make_account(cluster_kubeconfig, tool_env, ["inspect.yml", "installer.yml"], names)
    env, extra = {}, {}
    try:
        sa_token = token(cluster, account)
        clean_environ(monkeypatch, tmp_path / "home")
        # ansible-playbook and helm, as the execution environment has them
        monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{tool_env['PATH']}")
        keys = {field: f"dfw-awx-{field}-{uuid.uuid4().hex[:10]}" for field in KEY_SECRETS}
        env = {
            **awx_credential_env(cluster_kubeconfig, sa_token, tmp_path),
            **awx_custom_credential_env("Data Flywheel - model and registry keys", keys),
            "FLYWHEEL_API_URL": sim.url,
            "FLYWHEEL_FIXTURE_CHARTS": fixture_charts,
            "HELM_PLUGINS": tool_env["HELM_PLUGINS"],
        }
        namespace = names["data-flywheel"]
        answers = survey_answers(
            "namespaces",
            "preflight",
            "remediate",
            "run",
            flywheel_prereqs_namespace=namespace,
            remediate_namespace=namespace,
            preflight_min_gpu_nodes=1,
            flywheel_run_wait_timeout=300,
            flywheel_run_progress_interval=2,
        )
        extra = {
            **answers,
            **NO_LOG_LOAD,
            "flywheel_run_jobs": JOBS,
            "flywheel_run_artifacts_dir": str(tmp_path / "reports"),
            # an evaluator owned by the NIM Operator (its CR name): the evaluator unit runs too
            "remediate_evaluator_name": "nemoevaluator",
        }

        first = run(tmp_path, "site.yml", env, extra, inventory=str(ROOT / "inventories" / "local"))
        text = output(first)
        assert first.status == "successful", text[-6000:]
        assert totals(first)["failures"] == 0 and totals(first)["changed"] > 0
        assert sa_token not in text, "the token leaked into the job output"
        assert not [f for f, value in keys.items() if value in text], "a model or registry key leaked into the output"
        assert not {"KUBECONFIG", "K8S_AUTH_KUBECONFIG"} & set(first.config.env), "a kubeconfig was reachable"
        assert not (tmp_path / "home" / ".kube" / "config").exists()  # (helm keeps a discovery cache there)
        # what the stages did, read back as the cluster admin
        core, rbac = client.CoreV1Api(cluster), client.RbacAuthorizationV1Api(cluster)
        ns = core.read_namespace(namespace)
        assert ns.metadata.labels["app.kubernetes.io/managed-by"] == "dataflywheel.blueprint"
        for field, (secret, data_key) in KEY_SECRETS.items():
            stored = core.read_namespaced_secret(secret, namespace).data[data_key]
            assert base64.b64decode(stored).decode() == keys[field], f"{secret}.{data_key} is not {field}"
        record = core.read_namespaced_config_map("dataflywheel-blueprint", namespace).data
        assert record["platform"] == "vanilla"
        assert rbac.read_namespaced_role("nemoevaluator-extra", namespace).rules[0].verbs == ["delete"]
        maps = client.CustomObjectsApi(cluster).get_cluster_custom_object(
            "admissionregistration.k8s.io", "v1beta1", "mutatingadmissionpolicies", f"dfw-scratch-{namespace}"
        )
        assert maps["metadata"]["labels"]["dataflywheel.blueprint/remediation"] == "scratch-volume"
        releases = helm_releases(tool_env, cluster_kubeconfig)
        assert {"gpu-operator", "nim-operator", "volcano", "data-flywheel"} <= set(releases), releases
        assert set(releases.values()) == {"deployed"}, releases
        report = json.loads((tmp_path / "reports" / "report.json").read_text())
        assert [j["status"] for j in report["jobs"]] == ["completed"]
        started = len(control(sim, "/_sim/jobs")["jobs"])
        assert started == 1

        # rerun with the same (string) answers: nothing changes, no job is started
        again = run(tmp_path, "site.yml", env, extra, inventory=str(ROOT / "inventories" / "local"))
        assert again.status == "successful", output(again)[-6000:]
        assert totals(again)["changed"] == 0, output(again)[-6000:]
        assert len(control(sim, "/_sim/jobs")["jobs"]) == started

        # the survey's "false" is false: a fresh job is started (a string "false" would be truthy)
        fresh = run(
            tmp_path,
            "playbooks/flywheel_run.yml",
            env,
            {**extra, "flywheel_run_reuse_completed": "false"},
            inventory=str(ROOT / "inventories" / "local"),
        )
        assert fresh.status == "successful", output(fresh)[-6000:]
        assert len(control(sim, "/_sim/jobs")["jobs"]) == started + 1

        # outside the manifests: denied by the API server, to the account's own token
        with pytest.raises(ApiException) as err:
            client.CertificatesV1Api(as_account(env)).list_certificate_signing_request()
        assert err.value.status == 403 and account.user in err.value.body
        review = can_i(
            env,
            tmp_path,
            [
                {"verb": "create", "resource": "namespaces"},
                {"verb": "delete", "resource": "nodes"},
                {"verb": "impersonate", "resource": "users"},
                {"verb": "list", "resource": "certificatesigningrequests", "group": "certificates.k8s.io"},
            ],
        )
        assert [r["allowed"] for r in review] == [True, False, False, False], review

        # the same account takes the stack down again (the other tests expect no releases)
        gone = run(tmp_path, "playbooks/uninstall.yml", env, extra, inventory=str(ROOT / "inventories" / "local"))
        assert gone.status == "successful", output(gone)[-6000:]
        assert helm_releases(tool_env, cluster_kubeconfig) == {}
    finally:
        if helm_releases(tool_env, cluster_kubeconfig) and env:  # a failed run above: clean up as admin
            run(
                tmp_path,
                "playbooks/uninstall.yml",
                {
                    **{k: v for k, v in env.items() if not k.startswith("K8S_AUTH_")},
                    "K8S_AUTH_KUBECONFIG": cluster_kubeconfig,
                },
                extra,
                inventory=str(ROOT / "inventories" / "local"),
            )
        delete_account(cluster_kubeconfig, tool_env, account)
        try:
            client.CoreV1Api(cluster).delete_namespace(names["data-flywheel"])
        except ApiException as err:
            if err.status != 404:  # uninstall.yml removed it
                raise


def test_bad_survey_answer_stops_the_run_before_anything_changes(
    cluster_kubeconfig, cluster, tool_env, sim, names, tmp_path, monkeypatch
):
    account = make_account(cluster_kubeconfig, tool_env, ["inspect.yml", "installer.yml"], names)
    try:
        clean_environ(monkeypatch, tmp_path / "home")
        env = {**awx_credential_env(cluster_kubeconfig, token(cluster, account), tmp_path), "FLYWHEEL_API_URL": sim.url}
        namespace = names["data-flywheel"]
        extra = survey_answers(
            "namespaces",
            "preflight",
            "remediate",
            "run",
            flywheel_prereqs_namespace=namespace,
            remediate_namespace=namespace,
        )
        extra["flywheel_run_wait_timeout"] = "soon"
        extra["remediate_cluster_scoped"] = "maybe"
        result = run(tmp_path, "site.yml", env, extra, inventory=str(ROOT / "inventories" / "local"))
        assert result.status == "failed"
        failures = " ".join(task_failures(result))
        assert "flywheel_run_wait_timeout" in failures and "remediate_cluster_scoped" in failures, failures
        assert "nothing was changed" in failures
        assert totals(result)["changed"] == 0
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(cluster).read_namespace(namespace)
        assert err.value.status == 404  # the cluster stage never ran
        assert control(sim, "/_sim/jobs")["jobs"] == []
    finally:
        delete_account(cluster_kubeconfig, tool_env, account)


def test_runner_role_only_runs_jobs_and_namespaced_remediations(
    cluster_kubeconfig, cluster, tool_env, sim, names, tmp_path, monkeypatch
):
    """Must show 2 (second half): flywheel_run and the namespaced remediations with a token bound only to
    the namespaced runner Role (plus the read-only inspect ClusterRole platform detection needs)."""
    core = client.CoreV1Api(cluster)
    for key in ("data-flywheel", "nemo"):  # the platform team creates the namespaces
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=names[key])))
    account = make_account(cluster_kubeconfig, tool_env, ["inspect.yml", "runner.yml"], names)
    try:
        sa_token = token(cluster, account)
        clean_environ(monkeypatch, tmp_path / "home")
        env = {**awx_credential_env(cluster_kubeconfig, sa_token, tmp_path), "FLYWHEEL_API_URL": sim.url}
        inventory = str(ROOT / "inventories" / "local")
        answers = survey_answers(
            "namespaces",
            "preflight",
            "remediate",
            "run",
            flywheel_prereqs_namespace=names["data-flywheel"],
            remediate_namespace=names["nemo"],
            preflight_installs="false",
            remediate_cluster_scoped="false",
            flywheel_run_progress_interval=2,
        )
        extra = {
            **answers,
            **NO_LOG_LOAD,
            "flywheel_run_jobs": JOBS,
            "flywheel_run_artifacts_dir": str(tmp_path / "reports"),
            # an evaluator owned by the NIM Operator (its CR name): the evaluator unit runs too
            "remediate_evaluator_name": "nemoevaluator",
        }

        for playbook in ("playbooks/preflight.yml", "playbooks/remediate.yml", "playbooks/flywheel_run.yml"):
            result = run(tmp_path, playbook, env, extra, inventory=inventory)
            assert result.status == "successful", f"{playbook}:\n{output(result)[-6000:]}"
            assert sa_token not in output(result)
        extra_role = client.RbacAuthorizationV1Api(cluster).read_namespaced_role("nemoevaluator-extra", names["nemo"])
        assert extra_role.rules[0].resources == ["secrets"] and extra_role.rules[0].verbs == ["delete"]
        assert json.loads((tmp_path / "reports" / "report.json").read_text())["jobs"][0]["status"] == "completed"

        # the preflight names what an install would need and this account lacks, before any change
        denied = run(
            tmp_path, "playbooks/preflight.yml", env, {**extra, "preflight_installs": "true"}, inventory=inventory
        )
        assert denied.status == "failed"
        message = " ".join(task_failures(denied))
        assert "[create namespaces]" in message and "rbac/installer.yml" in message, message
        assert "[create mutatingadmissionpolicies.admissionregistration.k8s.io]" in message, message
        assert "[create jobs.batch" not in message  # the runner Role grants that

        # doing it anyway: the real API server refuses the cluster-scoped remediation with 403
        forbidden = run(
            tmp_path, "playbooks/remediate.yml", env, {**extra, "remediate_cluster_scoped": "true"}, inventory=inventory
        )
        assert forbidden.status == "failed"
        refusal = " ".join(task_failures(forbidden))
        assert "403" in refusal or "Forbidden" in refusal or "forbidden" in refusal, refusal
        with pytest.raises(ApiException) as err:
            client.CustomObjectsApi(cluster).get_cluster_custom_object(
                "admissionregistration.k8s.io", "v1beta1", "mutatingadmissionpolicies", f"dfw-scratch-{names['nemo']}"
            )
        assert err.value.status == 404

        review = can_i(
            env,
            tmp_path,
            [
                {
                    "verb": "create",
                    "resource": "roles",
                    "group": "rbac.authorization.k8s.io",
                    "namespace": names["nemo"],
                },
                {"verb": "create", "resource": "jobs", "group": "batch", "namespace": names["data-flywheel"]},
                {"verb": "create", "resource": "namespaces"},
                {"verb": "get", "resource": "secrets", "namespace": "default"},
                {"verb": "create", "resource": "roles", "group": "rbac.authorization.k8s.io", "namespace": "default"},
                {
                    "verb": "bind",
                    "resource": "clusterroles",
                    "group": "rbac.authorization.k8s.io",
                    "name": "cluster-admin",
                    "namespace": names["nemo"],
                },
            ],
        )
        assert [r["allowed"] for r in review] == [True, True, False, False, False, False], review
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(as_account(env)).list_namespaced_secret("default")
        assert err.value.status == 403
    finally:
        delete_account(cluster_kubeconfig, tool_env, account)
        for key in ("data-flywheel", "nemo"):
            core.delete_namespace(names[key])
