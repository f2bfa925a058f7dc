"""roles/remediate on the local cluster, every unit of issue 5: reproduce the broken state, remediate,
prove the fixed state through the API, rerun with changed=0, and prove no unit touches a platform it is
not for.

To keep `make test` short, each profile gets ONE namespace with every broken state reproduced in it and
ONE pair of whole-role runs (first run, then the rerun), shared by the tests below through a
module-scoped fixture; only the failure paths and the Kyverno variant run the role on their own."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.sim.entity_store.simulator import start as start_entity_store

from .conftest import kubeconfig_for
from .remediate_run import drop_namespace, fresh_namespace, run_role

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
KYVERNO_CRD = ROOT / "tests/fixtures/crds/kyverno.io_clusterpolicies.yaml"
PROFILES = ["vanilla-map", "openshift", "pcai", "nutanix"]
# Profiles that serve a /scratch mechanism (MutatingAdmissionPolicy); the others ship without one.
SCRATCH_PROFILES = ["vanilla-map"]
EVALUATOR = "nemoevaluator-sample"
MODELS = [
    {"name": "meta/llama-3.2-1b-instruct", "nim_service": "llama-3-2-1b-instruct"},
    {"name": "meta/llama-3.1-8b-instruct", "nim_service": "llama-3-1-8b-instruct"},
]
ROUTES = [
    {"name": "flywheel-api", "service": "df-api-service", "port": 8000},
    {"name": "flywheel-kibana", "service": "df-kibana-service", "port": 5601},
    {"name": "flywheel-mlflow", "service": "df-mlflow-service", "port": 5000, "timeout": "600s"},
]


def kubectl(tool_env, kubeconfig, *args):
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, env=tool_env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def can_i(kubeconfig, namespace, sa, verb, resource, group="", name=None):
    """SelfSubjectAccessReview as the ServiceAccount (impersonation): what `kubectl auth can-i --as` asks."""
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


def job_pod(api, ns, job_name, annotations=None):
    """Create a Job the way a controller would and return the Pod the real admission chain stored."""
    client.BatchV1Api(api).create_namespaced_job(
        ns,
        client.V1Job(
            metadata=client.V1ObjectMeta(name=job_name),
            spec=client.V1JobSpec(
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(annotations=annotations),
                    spec=client.V1PodSpec(
                        restart_policy="Never", containers=[client.V1Container(name="main", image="fixture:1")]
                    ),
                ),
            ),
        ),
    )
    core = client.CoreV1Api(api)
    deadline = time.time() + 90
    while time.time() < deadline:
        pods = core.list_namespaced_pod(ns, label_selector=f"job-name={job_name}").items
        if pods:
            return pods[0]
        time.sleep(0.3)
    events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={job_name}").items
    raise AssertionError(f"job {job_name} created no pod within 90s; events: {[e.message for e in events]}")


def has_scratch(pod):
    return any(v.name == "scratch" for v in pod.spec.volumes or []) and any(
        m.mount_path == "/scratch" for m in pod.spec.containers[0].volume_mounts or []
    )


def containers(pod):
    return [c.name for c in pod.spec.containers + (pod.spec.init_containers or [])]


def labelled(api, ns, remediation):
    """Every object of a remediation in a namespace: (kind, name)."""
    sel = f"dataflywheel.blueprint/remediation={remediation}"
    rbac, core, batch = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api), client.BatchV1Api(api)
    found = [("Role", r.metadata.name) for r in rbac.list_namespaced_role(ns, label_selector=sel).items]
    found += [("RoleBinding", b.metadata.name) for b in rbac.list_namespaced_role_binding(ns, label_selector=sel).items]
    found += [("Service", s.metadata.name) for s in core.list_namespaced_service(ns, label_selector=sel).items]
    found += [("ConfigMap", c.metadata.name) for c in core.list_namespaced_config_map(ns, label_selector=sel).items]
    found += [("Job", j.metadata.name) for j in batch.list_namespaced_job(ns, label_selector=sel).items]
    custom = client.CustomObjectsApi(api)
    for group, version, plural in (
        ("networking.istio.io", "v1beta1", "virtualservices"),
        ("route.openshift.io", "v1", "routes"),
    ):
        try:
            items = custom.list_namespaced_custom_object(group, version, ns, plural, label_selector=sel)["items"]
        except client.ApiException as exc:
            if exc.status != 404:  # API not served on this profile
                raise
            items = []
        found += [(i["kind"], i["metadata"]["name"]) for i in items]
    return found


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - the loopback simulator
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def operator_style_evaluator(api, ns):
    """What the NIM operator creates: ServiceAccount + Role without delete on secrets + RoleBinding."""
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


def evaluator_cr(ns, endpoint):
    return {
        "apiVersion": "apps.nvidia.com/v1alpha1",
        "kind": "NemoEvaluator",
        "metadata": {"name": EVALUATOR, "namespace": ns},
        "spec": {
            "image": {"repository": "nvcr.io/nvidia/nemo-microservices/evaluator", "tag": "25.06"},
            "databaseConfig": {
                "host": "evaluator-pg-postgresql",
                "databaseName": "evaldb",
                "credentials": {"user": "evaluser", "secretName": "evaluator-pg-existing-secret"},
            },
            "argoWorkflows": {
                "endpoint": "https://argo-workflows-server:2746",
                "serviceAccount": "argo-workflows-executor",
            },
            "vectorDB": {"endpoint": "http://milvus:19530"},
            "evaluationImages": {
                "lmEvalHarness": "nvcr.io/nvidia/nemo-microservices/eval-tool-benchmark-lm-eval-harness:0.12.21"
            },
            "datastore": {"endpoint": "http://nemodatastore-sample:8000/v1/hf"},
            "entitystore": {"endpoint": endpoint},
            # NIM Operator v3's CEL rules read spec.expose: a real API server refuses the CR without it
            "expose": {"service": {"port": 7331}},
        },
    }


class Scene:
    """One profile: a namespace with every broken state, what the API said before, one role run, what the
    API said right after it (no test-side wait), and the rerun."""

    def __init__(self, profile, tool_env):
        self.profile = profile
        self.platform = profile.removesuffix("-map")
        self.kubeconfig = kubeconfig_for(profile)
        self.api, self.ns = fresh_namespace(self.kubeconfig, f"rem-{profile[:4]}")
        self.store = start_entity_store()
        api, ns, core = self.api, self.ns, client.CoreV1Api(self.api)
        operator_style_evaluator(api, ns)
        core.create_namespaced_service_account(
            ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="elasticsearch"))
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
        self.extra = {
            "remediate_namespace": ns,
            "remediate_evaluator_name": EVALUATOR,
            "remediate_entity_store_url": self.store.url,
            "remediate_nemo_models": MODELS,
            "remediate_model_pvc": "model-store",
            "remediate_scc_grants": [{"service_account": "elasticsearch", "scc": "anyuid"}],
            "remediate_routes": ROUTES,
            # as shipped, these clusters have no /scratch mechanism: the unit is skipped with a warning
            "remediate_scratch_required": profile in SCRATCH_PROFILES,
        }
        if self.platform == "vanilla":
            # Broken state of evaluator-entity-store-url: the CR points at an Entity Store in another
            # namespace (what `oc set env` papered over until the next reconcile).
            # the cluster serves the NIM Operator's real CRDs (tests/sim/cluster.py)
            kubectl(
                tool_env, self.kubeconfig, "wait", "--for=condition=Established", "crd/nemoevaluators.apps.nvidia.com"
            )
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                "apps.nvidia.com",
                "v1alpha1",
                ns,
                "nemoevaluators",
                evaluator_cr(ns, "http://nemoentitystore-sample:8000"),
            )
            self.right_endpoint = f"http://nemoentitystore-sample.{ns}.svc.cluster.local:8000"
            self.extra["remediate_evaluator_entity_store_endpoint"] = self.right_endpoint
            self.extra["remediate_entity_store_mock"] = True

        self.before = {
            "delete_secrets": can_i(self.kubeconfig, ns, EVALUATOR, "delete", "secrets"),
            "create_secrets": can_i(self.kubeconfig, ns, EVALUATOR, "create", "secrets"),
            "scratch": has_scratch(job_pod(api, ns, "customizer-entity-handler-before")),
            "model_status": http_status(f"{self.store.url}/v1/models/meta/llama-3.2-1b-instruct"),
            "anyuid": profile == "openshift"
            and can_i(
                self.kubeconfig,
                ns,
                "elasticsearch",
                "use",
                "securitycontextconstraints",
                "security.openshift.io",
                "anyuid",
            ),
        }
        self.first = run_role(self.extra, self.kubeconfig)
        self.after = {}
        if self.first.ok:
            self.after = {
                "scratch": has_scratch(job_pod(api, ns, "customizer-entity-handler-after")),
                "unrelated_scratch": has_scratch(job_pod(api, ns, "unrelated-job")),
                "probe_left": core.list_namespaced_pod(ns, field_selector="metadata.name=dfw-scratch-probe").items,
            }
        self.second = run_role(self.extra, self.kubeconfig)

    def close(self):
        self.store.shutdown()
        drop_namespace(self.api, self.ns)


@pytest.fixture(scope="module")
def scenes(tool_env):
    made = {}

    def get(profile):
        if profile not in made:
            made[profile] = Scene(profile, tool_env)
        scene = made[profile]
        assert scene.first.ok, scene.first.text()[-3000:]
        return scene

    yield get
    for scene in made.values():
        scene.close()


# ---------------------------------------------------------------- every profile: all-platform units, rerun


@pytest.mark.parametrize("profile", PROFILES)
def test_rerun_reports_changed_0(scenes, profile):
    scene = scenes(profile)
    assert scene.first.changed >= 3
    assert scene.second.ok, scene.second.text()[-3000:]
    assert scene.second.changed == 0, [n for n, r in scene.second.tasks if r.get("changed")]


@pytest.mark.parametrize("profile", PROFILES)
def test_evaluator_can_delete_its_secrets_operator_role_untouched(scenes, profile):
    scene = scenes(profile)
    assert scene.before["delete_secrets"] is False and scene.before["create_secrets"] is True
    assert can_i(scene.kubeconfig, scene.ns, EVALUATOR, "delete", "secrets") is True
    operator_role = client.RbacAuthorizationV1Api(scene.api).read_namespaced_role(EVALUATOR, scene.ns)
    assert "delete" not in operator_role.rules[0].verbs, "the operator-owned Role must not be edited"


@pytest.mark.parametrize("profile", PROFILES)
def test_entity_store_simulator_returns_the_registered_models(scenes, profile):
    scene = scenes(profile)
    assert scene.before["model_status"] == 404  # base-eval 404: the operator-deployed NIM is not registered
    assert http_status(f"{scene.store.url}/v1/models/meta/llama-3.2-1b-instruct") == 200
    registered = scene.store.state.models[("meta", "llama-3.2-1b-instruct")]
    assert registered["api_endpoint"]["url"] == f"http://llama-3-2-1b-instruct.{scene.ns}.svc.cluster.local:8000/v1"
    assert scene.store.stats["POST /v1/models"] == 2, "one POST per model, none on the rerun"


@pytest.mark.parametrize("profile", SCRATCH_PROFILES)
def test_scratch_policy_active_when_the_role_reports_success(scenes, profile):
    """The role waits for the new MutatingAdmissionPolicy to act (dry-run Pod) before it returns, so an
    entity-handler Job created right after the run gets /scratch from the real admission chain, without the
    test waiting; other Jobs do not."""
    scene = scenes(profile)
    assert scene.before["scratch"] is False
    assert scene.first.ran("Wait until a dry-run entity-handler Pod gets")
    assert scene.after["scratch"] is True, "policy not active when the role returned"
    assert scene.after["unrelated_scratch"] is False, "the policy must only touch entity-handler Jobs"
    assert scene.after["probe_left"] == [], "the probe is a dry run, nothing is stored"


@pytest.mark.parametrize("profile", [p for p in PROFILES if p not in SCRATCH_PROFILES])
def test_scratch_skipped_with_a_warning_where_the_cluster_has_no_mechanism(scenes, profile):
    """No MutatingAdmissionPolicy API and no Kyverno (as these platforms ship) with remediate_scratch_required
    false: the unit is skipped with a warning and the run goes on; entity-handler Pods keep lacking /scratch."""
    scene = scenes(profile)
    assert scene.first.fact("remediate_facts")["mutating_admission_policy"] is None
    assert scene.first.fact("remediate_scratch_use") == "none"
    assert scene.first.ran("Warn that /scratch is skipped")
    assert not scene.first.ran("Wait until a dry-run entity-handler Pod gets")
    assert scene.after["scratch"] is False


@pytest.mark.parametrize("profile", PROFILES)
def test_units_do_not_touch_other_platforms(scenes, profile):
    scene = scenes(profile)
    api, ns = scene.api, scene.ns
    facts = scene.first.fact("remediate_facts")
    assert facts["platform"] == scene.platform
    on_openshift, on_pcai = profile == "openshift", profile == "pcai"
    assert bool(labelled(api, ns, "openshift-scc")) is on_openshift
    assert bool(labelled(api, ns, "openshift-ownership")) is on_openshift
    assert bool(labelled(api, ns, "openshift-routes")) is on_openshift
    assert bool(scene.first.fact("remediate_route_urls")) is on_openshift
    assert bool(labelled(api, ns, "pcai-routing")) is on_pcai
    assert bool(scene.first.fact("remediate_flywheel_values_overlay")) is on_pcai
    assert any(scene.first.fact("remediate_pod_metadata").values()) is on_pcai
    assert ("istio-injection" in (client.CoreV1Api(api).read_namespace(ns).metadata.labels or {})) is on_pcai
    assert bool(labelled(api, ns, "evaluator-secret-delete"))  # the all-platform units act everywhere
    # The Nutanix resolver check belongs to the GPU-node play (playbooks/preflight.yml), never to this run.
    assert not scene.first.ran("resolve") and "getent" not in scene.first.text()
    if profile == "nutanix":
        assert facts["nutanix_storage"]["present"] is True


# ---------------------------------------------------------------- OpenShift: SCC, model ownership, Routes


def test_openshift_scc_least_privilege_and_model_ownership_job(scenes):
    scene = scenes("openshift")
    kubeconfig, api, ns = scene.kubeconfig, scene.api, scene.ns
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    assert scene.before["anyuid"] is False
    bindings = rbac.list_namespaced_role_binding(ns, label_selector="dataflywheel.blueprint/remediation=openshift-scc")
    assert [b.role_ref.name for b in bindings.items] == ["system:openshift:scc:anyuid"]
    scc = ("securitycontextconstraints", "security.openshift.io")
    assert can_i(kubeconfig, ns, "elasticsearch", "use", *scc, "anyuid") is True
    assert can_i(kubeconfig, ns, "elasticsearch", "use", *scc, "privileged") is False
    assert can_i(kubeconfig, ns, EVALUATOR, "use", *scc, "anyuid") is False, "granted per ServiceAccount only"

    jobs = client.BatchV1Api(api).list_namespaced_job(
        ns, label_selector="dataflywheel.blueprint/remediation=openshift-ownership"
    )
    uid = core.read_namespace(ns).metadata.annotations["openshift.io/sa.scc.uid-range"].split("/")[0]
    assert len(jobs.items) == 1
    job = jobs.items[0]
    assert {e.name: e.value for e in job.spec.template.spec.containers[0].env}["OWNER_UID"] == uid
    assert job.spec.template.spec.volumes[0].persistent_volume_claim.claim_name == "model-store"
    assert any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or [])


def test_openshift_ownership_job_also_covers_files_written_after_it(scenes, tmp_path):
    """The Job's own script, run for real on this machine's filesystem (no container runs on the local cluster):
    a model directory as the seed left it (UID 1000, private modes), the script with the Job's env, then a later
    download by a writer whose primary group is not 0 and whose umask keeps others out; a Pod of the namespace
    (another UID of the range, group 0, as OpenShift runs it) must read both the old and the new files."""
    scene = scenes("openshift")
    jobs = client.BatchV1Api(scene.api).list_namespaced_job(
        scene.ns, label_selector="dataflywheel.blueprint/remediation=openshift-ownership"
    )
    container = jobs.items[0].spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env}
    owner = int(env["OWNER_UID"])
    models = Path(tempfile.mkdtemp(prefix="dfw-models-", dir="/tmp"))
    os.chmod(models, 0o755)
    try:
        old = models / "llama32_1b-instruct_2_0"
        old.mkdir(mode=0o700)
        (old / "config.json").write_text("{}")
        os.chmod(old / "config.json", 0o600)
        for path in (models, old, old / "config.json"):
            os.chown(path, 1000, 1000)
        subprocess.run(container.command, env={**os.environ, **env, "MODEL_DIR": str(models)}, check=True)

        def as_user(uid, gid, groups, script):
            return subprocess.run(
                ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={groups}", "sh", "-c", script],
                env={"D": str(models), "PATH": os.environ["PATH"]},
                capture_output=True,
                text=True,
                check=False,
            )

        later = as_user(1000, 1000, "0", 'umask 027; mkdir -p "$D/later/sub" && echo w > "$D/later/sub/weights.bin"')
        assert later.returncode == 0, later.stderr
        reader = as_user(
            owner + 7, owner + 7, "0", 'cat "$D/llama32_1b-instruct_2_0/config.json" "$D/later/sub/weights.bin"'
        )
        assert reader.returncode == 0, f"a Pod of the namespace cannot read the model files: {reader.stderr}"
        assert reader.stdout == "{}w\n"
    finally:
        shutil.rmtree(models)


def custom_scc(api, name):
    """A custom SCC as a platform team would add one: the SCC only, no "use" ClusterRole (what oc adm policy
    add-scc-to-user would create)."""
    client.CustomObjectsApi(api).create_cluster_custom_object(
        "security.openshift.io",
        "v1",
        "securitycontextconstraints",
        {
            "apiVersion": "security.openshift.io/v1",
            "kind": "SecurityContextConstraints",
            "metadata": {"name": name},
            "allowPrivilegedContainer": False,
            "runAsUser": {"type": "RunAsAny"},
            "seLinuxContext": {"type": "MustRunAs"},
            "fsGroup": {"type": "RunAsAny"},
            "supplementalGroups": {"type": "RunAsAny"},
            "volumes": ["configMap", "emptyDir", "persistentVolumeClaim", "secret", "projected"],
        },
    )


def test_openshift_custom_scc_refused_without_cluster_scope_then_given_its_use_role(scenes):
    """A custom SCC has no system:openshift:scc:<name> ClusterRole: a grant would bind to nothing. Without
    cluster-scoped permission the role refuses before any change; with it, it creates that ClusterRole."""
    kubeconfig = scenes("openshift").kubeconfig
    api, ns = fresh_namespace(kubeconfig, "rem-scc")
    rbac = client.RbacAuthorizationV1Api(api)
    scc_name = f"dfw-custom-{ns[-6:]}"
    try:
        custom_scc(api, scc_name)
        client.CoreV1Api(api).create_namespaced_service_account(
            ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="trainer"))
        )
        grant = {
            "remediate_namespace": ns,
            "remediate_scc_grants": [{"service_account": "trainer", "scc": scc_name}],
            "remediate_scratch_required": False,  # OpenShift as shipped: no MutatingAdmissionPolicy, no Kyverno
        }
        refused = run_role({**grant, "remediate_cluster_scoped": False}, kubeconfig)
        assert not refused.ok and refused.changed == 0
        assert "system:openshift:scc:<name>" in refused.failure_msg() and scc_name in refused.failure_msg()
        assert labelled(api, ns, "openshift-scc") == []

        granted = run_role(grant, kubeconfig)
        assert granted.ok, granted.text()[-3000:]
        role = rbac.read_cluster_role(f"system:openshift:scc:{scc_name}")
        assert [(r.resources, r.resource_names, r.verbs) for r in role.rules] == [
            (["securitycontextconstraints"], [scc_name], ["use"])
        ]
        scc = ("securitycontextconstraints", "security.openshift.io")
        assert can_i(kubeconfig, ns, "trainer", "use", *scc, scc_name) is True
        assert can_i(kubeconfig, ns, "trainer", "use", *scc, "privileged") is False
    finally:
        drop_namespace(api, ns)
        client.CustomObjectsApi(api).delete_cluster_custom_object(
            "security.openshift.io", "v1", "securitycontextconstraints", scc_name
        )
        try:
            rbac.delete_cluster_role(f"system:openshift:scc:{scc_name}")
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def test_openshift_scc_grant_to_a_service_account_that_does_not_exist_fails_loudly(scenes):
    """The grant is made before the charts (their ServiceAccounts do not exist yet); after the charts a grant whose
    ServiceAccount still does not exist is a typo that protects nothing: the run fails naming it."""
    kubeconfig = scenes("openshift").kubeconfig
    api, ns = fresh_namespace(kubeconfig, "rem-sa")
    try:
        run = run_role(
            {
                "remediate_namespace": ns,
                "remediate_scc_grants": [{"service_account": "elasticsearh", "scc": "anyuid"}],
                "remediate_scratch_required": False,
            },
            kubeconfig,
        )
        assert not run.ok
        msg = run.failure_msg()
        assert f"anyuid to ServiceAccount elasticsearh in namespace {ns}" in msg
        assert "no such ServiceAccount exists" in msg and "kubectl get serviceaccounts" in msg
        assert run.ran("Grant SCCs to ServiceAccounts"), "the grant itself is made before the charts"
    finally:
        drop_namespace(api, ns)


def test_openshift_routes_for_api_and_uis(scenes):
    scene = scenes("openshift")
    ns = scene.ns
    custom = client.CustomObjectsApi(scene.api)
    routes = {
        r["metadata"]["name"]: r
        for r in custom.list_namespaced_custom_object("route.openshift.io", "v1", ns, "routes")["items"]
    }
    assert sorted(routes) == ["flywheel-api", "flywheel-kibana", "flywheel-mlflow"]
    assert routes["flywheel-api"]["spec"]["to"]["name"] == "df-api-service"
    assert routes["flywheel-api"]["spec"]["tls"]["termination"] == "edge"
    assert routes["flywheel-mlflow"]["metadata"]["annotations"]["haproxy.router.openshift.io/timeout"] == "600s"
    host = f"flywheel-api-{ns}.apps.dfw-openshift.example.test"
    assert routes["flywheel-api"]["spec"]["host"] == host  # assigned by the (emulated) router at admission
    assert scene.first.fact("remediate_route_urls")["flywheel-api"] == f"https://{host}"


# ---------------------------------------------------------------- PCAI: routing, sidecars, values overlay


def test_pcai_routing_domain_sidecars_and_values_overlay(scenes):
    scene = scenes("pcai")
    api, ns = scene.api, scene.ns
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    domain = core.read_namespaced_config_map("ezua-cluster-config", "ezua-system").data["cluster.domainName"]
    assert core.read_namespace(ns).metadata.labels.get("istio-injection") == "enabled"
    # Broken state: in the mesh, a Job Pod gets the (emulated) istio-proxy sidecar that keeps it running.
    plain = job_pod(api, ns, "plain-job")
    assert "istio-proxy" in containers(plain)

    overlay = scene.first.fact("remediate_flywheel_values_overlay")
    assert overlay["ezua"]["virtualService"] == {
        "endpoint": f"data-flywheel.{domain}",
        "istioGateway": "istio-system/ezaf-gateway",
    }
    assert "$" not in json.dumps(overlay)
    assert overlay["foundationalFlywheelServer"]["config"]["nmp_config"]["nemo_base_url"] == (
        f"http://df-generic-service.{ns}.svc.cluster.local:8000"
    )
    assert "namespace" not in overlay, "the chart's namespace value is the flywheel role's (its release namespace)"
    pods = scene.first.fact("remediate_pod_metadata")
    assert pods["labels"] == {"hpe-ezua/app": "data-flywheel", "hpe-ezua/type": "vendor-service"}
    assert pods["annotations"] == {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432,9200,6379,27017"}
    fixed = job_pod(api, ns, "fixed-job", annotations=pods["job_annotations"])
    assert "istio-proxy" not in containers(fixed)

    vs = {
        v["metadata"]["name"]: v
        for v in custom.list_namespaced_custom_object("networking.istio.io", "v1beta1", ns, "virtualservices")["items"]
    }
    gw = vs["data-flywheel"]["spec"]
    assert gw["hosts"] == [f"data-flywheel.{domain}"] and gw["gateways"] == ["istio-system/ezaf-gateway"]
    assert gw["http"][0]["route"][0]["destination"]["host"] == f"df-api-service.{ns}.svc.cluster.local"
    mesh = vs["nemo-generic-routing"]["spec"]
    assert isinstance(mesh["http"], list), f"spec.http must be a list of routes, got {type(mesh['http']).__name__}"
    assert "gateways" not in mesh and mesh["hosts"] == [f"df-generic-service.{ns}.svc.cluster.local"]
    prefixes = [
        (m["uri"]["prefix"], r["route"][0]["destination"]["host"].split(".")[0])
        for r in mesh["http"]
        for m in r["match"]
    ]
    assert ("/v1/customization", "nemo-customizer") in prefixes and ("/v1/models", "nemo-entity-store") in prefixes
    assert core.read_namespaced_service("df-generic-service", ns).spec.ports[0].port == 8000


def test_pcai_unsubstituted_domain_refused_before_anything_changes(scenes):
    """The ${DOMAIN_NAME} trap: a literal placeholder fails the run before any unit writes (fresh namespace)."""
    kubeconfig = scenes("pcai").kubeconfig
    api, ns = fresh_namespace(kubeconfig, "rem-trap")
    try:
        trap = run_role({"remediate_namespace": ns, "remediate_pcai_cluster_domain": "${DOMAIN_NAME}"}, kubeconfig)
        assert not trap.ok
        assert "remediate_pcai_cluster_domain" in trap.failure_msg() and "EzAppConfig" in trap.failure_msg()
        assert trap.changed == 0
        for remediation in ("pcai-routing", "evaluator-secret-delete"):
            assert labelled(api, ns, remediation) == [], remediation
        assert "istio-injection" not in (client.CoreV1Api(api).read_namespace(ns).metadata.labels or {})
    finally:
        drop_namespace(api, ns)


# ---------------------------------------------------------------- evaluator-entity-store-url, entity-store-mock


def test_evaluator_entity_store_url_set_on_the_cr(scenes):
    scene = scenes("vanilla-map")
    custom = client.CustomObjectsApi(scene.api)
    assert scene.first.ran("Set spec.entitystore.endpoint")
    cr = custom.get_namespaced_custom_object("apps.nvidia.com", "v1alpha1", scene.ns, "nemoevaluators", EVALUATOR)
    assert cr["spec"]["entitystore"]["endpoint"] == scene.right_endpoint
    assert cr["spec"]["datastore"]["endpoint"] == "http://nemodatastore-sample:8000/v1/hf", "other fields untouched"
    version = cr["metadata"]["resourceVersion"]

    bad = run_role(
        dict(scene.extra, remediate_evaluator_entity_store_endpoint="nemoentitystore:8000"), scene.kubeconfig
    )
    assert not bad.ok and "remediate_evaluator_entity_store_endpoint" in bad.failure_msg()
    assert "http(s) URL" in bad.failure_msg() and not bad.ran("Detect the platform"), "refused before any change"
    missing = run_role(dict(scene.extra, remediate_evaluator_name="no-such-evaluator"), scene.kubeconfig)
    assert not missing.ok and "the custom resource does not exist" in missing.failure_msg()
    cr = custom.get_namespaced_custom_object("apps.nvidia.com", "v1alpha1", scene.ns, "nemoevaluators", EVALUATOR)
    assert cr["metadata"]["resourceVersion"] == version, "neither the rerun nor the failed runs rewrote the CR"


def mock_locations(conf):
    out = {}
    lines = conf.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("location = /v1/models/"):
            path = line.split("=", 1)[1].strip().rstrip("{").strip()
            body = lines[i + 1].strip().removeprefix("return 200 '").removesuffix("';")
            out[path] = json.loads(body)
    return out


def test_entity_store_mock_generated_from_the_nim_list(scenes):
    scene = scenes("vanilla-map")
    core, apps = client.CoreV1Api(scene.api), client.AppsV1Api(scene.api)
    ns = scene.ns
    locations = mock_locations(core.read_namespaced_config_map("dfw-entity-store-mock", ns).data["default.conf"])
    assert sorted(locations) == ["/v1/models/meta/llama-3.1-8b-instruct", "/v1/models/meta/llama-3.2-1b-instruct"]
    entity = locations["/v1/models/meta/llama-3.2-1b-instruct"]
    assert entity["namespace"] == "meta" and entity["name"] == "llama-3.2-1b-instruct"
    assert entity["api_endpoint"]["url"] == f"http://llama-3-2-1b-instruct.{ns}.svc.cluster.local:8000/v1"
    assert core.read_namespaced_service("dfw-entity-store-mock", ns).spec.ports[0].port == 8000
    rolled = apps.read_namespaced_deployment("dfw-entity-store-mock", ns).spec.template.metadata.annotations

    third = {"name": "nvidia/llama-3.3-nemotron-super-49b-v1", "nim_service": "nemotron-super", "nim_namespace": "nim"}
    grown = run_role(
        {"remediate_namespace": ns, "remediate_entity_store_mock": True, "remediate_nemo_models": [*MODELS, third]},
        scene.kubeconfig,
    )
    assert grown.ok, grown.text()[-3000:]
    locations = mock_locations(core.read_namespaced_config_map("dfw-entity-store-mock", ns).data["default.conf"])
    assert locations["/v1/models/nvidia/llama-3.3-nemotron-super-49b-v1"]["api_endpoint"]["url"] == (
        "http://nemotron-super.nim.svc.cluster.local:8000/v1"
    )
    new = apps.read_namespaced_deployment("dfw-entity-store-mock", ns).spec.template.metadata.annotations
    assert new != rolled, "a changed NIM list must roll the mock"


# ---------------------------------------------------------------- scratch-volume: no mechanism, Kyverno


def test_scratch_without_the_chosen_mechanism_fails_naming_the_options(scenes):
    kubeconfig = scenes("vanilla-map").kubeconfig
    api, ns = fresh_namespace(kubeconfig, "rem-nomech")
    try:
        run = run_role({"remediate_namespace": ns, "remediate_scratch_mechanism": "kyverno"}, kubeconfig)
        assert not run.ok
        msg = run.failure_msg()
        assert "remediate_scratch_mechanism=kyverno" in msg and "no Kyverno" in msg
        for option in ("MutatingAdmissionPolicy feature gate", "install Kyverno", "upgrade the NeMo customizer"):
            assert option in msg
        assert run.changed == 0 and labelled(api, ns, "evaluator-secret-delete") == [], "nothing changed before"
        maps = client.CustomObjectsApi(api).list_cluster_custom_object(
            "admissionregistration.k8s.io", "v1beta1", "mutatingadmissionpolicies"
        )["items"]
        assert f"dfw-scratch-{ns}" not in [m["metadata"]["name"] for m in maps]
    finally:
        drop_namespace(api, ns)


def test_scratch_on_a_cluster_as_shipped_stops_before_any_change_naming_the_options(scenes):
    """nutanix as it ships: no MutatingAdmissionPolicy API, no Kyverno; the default (required) stops the run."""
    kubeconfig = scenes("nutanix").kubeconfig
    api, ns = fresh_namespace(kubeconfig, "rem-stop")
    try:
        run = run_role({"remediate_namespace": ns}, kubeconfig)
        assert not run.ok
        msg = run.failure_msg()
        assert "no MutatingAdmissionPolicy API" in msg and "no Kyverno" in msg and "Nothing was changed" in msg
        for option in ("MutatingAdmissionPolicy feature gate", "install Kyverno", "remediate_scratch_required=false"):
            assert option in msg
        assert run.changed == 0 and labelled(api, ns, "evaluator-secret-delete") == [], "nothing changed before"
    finally:
        drop_namespace(api, ns)


@pytest.fixture
def map_cluster_with_kyverno_api(scenes, tool_env):
    """The vanilla-map cluster with the kyverno.io ClusterPolicy CRD fixture (API type only, no Kyverno)."""
    kubeconfig = scenes("vanilla-map").kubeconfig  # the shared runs happen before the CRD exists
    kubectl(tool_env, kubeconfig, "apply", "--server-side", "-f", str(KYVERNO_CRD))
    kubectl(tool_env, kubeconfig, "wait", "--for=condition=Established", "crd/clusterpolicies.kyverno.io")
    api, ns = fresh_namespace(kubeconfig, "rem-kyv")
    yield kubeconfig, api, ns
    drop_namespace(api, ns)
    kubectl(tool_env, kubeconfig, "delete", "--ignore-not-found", "-f", str(KYVERNO_CRD))


def test_kyverno_variant_writes_the_policy_and_refuses_success_without_kyverno_acting(map_cluster_with_kyverno_api):
    """Kyverno itself cannot run here: the test proves platform_info sees Kyverno, the ClusterPolicy the API
    server accepted has the right content and scope, auto still prefers MutatingAdmissionPolicy, and the role
    does NOT report success while no Kyverno webhook makes the policy act (its dry-run probe finds no /scratch)."""
    kubeconfig, api, ns = map_cluster_with_kyverno_api
    custom = client.CustomObjectsApi(api)
    extra = {"remediate_namespace": ns, "remediate_scratch_mechanism": "kyverno", "remediate_scratch_wait_timeout": 4}
    first = run_role(extra, kubeconfig)
    assert first.fact("remediate_facts")["kyverno"] is True
    assert not first.ok
    msg = first.failure_msg()
    assert "Kyverno ClusterPolicy" in msg and "Kyverno admission controller" in msg and "still had no /scratch" in msg
    policy = custom.get_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", f"dfw-scratch-{ns}")
    rule = policy["spec"]["rules"][0]
    assert rule["match"]["any"][0]["resources"]["namespaces"] == [ns]
    assert rule["preconditions"]["all"][0]["value"] == "*entity-handler*"
    assert "{{ request.object.metadata.labels" in rule["preconditions"]["all"][0]["key"], (
        "Kyverno JMESPath kept literal"
    )
    patch = rule["mutate"]["patchStrategicMerge"]["spec"]
    assert patch["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert patch["containers"][0]["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    version = policy["metadata"]["resourceVersion"]
    again = run_role(extra, kubeconfig)
    assert not again.ok
    assert (
        custom.get_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", f"dfw-scratch-{ns}")["metadata"][
            "resourceVersion"
        ]
        == version
    ), "rerun rewrote the policy"
    custom.delete_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", f"dfw-scratch-{ns}")

    auto = run_role({"remediate_namespace": ns}, kubeconfig)
    assert auto.ok, auto.text()[-3000:]
    assert auto.fact("remediate_scratch_use") == "map"
    assert custom.list_cluster_custom_object("kyverno.io", "v1", "clusterpolicies")["items"] == []


# ---------------------------------------------------------------- nutanix resolver placement (no cluster)


def test_nutanix_resolver_runs_only_on_inventory_nodes():
    """playbooks/preflight.yml: the preflight role's resolver entry point is only included in the play over the
    GPU inventory hosts (the nodes' own resolver), never in the localhost/cluster play; the remediate role has
    no resolver at all."""
    plays = yaml.safe_load((ROOT / "playbooks/preflight.yml").read_text())
    with_resolver = [
        p
        for p in plays
        for t in p.get("tasks", [])
        if (t.get("ansible.builtin.include_role") or {}).get("tasks_from") == "nutanix_resolver"
    ]
    assert len(with_resolver) == 1
    assert with_resolver[0]["hosts"] == "{{ preflight_gpu_hosts | default('gpu_hosts') }}"
    others = [p for p in plays if p not in with_resolver]
    assert others and all("gpu_hosts" not in p["hosts"] for p in others), "the cluster plays run on the cluster hosts"
    assert [t["ansible.builtin.include_role"]["name"] for t in with_resolver[0]["tasks"][1:]] == [
        "dataflywheel.blueprint.preflight"
    ]
    remediate = [p.read_text() for p in (ROOT / "roles/remediate/tasks").rglob("*.yml")]
    assert remediate and not any("getent" in text or "nutanix_resolver" in text for text in remediate)
