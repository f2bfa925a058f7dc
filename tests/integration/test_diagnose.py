"""The doctor (playbooks/diagnose.yml: role diagnose, module flywheel_diagnose) on the local cluster.

ONE converged scene per module (profile vanilla-map, which serves MutatingAdmissionPolicy): a NeMo namespace
converged by the remediate role (operator-style evaluator Role and NemoEvaluator CR, models registered in the
Entity Store SIMULATOR, /scratch policy), NGC pull Secrets from the flywheel_prereqs role, and the flywheel API
and NeMo SIMULATORS with a completed job. Each field failure test breaks ONE thing, runs the doctor in-process,
asserts the finding, its evidence and the named fix, applies that fix (the role's unit, or the named manual
step) and asserts the doctor reports it healthy again. The last tests run the whole playbook with the read-only
inspect account (nothing written: cluster snapshot equal before/after; secret scan of the output and reports),
and diagnose a flywheel chart installed by plain `helm install` with its defaults. The PVC permission failure
needs OpenShift's UID ranges: it runs on a namespace of the openshift profile. Container logs are real pods/log
reads through the API server, served by kwok from files the tests write (tests/integration/kwok_logs.py).
"""

from __future__ import annotations

import json
import secrets as pysecrets
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration import cluster_state
from tests.integration.automation import CREDENTIAL_ENV, awx_credential_env, delete_account, make_account, token
from tests.integration.conftest import api_client, kubeconfig_for
from tests.integration.flywheel_sim import control
from tests.integration.kwok_logs import serve_logs
from tests.integration.nemo_sim import seed_job
from tests.integration.remediate_run import fresh_namespace, run_role
from tests.integration.secret_scan import scan_files, scan_text
from tests.integration.test_remediate_units import EVALUATOR, evaluator_cr, job_pod, operator_style_evaluator
from tests.sim.embedding_nim.simulator import start as start_embedding
from tests.sim.entity_store.simulator import start as start_entity_store
from tests.sim.flywheel_api.simulator import customization_id
from tests.sim.flywheel_api.simulator import start as start_flywheel
from tests.sim.hf_hub.simulator import start as start_hub
from tests.sim.nemo_platform.simulator import start as start_nemo

pytestmark = pytest.mark.cluster
PROFILE = "vanilla-map"
MODELS = [{"name": "meta/llama-3.2-1b-instruct", "nim_service": "llama-3-2-1b-instruct"}]
MODEL_IDS = [m["name"] for m in MODELS]
NIM = "meta/llama-3.2-1b-instruct"
GATED = "meta-llama/Llama-3.2-1B-Instruct"
PULL_SECRET = "nvcrimagepullsecret"
UPSTREAM = "nv-nvidia-blueprint-data-flywheel"  # where the chart puts its Secrets by default
HOLD = "dataflywheel.test/hold"  # a finalizer no controller removes: holds a deleted Pod in Terminating
# the customizer's own log lines (field report seeds/000), served as its container log by kwok (Logs CRD)
CUSTOMIZER_LOG = [
    "INFO: customizer - Loaded in-cluster K8s config",
    'INFO   127.0.0.6:44565 - "POST /v1/customization/jobs HTTP/1.1" 200',
    'INFO   127.0.0.6:44565 - "GET /v1/customization/jobs/cust-9Hkmp47jdht6cPxgA9S7PL/status HTTP/1.1" 200',
]
KEYERROR_TRACEBACK = [
    "ERROR: customizer - JobWatcher(cust-9Hkmp47jdht6cPxgA9S7PL) caught exception in watch loop",
    "Traceback (most recent call last):",
    '  File "/app/.venv/lib/python3.11/site-packages/customizer/jobs/tasks.py", line 173, in watch',
    "    if await self.done():",
    '  File "/app/.venv/lib/python3.11/site-packages/customizer/jobs/tasks.py", line 107, in done',
    '    ntj_state = ntj_status["state"]',
    "KeyError: 'state'",
]


class Scene:
    def __init__(self, tool_env, tmp: Path):
        self.tool_env = tool_env
        self.tmp = tmp
        self.kubeconfig = kubeconfig_for(PROFILE)
        self.api = api_client(PROFILE)
        suffix = uuid.uuid4().hex[:6]
        self.ns = f"dg-nemo-{suffix}"
        self.secrets = {
            "ngc": "nvapi-" + pysecrets.token_hex(20),
            "hf": "hf_" + pysecrets.token_hex(16),
            "emb": "nvapi-" + pysecrets.token_hex(20),
        }
        core = client.CoreV1Api(self.api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns)))
        self.store = start_entity_store()
        self.flywheel = start_flywheel(unit_seconds=0.05, nims=[NIM])
        self.nemo = start_nemo(unit_seconds=0.05)
        self.embedding = start_embedding()
        self.hub = start_hub()
        self.hub.state.tokens[self.secrets["hf"]] = "flywheel-user"
        self.hub.state.add_repo(GATED, gated="manual", granted={"flywheel-user"})
        control(self.flywheel, "/_sim/config", {"nemo_base_url": self.nemo.url})
        # what the NIM operator and the NeMo install leave: the evaluator's Role without delete on secrets, its CR
        # pointing at the Entity Store Service, a customizer Deployment pulling from nvcr.io with the NGC pull Secret
        operator_style_evaluator(self.api, self.ns)
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            "apps.nvidia.com", "v1alpha1", self.ns, "nemoevaluators", evaluator_cr(self.ns, self.endpoint)
        )
        core.create_namespaced_service(
            self.ns,
            client.V1Service(
                metadata=client.V1ObjectMeta(name="nemoentitystore-sample"),
                spec=client.V1ServiceSpec(selector={"app": "entitystore"}, ports=[client.V1ServicePort(port=8000)]),
            ),
        )
        client.AppsV1Api(self.api).create_namespaced_deployment(
            self.ns,
            client.V1Deployment(
                metadata=client.V1ObjectMeta(name="nemocustomizer-sample"),
                spec=client.V1DeploymentSpec(
                    replicas=1,
                    selector=client.V1LabelSelector(match_labels={"app": "customizer"}),
                    template=client.V1PodTemplateSpec(
                        metadata=client.V1ObjectMeta(labels={"app": "customizer"}),
                        spec=client.V1PodSpec(
                            image_pull_secrets=[client.V1LocalObjectReference(name=PULL_SECRET)],
                            containers=[
                                client.V1Container(
                                    name="customizer", image="nvcr.io/nvidia/nemo-microservices/customizer:25.08"
                                )
                            ],
                        ),
                    ),
                ),
            ),
        )
        serve_logs(self.api, self.ns, self.customizer_pod(), {"customizer": CUSTOMIZER_LOG}, tmp)
        self.remediate_vars = {
            "remediate_namespace": self.ns,
            "remediate_evaluator_name": EVALUATOR,
            "remediate_entity_store_url": self.store.url,
            "remediate_nemo_models": MODELS,
            "remediate_evaluator_entity_store_endpoint": self.endpoint,
            "remediate_scratch_required": True,
        }
        self.prereqs_vars = {
            "flywheel_prereqs_credential_namespaces": [self.ns],
            "flywheel_prereqs_ngc_api_key": self.secrets["ngc"],
            "flywheel_prereqs_hf_token": self.secrets["hf"],
        }
        converge = run_role(self.remediate_vars, kubeconfig=self.kubeconfig, tmp_path=tmp)
        assert converge.ok, converge.failure_msg() or converge.text()[-3000:]
        prereqs = run_role(
            self.prereqs_vars,
            kubeconfig=self.kubeconfig,
            tasks_from="credentials",
            role="flywheel_prereqs",
            tmp_path=tmp,
        )
        assert prereqs.ok, prereqs.failure_msg() or prereqs.text()[-3000:]
        self.job_id = self.run_flywheel_job("ok")

    def customizer_pod(self, other_than=None, timeout=90):
        """The name of the customizer Deployment's running Pod (bound to a node), once there is one but `other_than`."""
        core = client.CoreV1Api(self.api)
        deadline = time.monotonic() + timeout
        while True:
            pods = [
                p.metadata.name
                for p in core.list_namespaced_pod(self.ns, label_selector="app=customizer").items
                if p.spec.node_name and not p.metadata.deletion_timestamp and p.metadata.name != other_than
            ]
            if pods:
                return pods[0]
            assert time.monotonic() < deadline, f"no customizer Pod in {self.ns} but {other_than} after {timeout}s"
            time.sleep(0.5)

    @property
    def endpoint(self):
        return f"http://nemoentitystore-sample.{self.ns}.svc.cluster.local:8000"

    def run_flywheel_job(self, scenario, seed=None):
        """A flywheel job of workload `scenario` on the simulators, waited for (in-process module calls)."""
        from tests.harness import run_module  # noqa: PLC0415

        control(self.flywheel, "/_sim/config", {"workloads": {"pa": {"scenario": scenario}}})
        started = run_module("flywheel_job", {"api_url": self.flywheel.url, "workload_id": "pa", "client_id": "aiva"})
        job_id = started["job"]["id"]
        if seed:
            seed_job(self.nemo, "customization", customization_id(job_id, 0), scenario=seed, age_units=5)
        done = run_module(
            "flywheel_job",
            {
                "api_url": self.flywheel.url,
                "job_id": job_id,
                "wait": True,
                "wait_sleep": 1,
                "fail_on_failed_parts": False,
            },
        )
        assert done["job"]["status"] in ("completed", "failed"), done
        return job_id

    def doctor(self, ansible_module, **args):
        """flywheel_diagnose in-process, as the role calls it, on the scene's NeMo namespace."""
        params = {
            "namespaces": [self.ns],
            "flywheel_url": self.flywheel.url,
            "nemo_url": self.nemo.url,
            "entity_store_url": self.store.url,
            "models": MODEL_IDS,
            **args,
        }
        result = ansible_module("flywheel_diagnose", params, env={"K8S_AUTH_KUBECONFIG": self.kubeconfig})
        assert not result.get("failed"), result.get("msg")
        assert result["changed"] is False
        return result["report"]

    def close(self):
        for server in (self.store, self.flywheel, self.nemo, self.embedding, self.hub):
            server.shutdown()
        client.CoreV1Api(self.api).delete_namespace(self.ns)
        custom = client.CustomObjectsApi(self.api)
        for plural in ("mutatingadmissionpolicybindings", "mutatingadmissionpolicies"):
            try:
                custom.delete_cluster_custom_object(
                    "admissionregistration.k8s.io", "v1beta1", plural, f"dfw-scratch-{self.ns}"
                )
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture(scope="module")
def scene(tool_env, tmp_path_factory):
    built = Scene(tool_env, tmp_path_factory.mktemp("diagnose"))
    yield built
    built.close()


def ids(report):
    return [f["id"] for f in report["findings"]]


def only(report, check_id):
    found = [f for f in report["findings"] if f["id"] == check_id]
    assert found, f"no {check_id} finding: {json.dumps(report['findings'], indent=1)[:3000]}"
    return found[0]


def fix_unit(scene, tasks_from, **extra):
    run = run_role(
        {**scene.remediate_vars, **extra}, kubeconfig=scene.kubeconfig, tasks_from=tasks_from, tmp_path=scene.tmp
    )
    assert run.ok, run.failure_msg() or run.text()[-3000:]
    return run


# ---------------------------------------------------------------- the converged scene


def test_converged_scene_has_no_finding(scene, ansible_module):
    report = scene.doctor(ansible_module)
    assert report["healthy"], json.dumps(report["findings"], indent=1)
    assert report["findings"] == []
    found = report["discovered"]
    assert found["operator_resources"]["NemoEvaluator"][0]["name"] == EVALUATOR
    assert found["platform"] == "vanilla"


# ---------------------------------------------------------------- field failures: break, diagnose, fix, healthy


def test_evaluator_cannot_delete_secrets(scene, ansible_module):
    rbac = client.RbacAuthorizationV1Api(scene.api)
    rbac.delete_namespaced_role_binding(f"{EVALUATOR}-extra", scene.ns)
    finding = only(scene.doctor(ansible_module), "evaluator-secret-delete")
    evidence = " ".join(finding["evidence"])
    assert f"ServiceAccount {scene.ns}/{EVALUATOR} may not delete secrets" in evidence
    assert f"Role {EVALUATOR} grants secrets: create, get, list, watch (no delete)" in evidence
    assert finding["fix"]["role"] == "dataflywheel.blueprint.remediate"
    assert finding["fix"]["unit"] == "evaluator-secret-delete"
    fix_unit(scene, "all/evaluator_rbac")
    assert "evaluator-secret-delete" not in ids(scene.doctor(ansible_module))


def test_evaluator_entity_store_url_reset(scene, ansible_module):
    client.CustomObjectsApi(scene.api).patch_namespaced_custom_object(
        "apps.nvidia.com",
        "v1alpha1",
        scene.ns,
        "nemoevaluators",
        EVALUATOR,
        {"spec": {"entitystore": {"endpoint": "http://nemo-entity-store:8000"}}},
    )
    finding = only(scene.doctor(ansible_module), "evaluator-entity-store-url")
    assert (
        f"NemoEvaluator {scene.ns}/{EVALUATOR} spec.entitystore.endpoint=http://nemo-entity-store:8000"
        in (finding["evidence"])
    )
    assert "nemoentitystore-sample" in finding["evidence"][1]
    assert finding["fix"]["variable"] == "remediate_evaluator_entity_store_endpoint"
    fix_unit(scene, "all/evaluator_endpoint")
    assert "evaluator-entity-store-url" not in ids(scene.doctor(ansible_module))


def test_base_eval_404_from_entity_store(scene, ansible_module):
    with urllib.request.urlopen(  # noqa: S310 - the loopback simulator
        urllib.request.Request(f"{scene.store.url}/v1/models/{NIM}", method="DELETE"), timeout=10
    ) as resp:
        assert resp.status in (200, 204)
    finding = only(scene.doctor(ansible_module), "entity-store-404")
    assert finding["evidence"] == [f"GET {scene.store.url}/v1/models/{NIM} -> 404: Model {NIM} not found"]
    assert finding["fix"]["unit"] == "entity-store-registration"
    fix_unit(scene, "all/entity_store")
    assert "entity-store-404" not in ids(scene.doctor(ansible_module))


def test_customizer_jobs_without_scratch(scene, ansible_module):
    custom = client.CustomObjectsApi(scene.api)
    for plural in ("mutatingadmissionpolicybindings", "mutatingadmissionpolicies"):
        custom.delete_cluster_custom_object(
            "admissionregistration.k8s.io", "v1beta1", plural, f"dfw-scratch-{scene.ns}"
        )
    deadline = time.time() + 30
    pod = job_pod(scene.api, scene.ns, "cust-x1-entity-handler-0")
    while any(v.name == "scratch" for v in pod.spec.volumes or []) and time.time() < deadline:
        # the API server may still hold the deleted policy for a moment: a new Job then
        time.sleep(2)
        pod = job_pod(scene.api, scene.ns, f"cust-x{int(time.time())}-entity-handler-0")
    finding = only(scene.doctor(ansible_module), "scratch-volume")
    evidence = " ".join(finding["evidence"])
    assert f"no MutatingAdmissionPolicy+binding or Kyverno ClusterPolicy dfw-scratch-{scene.ns}" in evidence
    assert f"Pod {scene.ns}/{pod.metadata.name} (job-name=" in evidence and "has no /scratch volume" in evidence
    assert finding["fix"] == {
        "role": "dataflywheel.blueprint.remediate",
        "unit": "scratch-volume",
        "variable": "remediate_scratch_mechanism",
    }
    fix_unit(scene, "admission")
    assert "scratch-volume" not in ids(scene.doctor(ansible_module))
    assert any(v.name == "scratch" for v in job_pod(scene.api, scene.ns, "cust-x2-entity-handler-0").spec.volumes)


def test_image_pulls_without_ngc_credentials(scene, ansible_module):
    client.CoreV1Api(scene.api).delete_namespaced_secret(PULL_SECRET, scene.ns)
    finding = only(scene.doctor(ansible_module), "image-pull-credentials")
    assert finding["evidence"] == [
        f"Deployment {scene.ns}/nemocustomizer-sample pulls nvcr.io/nvidia/nemo-microservices/customizer:25.08 with "
        f"image pull Secret {PULL_SECRET}, which does not exist in {scene.ns}"
    ]
    assert finding["fix"]["role"] == "dataflywheel.blueprint.flywheel_prereqs"
    assert "flywheel_ngc_api_key" in finding["fix"]["variable"]
    run = run_role(
        scene.prereqs_vars,
        kubeconfig=scene.kubeconfig,
        tasks_from="credentials",
        role="flywheel_prereqs",
        tmp_path=scene.tmp,
    )
    assert run.ok, run.failure_msg()
    assert "image-pull-credentials" not in ids(scene.doctor(ansible_module))


def test_training_job_is_pending(scene, ansible_module):
    scene.run_flywheel_job("customization_pending", seed="training_pending")
    finding = only(scene.doctor(ansible_module), "training-pending")
    evidence = " ".join(finding["evidence"])
    assert "customization failed" in evidence and "The training job is pending" in evidence
    assert "customizer status log" in evidence  # the NeMo customizer's own words (nemo_jobs.enrich_summary)
    assert "scratch unit" in evidence  # nemo_jobs' hint
    assert finding["fix"]["unit"] == "scratch-volume"
    scene.run_flywheel_job("ok")  # the scratch unit is in place (test above); the job again
    assert ids(scene.doctor(ansible_module)) == []


def test_customizer_keyerror_state(scene, ansible_module, tmp_path):
    """Seed 000: a failing entity-handler Job copied by hand with /scratch added; the customizer's watcher of that
    customization then fails on its NemoTrainingJob without status: KeyError: 'state' in the customizer's log,
    read through the API server (pods/log) from kwok."""
    core, batch = client.CoreV1Api(scene.api), client.BatchV1Api(scene.api)
    handmade = "cust-9hkmp47jdht6cpxga9s7pl-entity-handler-0-fixed"
    volume = client.V1Volume(name="scratch", empty_dir=client.V1EmptyDirVolumeSource())
    batch.create_namespaced_job(
        scene.ns,
        client.V1Job(
            metadata=client.V1ObjectMeta(name=handmade, labels={"app": "nemo-k8s-operator"}),
            spec=client.V1JobSpec(
                backoff_limit=5,
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        image_pull_secrets=[client.V1LocalObjectReference(name=PULL_SECRET)],
                        volumes=[volume],
                        containers=[
                            client.V1Container(
                                name="main",
                                image="nvcr.io/nvidia/nemo-microservices/nds-v2-huggingface-cli:25.08",
                                volume_mounts=[client.V1VolumeMount(name="scratch", mount_path="/scratch")],
                            )
                        ],
                    )
                ),
            ),
        ),
    )
    pod = scene.customizer_pod()
    serve_logs(scene.api, scene.ns, pod, {"customizer": CUSTOMIZER_LOG + KEYERROR_TRACEBACK}, tmp_path)
    report = scene.doctor(ansible_module)
    assert ids(report) == ["customizer-keyerror-state"]
    finding = only(report, "customizer-keyerror-state")
    assert finding["evidence"] == [
        f"Pod {scene.ns}/{pod} container customizer log: KeyError: 'state'",
        "the error it follows: " + KEYERROR_TRACEBACK[0],
    ]
    assert finding["where"] == f"{scene.ns}/{pod}"
    assert finding["fix"]["role"] == "dataflywheel.blueprint.remediate" and finding["fix"]["unit"] == "scratch-volume"
    assert "delete the hand-made entity-handler Jobs, restart the customizer" in finding["fix"]["manual"]
    # the named fix: the hand-made Job deleted, the scratch unit applied, the customizer restarted (its
    # ReplicaSet makes a new Pod, whose log is its own), the customization started again. The old Pod terminates
    # for up to its grace period on a real cluster; kwok deletes it when it gets to it, which on a loaded machine
    # can be after the doctor ran (CI). A finalizer holds it there while the doctor runs, so its log is certainly
    # still served and must not count.
    batch.delete_namespaced_job(handmade, scene.ns, propagation_policy="Background")
    fix_unit(scene, "admission")
    core.patch_namespaced_pod(pod, scene.ns, {"metadata": {"finalizers": [HOLD]}})
    core.delete_namespaced_pod(pod, scene.ns)
    try:
        restarted = scene.customizer_pod(other_than=pod)
        serve_logs(scene.api, scene.ns, restarted, {"customizer": CUSTOMIZER_LOG}, tmp_path)
        scene.run_flywheel_job("ok")
        assert core.read_namespaced_pod(pod, scene.ns).metadata.deletion_timestamp
        assert core.read_namespaced_pod_log(pod, scene.ns, container="customizer").splitlines()[-1:] == [
            KEYERROR_TRACEBACK[-1]
        ]
        assert ids(scene.doctor(ansible_module)) == []
    finally:
        core.patch_namespaced_pod(pod, scene.ns, {"metadata": {"finalizers": None}})


def test_job_completed_with_failed_parts(scene, ansible_module):
    scene.run_flywheel_job("eval_failed")
    finding = only(scene.doctor(ansible_module), "flywheel-job-failed-parts")
    assert "status completed" in finding["evidence"][0] and f"{NIM} icl-eval failed" in finding["evidence"][0]
    assert finding["fix"]["role"] == "dataflywheel.blueprint.flywheel_run"
    scene.run_flywheel_job("ok")
    assert ids(scene.doctor(ansible_module)) == []


def test_nfs_names_unresolvable_on_nodes(scene, ansible_module):
    """The kubelet's FailedMount event (written here as a kubelet would: kwok mounts nothing)."""
    core = client.CoreV1Api(scene.api)
    event = core.create_namespaced_event(
        scene.ns,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="nim-cache.mount"),
            involved_object=client.V1ObjectReference(kind="Pod", name="nim-cache-0", namespace=scene.ns),
            reason="FailedMount",
            message='MountVolume.SetUp failed for volume "pvc-1" : mount failed: exit status 32 '
            "Output: mount.nfs: Failed to resolve server files01: Name or service not known",
            type="Warning",
        ),
    )
    finding = only(scene.doctor(ansible_module), "nfs-name-resolution")
    assert "Failed to resolve server files01" in finding["evidence"][0]
    assert "nutanix_resolver" in finding["fix"]["unit"] and "FQDN" in finding["fix"]["manual"]
    # the fix is on the nodes (search domain or an FQDN StorageClass); once mounts work the kubelet's event ages out
    core.delete_namespaced_event(event.metadata.name, scene.ns)
    assert ids(scene.doctor(ansible_module)) == []


# ---------------------------------------------------------------- OpenShift: the model PVC and the namespace UID range

MODEL_PVC = "finetuning-ms-models-pvc"
MODEL_MOUNT = "/mount/models"
UID_RANGE = "openshift.io/sa.scc.uid-range"
DENIED = f"Cannot read directory '{MODEL_MOUNT}/llama32_1b-instruct_2_0'. Reason: [Errno 13] Permission denied"
TRAINING_LOG = [f"INFO: loading the base model from {MODEL_MOUNT}/llama32_1b-instruct_2_0", "INFO: step 1/50"]


@pytest.fixture(scope="module")
def openshift_ns():
    """A namespace of the openshift profile (its UID range written by the emulated cluster-policy-controller) with
    the customizer's base model PVC, bound."""
    kubeconfig = kubeconfig_for("openshift")
    api, ns = fresh_namespace(kubeconfig, "dg-ocp")
    core = client.CoreV1Api(api)
    core.create_namespaced_persistent_volume_claim(
        ns,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name=MODEL_PVC),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                resources=client.V1VolumeResourceRequirements(requests={"storage": "50Gi"}),
            ),
        ),
    )
    deadline = time.monotonic() + 60
    while not (
        (core.read_namespace(ns).metadata.annotations or {}).get(UID_RANGE)
        and core.read_namespaced_persistent_volume_claim(MODEL_PVC, ns).status.phase == "Bound"
        and core.list_namespaced_service_account(ns, field_selector="metadata.name=default").items
    ):
        assert time.monotonic() < deadline, f"{ns}: no UID range, default ServiceAccount or bound PVC after 60 s"
        time.sleep(0.5)
    yield kubeconfig, api, ns
    core.delete_namespace(ns)


def training_pod(api, ns, job_name, uid):
    """A customization's training Job as the customizer creates it, the base model PVC at /mount/models, running as
    the namespace's UID (what OpenShift's SCC admission assigns; the emulated admission refuses one outside the
    range); the name of its Pod once bound to a node."""
    client.BatchV1Api(api).create_namespaced_job(
        ns,
        client.V1Job(
            metadata=client.V1ObjectMeta(name=job_name),
            spec=client.V1JobSpec(
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        volumes=[
                            client.V1Volume(
                                name="models",
                                persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                                    claim_name=MODEL_PVC
                                ),
                            )
                        ],
                        containers=[
                            client.V1Container(
                                name="training",
                                image="nvcr.io/nvidia/nemo-microservices/customizer:25.08",
                                security_context=client.V1SecurityContext(run_as_user=uid),
                                volume_mounts=[client.V1VolumeMount(name="models", mount_path=MODEL_MOUNT)],
                            )
                        ],
                    )
                ),
            ),
        ),
    )
    core, deadline = client.CoreV1Api(api), time.monotonic() + 90
    while True:
        pods = [
            p.metadata.name
            for p in core.list_namespaced_pod(ns, label_selector=f"job-name={job_name}").items
            if p.spec.node_name
        ]
        if pods:
            return pods[0]
        assert time.monotonic() < deadline, f"Job {ns}/{job_name} has no scheduled Pod after 90 s"
        time.sleep(0.5)


def test_pvc_permission_denied_from_the_uid_range(openshift_ns, ansible_module, tmp_path):
    """Seed 001: the base model files on the customizer's PVC belong to UID 1000 (the first deployment); after a
    redeploy OpenShift runs the training Pods with a UID of the namespace's range, and they log Permission denied.
    The doctor reads that log on the openshift profile; the named fix is the remediate unit's ownership Job."""
    kubeconfig, api, ns = openshift_ns
    uid_range = client.CoreV1Api(api).read_namespace(ns).metadata.annotations[UID_RANGE]
    uid = int(uid_range.split("/")[0])

    def doctor():
        result = ansible_module(
            "flywheel_diagnose",
            {"namespaces": [ns], "checks": ["model-pvc-ownership"]},
            env={"K8S_AUTH_KUBECONFIG": kubeconfig},
        )
        assert not result.get("failed") and result["changed"] is False, result.get("msg")
        # every training Pod's log was read (the ownership Job's Pod, whose log kwok has no file for, is not)
        unread = [n for n in result["report"]["not_checked"] if "dfw-model-perms-" not in n]
        assert not unread, unread
        return result["report"]

    first = training_pod(api, ns, "cust-x1-training", uid)
    serve_logs(api, ns, first, {"training": TRAINING_LOG}, tmp_path)
    healthy = doctor()
    assert healthy["discovered"]["platform"] == "openshift" and ids(healthy) == []
    broken = training_pod(api, ns, "cust-x2-training", uid)
    serve_logs(api, ns, broken, {"training": ["INFO: customization cust-x2 starting", DENIED]}, tmp_path)
    report = doctor()
    assert [(f["id"], f["where"]) for f in report["findings"]] == [("model-pvc-ownership", f"{ns}/{broken}")]
    finding = report["findings"][0]
    assert finding["evidence"][0].startswith(f"Pod {ns}/{broken} container training log at ")
    assert finding["evidence"][0].endswith(": " + DENIED)
    assert finding["evidence"][1:] == [
        f"PVC {MODEL_PVC} mounted at {MODEL_MOUNT}; the container runs as UID {uid}; namespace {ns} has "
        f"{UID_RANGE} {uid_range}",
        f"no ownership Job for PVC {MODEL_PVC} (dfw-model-perms-{MODEL_PVC}-*)",
    ]
    assert finding["fix"] == {
        "role": "dataflywheel.blueprint.remediate",
        "unit": "openshift-model-ownership",
        "variable": "remediate_model_pvc",
    }
    fix = run_role(
        {
            "remediate_namespace": ns,
            "remediate_model_pvc": MODEL_PVC,
            "remediate_model_mount_path": MODEL_MOUNT,
            "remediate_evaluator_name": "",
            "remediate_scratch_required": False,
        },
        kubeconfig=kubeconfig,
        tasks_from="main",
        tmp_path=tmp_path,
    )
    assert fix.ok, fix.failure_msg() or fix.text()[-3000:]
    assert ids(doctor()) == []  # the denial was logged before the ownership Job completed
    again = training_pod(api, ns, "cust-x3-training", uid)
    serve_logs(api, ns, again, {"training": TRAINING_LOG}, tmp_path)
    assert ids(doctor()) == []
    # a denial logged after the ownership Job completed is not history: the fix did not hold
    time.sleep(1.1)  # log and Job times are compared to the second
    serve_logs(api, ns, again, {"training": [*TRAINING_LOG, DENIED]}, tmp_path)
    later = only(doctor(), "model-pvc-ownership")
    assert later["where"] == f"{ns}/{again}" and ", before this denial" in later["evidence"][2], later["evidence"]


# ---------------------------------------------------------------- the playbook: reused checks, read-only account


def playbook_vars(scene, report_dir, **extra):
    return {
        "diagnose_namespaces": [scene.ns],
        "diagnose_flywheel_url": scene.flywheel.url,
        "diagnose_nemo_url": scene.nemo.url,
        "diagnose_entity_store_url": scene.store.url,
        "diagnose_models": MODEL_IDS,
        "diagnose_embedding_url": scene.embedding.url + "/v1",
        "diagnose_embedding_api_key": scene.secrets["emb"],
        "diagnose_hf_models": [GATED],
        "diagnose_hf_endpoint": scene.hub.url,
        "diagnose_report_dir": str(report_dir),
        **extra,
    }


def test_wrong_embedding_dimension_and_gated_model_through_the_playbook(scene, ansible_playbook, tmp_path):
    """The preflight role's own embedding and Hugging Face checks, run by the role in check-only form: their
    failure messages are the evidence; then the fixes they name (a 2048-d model; the licence accepted on the
    Hub, which the simulator grants) and a healthy run."""
    other = "hf_" + pysecrets.token_hex(16)
    scene.hub.state.tokens[other] = "someone-else"
    run = ansible_playbook(
        "playbooks/diagnose.yml",
        playbook_vars(
            scene, tmp_path / "broken", diagnose_embedding_model="nvidia/nv-embedqa-e5-v5", diagnose_hf_token=other
        ),
        env={"K8S_AUTH_KUBECONFIG": scene.kubeconfig},
    )
    assert run.returncode == 0, run.tail()
    report = json.loads((tmp_path / "broken" / "diagnosis.json").read_text())
    assert sorted(ids(report)) == ["embedding-dimension", "hf-gated-model"]
    emb = only(report, "embedding-dimension")
    assert "returns 1024-dimensional vectors but the flywheel's Elasticsearch index expects 2048" in emb["evidence"][0]
    assert (
        emb["fix"]["role"] == "dataflywheel.blueprint.preflight"
        and "preflight_embedding_model" in emb["fix"]["variable"]
    )
    hf = only(report, "hf-gated-model")
    assert "403 gated repo" in hf["evidence"][0] and GATED in hf["evidence"][0]
    assert "accept the licence" in hf["fix"]["manual"]
    assert "embedding-dimension" in run.stdout and "hf-gated-model" in run.stdout  # the summary in the run
    assert not scan_text(run.stdout + run.stderr, {"hf": other, "emb": scene.secrets["emb"]}, "output")
    scene.hub.state.repos[GATED]["granted"].add("someone-else")  # the licence accepted with that account
    fixed = ansible_playbook(
        "playbooks/diagnose.yml",
        playbook_vars(scene, tmp_path / "fixed", diagnose_hf_token=other),
        env={"K8S_AUTH_KUBECONFIG": scene.kubeconfig},
    )
    assert fixed.returncode == 0, fixed.tail()
    assert ids(json.loads((tmp_path / "fixed" / "diagnosis.json").read_text())) == []


@pytest.fixture
def inspect_account(scene):
    tag = uuid.uuid4().hex[:6]
    names = {"data-flywheel": f"dg-df-{tag}", "nemo": scene.ns, "dataflywheel-automation": f"dg-sa-{tag}"}
    account = make_account(scene.kubeconfig, scene.tool_env, ["inspect.yml", "diagnose.yml"], names)
    yield account
    delete_account(scene.kubeconfig, scene.tool_env, account)


def test_healthy_scene_read_only_with_the_inspect_account(scene, ansible_playbook, inspect_account, tmp_path):
    """Must show 2 and 4: the whole playbook with the token of an account bound to rbac/inspect.yml (+ the Secret
    names of rbac/diagnose.yml) and nothing else: no finding, no write (every object's resourceVersion unchanged),
    and no secret in the output or the report files."""
    env = {name: None for name in CREDENTIAL_ENV}
    env.update(awx_credential_env(scene.kubeconfig, token(scene.api, inspect_account), tmp_path))
    kinds = [
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Namespace",
    ]
    before = cluster_state.snapshot(scene.api, [scene.ns], kinds)
    run = ansible_playbook(
        "playbooks/diagnose.yml",
        playbook_vars(scene, tmp_path / "report", diagnose_hf_token=scene.secrets["hf"]),
        env=env,
    )
    after = cluster_state.snapshot(scene.api, [scene.ns], kinds)
    assert run.returncode == 0, run.tail()
    assert "Data Flywheel doctor: healthy, no finding" in run.stdout
    report = json.loads((tmp_path / "report" / "diagnosis.json").read_text())
    assert report["healthy"] and report["findings"] == [], report["findings"]
    assert not [n for n in report["not_checked"] if "Secret names" in n or "answered 403" in n], report["not_checked"]
    assert not [n for n in report["not_checked"] if n.startswith("log of Pod")], "pods/log is read with the account"
    assert cluster_state.diff(before, after) == ""
    assert "changed=0" in run.stdout
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "diagnosis.html",
        "diagnosis.json",
        "diagnosis.md",
    ]
    leaks = scan_text(run.stdout + run.stderr, scene.secrets, "output") + scan_files(
        [tmp_path / "report"], scene.secrets
    )
    assert not leaks, [str(leak) for leak in leaks]


# ---------------------------------------------------------------- a deployment this collection did not install


def test_plain_helm_install_is_found_and_its_misplaced_secrets_diagnosed(
    scene, ansible_module, tool_env, fixture_charts
):
    """Must show 3: the flywheel chart installed as the upstream guide does (plain `helm install`, its defaults) into
    another namespace: the doctor finds it without being told where, and reports that the chart's Secrets landed in
    nv-nvidia-blueprint-data-flywheel while the Deployments look for them in the release namespace; the named fix
    (the chart's `namespace` value set to the release namespace, as the flywheel role sets it) makes that healthy."""
    core = client.CoreV1Api(scene.api)
    ns, release = f"dg-plain-{uuid.uuid4().hex[:6]}", "dfp"
    created_secret_ns = False
    try:
        core.read_namespace(UPSTREAM)
    except client.ApiException:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=UPSTREAM)))
        created_secret_ns = True
    chart = str(Path(fixture_charts) / "nvidia-blueprint-data-flywheel-0.3.1.tgz")

    def helm(*args):
        proc = subprocess.run(
            ["helm", "--kubeconfig", scene.kubeconfig, *args], capture_output=True, text=True, env=tool_env, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    try:
        helm("install", release, chart, "-n", ns, "--create-namespace")
        report = scene.doctor(
            ansible_module, namespaces=[], checks=[], flywheel_url=None, nemo_url=None, entity_store_url=None
        )
        found = report["discovered"]
        assert ns in [f["namespace"] for f in found["flywheel"]], found["flywheel"]
        rel = [r for r in found["helm_releases"] if r["name"] == release and r["namespace"] == ns]
        assert rel and sorted(rel[0]["object_namespaces"]) == sorted([ns, UPSTREAM]), found["helm_releases"]
        misplaced = [f for f in report["findings"] if f["id"] == "chart-secrets-namespace" and f["where"] == ns]
        assert misplaced, report["findings"]
        evidence = " ".join(misplaced[0]["evidence"])
        assert (
            f"Deployment {ns}/df-api-deployment: env NVIDIA_API_KEY of container api needs Secret nvidia-api"
            in evidence
        )
        assert f"which is not in namespace {ns} but in {UPSTREAM}" in evidence
        assert f"landed in {UPSTREAM}" in misplaced[0]["cause"]
        assert (
            misplaced[0]["fix"]["role"] == "dataflywheel.blueprint.flywheel"
            and "--set namespace=" in misplaced[0]["fix"]["manual"]
        )
        assert any("Entity Store registration" in n and "entity_store_url" in n for n in report["not_checked"])
        helm("upgrade", release, chart, "-n", ns, "--reuse-values", "--set", f"namespace={ns}")
        again = scene.doctor(ansible_module, namespaces=[ns, UPSTREAM], checks=[])
        assert not [f for f in again["findings"] if f["id"] == "chart-secrets-namespace"], again["findings"]
    finally:
        subprocess.run(
            ["helm", "--kubeconfig", scene.kubeconfig, "uninstall", release, "-n", ns], env=tool_env, check=False
        )
        core.delete_namespace(ns)
        if created_secret_ns:
            core.delete_namespace(UPSTREAM)
