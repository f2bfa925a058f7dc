"""roles/remediate on the local cluster: reproduce the broken state, remediate, prove the fix
through the API, rerun with changed=0, and check no unit runs on a platform it is not for."""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.sim.entity_store.simulator import start as start_entity_store

from .conftest import kubeconfig_for

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
EVALUATOR = "nemoevaluator-sample"


def run_playbook(kubeconfig, extra):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        K8S_AUTH_KUBECONFIG=kubeconfig,
    )
    extra = dict(extra, remediate_kubeconfig=kubeconfig)
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "playbooks/remediate.yml", "-e", json.dumps(extra)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    out = json.loads(proc.stdout)
    stats = out["stats"]["localhost"]
    assert proc.returncode == 0 and stats["failures"] == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return stats


def can_i(kubeconfig, namespace, sa, verb, resource, group="", name=None):
    api = config.new_client_from_config(config_file=kubeconfig)
    api.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:{sa}")
    api.set_default_header("Impersonate-Group", "system:serviceaccounts")
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=verb, resource=resource, group=group, name=name
            )
        )
    )
    return client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed


def operator_style_evaluator(api, ns):
    """What the NIM operator creates: SA + Role without delete on secrets + RoleBinding."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=EVALUATOR)))
    rbac.create_namespaced_role(
        ns,
        client.V1Role(
            metadata=client.V1ObjectMeta(name=EVALUATOR),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["secrets", "pods"], verbs=["get", "watch", "list", "create"]
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=EVALUATOR),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=EVALUATOR),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=EVALUATOR, namespace=ns)],
        ),
    )


def entity_handler_pod(api, ns, job_name):
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(
        ns,
        client.V1Job(
            metadata=client.V1ObjectMeta(name=job_name),
            spec=client.V1JobSpec(
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(annotations={"sidecar.istio.io/inject": "false"}),
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        containers=[
                            client.V1Container(name="handler", image="nvcr.io/nvidia/nemo-entity-handler:fixture")
                        ],
                    ),
                ),
            ),
        ),
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        pods = core.list_namespaced_pod(ns, label_selector=f"job-name={job_name}").items
        if pods:
            return pods[0]
        time.sleep(0.5)
    raise AssertionError(f"job {job_name} created no pod within 60s")


def wait_policy_active(api, ns, timeout=30):
    """The API server loads a new MutatingAdmissionPolicy asynchronously: probe with dry-run Pods."""
    core = client.CoreV1Api(api)
    probe = client.V1Pod(
        metadata=client.V1ObjectMeta(name="scratch-probe", labels={"job-name": "probe-entity-handler"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="probe")]),
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        if has_scratch(core.create_namespaced_pod(ns, probe, dry_run="All")):
            return time.time() - (deadline - timeout)
        time.sleep(0.5)
    raise AssertionError(f"the scratch MutatingAdmissionPolicy was not active after {timeout}s")


def has_scratch(pod):
    vols = [v.name for v in pod.spec.volumes or []]
    mounts = [(m.name, m.mount_path) for m in pod.spec.containers[0].volume_mounts or []]
    return "scratch" in vols and ("scratch", "/scratch") in mounts


@pytest.fixture
def cluster_ns(request):
    profile = request.param
    kubeconfig = kubeconfig_for(profile)
    api = config.new_client_from_config(config_file=kubeconfig)
    ns = f"rem-{profile[:4]}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    yield profile, kubeconfig, api, ns
    client.CoreV1Api(api).delete_namespace(ns)
    custom = client.CustomObjectsApi(api)
    for plural in ("mutatingadmissionpolicybindings", "mutatingadmissionpolicies"):
        try:
            custom.delete_cluster_custom_object("admissionregistration.k8s.io", "v1beta1", plural, f"dfw-scratch-{ns}")
        except ApiException as exc:
            if exc.status != 404:
                raise


@pytest.mark.parametrize("cluster_ns", ["vanilla", "openshift", "pcai"], indirect=True)
def test_remediate_reproduce_fix_prove_rerun(cluster_ns):
    profile, kubeconfig, api, ns = cluster_ns
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    operator_style_evaluator(api, ns)
    core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="elasticsearch"))
    )

    # Broken state.
    assert can_i(kubeconfig, ns, EVALUATOR, "delete", "secrets") is False
    assert can_i(kubeconfig, ns, EVALUATOR, "create", "secrets") is True
    assert not has_scratch(entity_handler_pod(api, ns, "customizer-entity-handler-before"))
    if profile == "openshift":
        assert (
            can_i(
                kubeconfig, ns, "elasticsearch", "use", "securitycontextconstraints", "security.openshift.io", "anyuid"
            )
            is False
        )

    core.create_namespaced_persistent_volume_claim(
        ns,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="model-store"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        ),
    )
    store = start_entity_store()
    request_404 = store.state.models.get(("meta", "llama-3.2-1b-instruct"))
    assert request_404 is None  # broken state: the base NIM is not registered
    extra = {
        "remediate_entity_store_url": store.url,
        "remediate_nemo_models": [
            {"name": "meta/llama-3.2-1b-instruct", "nim_service": "llama-3-2-1b-instruct", "nim_namespace": ns}
        ],
        "remediate_namespace": ns,
        "remediate_model_pvc": "model-store",
        "remediate_evaluator_name": EVALUATOR,
        "remediate_scc_grants": [{"service_account": "elasticsearch", "scc": "anyuid"}],
    }
    first = run_playbook(kubeconfig, extra)
    assert first["changed"] >= 3

    # Fixed state, proven through the API.
    assert can_i(kubeconfig, ns, EVALUATOR, "delete", "secrets") is True
    operator_role = rbac.read_namespaced_role(EVALUATOR, ns)
    assert "delete" not in operator_role.rules[0].verbs, "the operator-owned Role must not be edited"
    wait_policy_active(api, ns)
    assert has_scratch(entity_handler_pod(api, ns, "customizer-entity-handler-after"))
    other = entity_handler_pod(api, ns, "unrelated-job")
    assert not has_scratch(other), "the policy must only touch entity-handler Jobs"

    scc_bindings = rbac.list_namespaced_role_binding(
        ns, label_selector="dataflywheel.blueprint/remediation=openshift-scc"
    ).items
    labels = core.read_namespace(ns).metadata.labels or {}
    if profile == "openshift":
        assert [b.role_ref.name for b in scc_bindings] == ["system:openshift:scc:anyuid"]
        assert (
            can_i(
                kubeconfig, ns, "elasticsearch", "use", "securitycontextconstraints", "security.openshift.io", "anyuid"
            )
            is True
        )
        assert (
            can_i(
                kubeconfig,
                ns,
                "elasticsearch",
                "use",
                "securitycontextconstraints",
                "security.openshift.io",
                "privileged",
            )
            is False
        )
    else:
        assert scc_bindings == [], "no SCC bindings off OpenShift"
    jobs = (
        client.BatchV1Api(api)
        .list_namespaced_job(ns, label_selector="dataflywheel.blueprint/remediation=openshift-ownership")
        .items
    )
    if profile == "openshift":
        uid = core.read_namespace(ns).metadata.annotations["openshift.io/sa.scc.uid-range"].split("/")[0]
        assert len(jobs) == 1
        env = {e.name: e.value for e in jobs[0].spec.template.spec.containers[0].env}
        assert env["OWNER_UID"] == uid
        assert jobs[0].spec.template.spec.volumes[0].persistent_volume_claim.claim_name == "model-store"
        assert any(c.type == "Complete" and c.status == "True" for c in jobs[0].status.conditions or [])
    else:
        assert jobs == [], "no ownership Job off OpenShift"
    assert (labels.get("istio-injection") == "enabled") is (profile == "pcai")

    registered = store.state.models[("meta", "llama-3.2-1b-instruct")]
    assert registered["api_endpoint"]["url"] == f"http://llama-3-2-1b-instruct.{ns}.svc.cluster.local:8000/v1"

    second = run_playbook(kubeconfig, extra)
    assert second["changed"] == 0
    assert store.stats["POST /v1/models"] == 1
    store.shutdown()
