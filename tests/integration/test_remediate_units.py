"""roles/remediate units added in issue 5's second part, each on the local cluster: reproduce the
broken state, remediate, prove the fixed state through the API, rerun with changed=0, and prove
the unit does not touch platforms it is not for."""

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from .conftest import kubeconfig_for
from .remediate_run import drop_namespace, fresh_namespace, run_role

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.wip,
]  # issue 5: not yet proven green end to end; run by make test-wip, not make test
ROOT = Path(__file__).resolve().parents[2]
NIM_CRDS = ROOT / "tests/fixtures/crds/apps.nvidia.com.yaml"
KYVERNO_CRD = ROOT / "tests/fixtures/crds/kyverno.io_clusterpolicies.yaml"
MODELS = [
    {"name": "meta/llama-3.2-1b-instruct", "nim_service": "llama-3-2-1b-instruct"},
    {"name": "meta/llama-3.1-8b-instruct", "nim_service": "llama-3-1-8b-instruct"},
]


def kubectl(tool_env, kubeconfig, *args):
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, env=tool_env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def job_pod(api, ns, job_name, annotations=None):
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
    deadline = time.time() + 60
    while time.time() < deadline:
        pods = core.list_namespaced_pod(ns, label_selector=f"job-name={job_name}").items
        if pods:
            return pods[0]
        time.sleep(0.3)
    raise AssertionError(f"job {job_name} created no pod within 60s")


def has_scratch(pod):
    return any(v.name == "scratch" for v in pod.spec.volumes or []) and any(
        m.mount_path == "/scratch" for m in pod.spec.containers[0].volume_mounts or []
    )


def labelled(api, ns, remediation):
    """Every object of a remediation in a namespace: (kind, name)."""
    sel = f"dataflywheel.blueprint/remediation={remediation}"
    found = [
        ("RoleBinding", b.metadata.name)
        for b in client.RbacAuthorizationV1Api(api).list_namespaced_role_binding(ns, label_selector=sel).items
    ]
    found += [
        ("Service", s.metadata.name)
        for s in client.CoreV1Api(api).list_namespaced_service(ns, label_selector=sel).items
    ]
    found += [
        ("Job", j.metadata.name) for j in client.BatchV1Api(api).list_namespaced_job(ns, label_selector=sel).items
    ]
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


@pytest.fixture
def ns_on(request):
    kubeconfig = kubeconfig_for(request.param)
    api, ns = fresh_namespace(kubeconfig, f"u{request.param[:3]}")
    yield request.param, kubeconfig, api, ns
    drop_namespace(api, ns)


# ---------------------------------------------------------------- evaluator-entity-store-url


def evaluator_cr(ns, endpoint):
    return {
        "apiVersion": "apps.nvidia.com/v1alpha1",
        "kind": "NemoEvaluator",
        "metadata": {"name": "nemoevaluator-sample", "namespace": ns},
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
            "datastore": {"endpoint": "http://nemodatastore-sample:8000/v1/hf"},
            "entitystore": {"endpoint": endpoint},
        },
    }


@pytest.mark.parametrize("ns_on", ["vanilla"], indirect=True)
def test_evaluator_entity_store_url_set_on_the_cr(ns_on, tool_env):
    _profile, kubeconfig, api, ns = ns_on
    kubectl(tool_env, kubeconfig, "apply", "--server-side", "-f", str(NIM_CRDS))
    kubectl(tool_env, kubeconfig, "wait", "--for=condition=Established", "crd/nemoevaluators.apps.nvidia.com")
    custom = client.CustomObjectsApi(api)
    # Broken state: the CR points at an Entity Store in another namespace (what `oc set env` papered over).
    custom.create_namespaced_custom_object(
        "apps.nvidia.com", "v1alpha1", ns, "nemoevaluators", evaluator_cr(ns, "http://nemoentitystore-sample:8000")
    )
    right = f"http://nemoentitystore-sample.{ns}.svc.cluster.local:8000"
    extra = {
        "remediate_namespace": ns,
        "remediate_evaluator_name": "nemoevaluator-sample",
        "remediate_evaluator_entity_store_endpoint": right,
    }
    first = run_role(extra, kubeconfig)
    assert first.ok, first.text()[-3000:]
    assert first.ran("Set spec.entitystore.endpoint")
    cr = custom.get_namespaced_custom_object(
        "apps.nvidia.com", "v1alpha1", ns, "nemoevaluators", "nemoevaluator-sample"
    )
    assert cr["spec"]["entitystore"]["endpoint"] == right
    assert cr["spec"]["datastore"]["endpoint"] == "http://nemodatastore-sample:8000/v1/hf", "other fields untouched"
    version = cr["metadata"]["resourceVersion"]
    second = run_role(extra, kubeconfig)
    assert second.ok and second.changed == 0
    cr = custom.get_namespaced_custom_object(
        "apps.nvidia.com", "v1alpha1", ns, "nemoevaluators", "nemoevaluator-sample"
    )
    assert cr["metadata"]["resourceVersion"] == version

    bad = run_role(dict(extra, remediate_evaluator_entity_store_endpoint="nemoentitystore:8000"), kubeconfig)
    assert not bad.ok and "remediate_evaluator_entity_store_endpoint must be an http(s) URL" in bad.failure_msg()
    missing = run_role(dict(extra, remediate_evaluator_name="no-such-evaluator"), kubeconfig)
    assert not missing.ok and "the custom resource does not exist" in missing.failure_msg()


# ---------------------------------------------------------------- scratch-volume: MAP takes effect, Kyverno, none


@pytest.mark.parametrize("ns_on", ["pcai", "nutanix"], indirect=True)
def test_scratch_policy_active_when_the_role_reports_success(ns_on):
    """The role waits for the new MutatingAdmissionPolicy to act (dry-run Pod) before it returns, so an
    entity-handler Job created right after the run gets /scratch without the test waiting."""
    _profile, kubeconfig, api, ns = ns_on
    assert not has_scratch(job_pod(api, ns, "customizer-entity-handler-before"))
    first = run_role({"remediate_namespace": ns}, kubeconfig)
    assert first.ok, first.text()[-3000:]
    assert first.ran("Wait until a dry-run entity-handler Pod gets")
    assert has_scratch(job_pod(api, ns, "customizer-entity-handler-after")), "policy not active when the role returned"
    assert not has_scratch(job_pod(api, ns, "unrelated-job"))
    assert client.CoreV1Api(api).list_namespaced_pod(ns, field_selector="metadata.name=dfw-scratch-probe").items == []
    second = run_role({"remediate_namespace": ns}, kubeconfig)
    assert second.ok and second.changed == 0


@pytest.mark.parametrize("ns_on", ["vanilla"], indirect=True)
def test_scratch_without_the_chosen_mechanism_fails_naming_the_options(ns_on):
    _profile, kubeconfig, api, ns = ns_on
    run = run_role({"remediate_namespace": ns, "remediate_scratch_mechanism": "kyverno"}, kubeconfig)
    assert not run.ok
    msg = run.failure_msg()
    assert "remediate_scratch_mechanism=kyverno" in msg and "no Kyverno" in msg
    for option in ("MutatingAdmissionPolicy feature gate", "install Kyverno", "upgrade the NeMo customizer"):
        assert option in msg
    maps = client.CustomObjectsApi(api).list_cluster_custom_object(
        "admissionregistration.k8s.io", "v1beta1", "mutatingadmissionpolicies"
    )["items"]
    assert f"dfw-scratch-{ns}" not in [m["metadata"]["name"] for m in maps], "nothing created before failing"


@pytest.fixture
def nutanix_with_kyverno_api(tool_env):
    """The nutanix cluster with the kyverno.io ClusterPolicy CRD fixture (API type only, no Kyverno)."""
    kubeconfig = kubeconfig_for("nutanix")
    kubectl(tool_env, kubeconfig, "apply", "--server-side", "-f", str(KYVERNO_CRD))
    kubectl(tool_env, kubeconfig, "wait", "--for=condition=Established", "crd/clusterpolicies.kyverno.io")
    api, ns = fresh_namespace(kubeconfig, "ukyv")
    yield kubeconfig, api, ns
    drop_namespace(api, ns)
    kubectl(tool_env, kubeconfig, "delete", "--ignore-not-found", "-f", str(KYVERNO_CRD))


def test_kyverno_variant_writes_the_policy_and_refuses_success_without_kyverno_acting(nutanix_with_kyverno_api):
    """Kyverno itself cannot run here: the test proves platform_info sees Kyverno, the ClusterPolicy the API
    server accepted has the right content and scope, auto still prefers MutatingAdmissionPolicy, and the role
    does NOT report success while no Kyverno webhook makes the policy act (its dry-run probe finds no /scratch)."""
    kubeconfig, api, ns = nutanix_with_kyverno_api
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


# ---------------------------------------------------------------- entity-store-mock (gateway fallback)


def mock_locations(conf):
    out = {}
    lines = conf.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("location = /v1/models/"):
            path = line.split("=", 1)[1].strip().rstrip("{").strip()
            body = lines[i + 1].strip().removeprefix("return 200 '").removesuffix("';")
            out[path] = json.loads(body)
    return out


@pytest.mark.parametrize("ns_on", ["vanilla"], indirect=True)
def test_entity_store_mock_generated_from_the_nim_list(ns_on):
    _profile, kubeconfig, api, ns = ns_on
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    extra = {"remediate_namespace": ns, "remediate_entity_store_mock": True, "remediate_nemo_models": MODELS}
    first = run_role(extra, kubeconfig)
    assert first.ok, first.text()[-3000:]
    conf = core.read_namespaced_config_map("dfw-entity-store-mock", ns).data["default.conf"]
    locations = mock_locations(conf)
    assert sorted(locations) == ["/v1/models/meta/llama-3.1-8b-instruct", "/v1/models/meta/llama-3.2-1b-instruct"]
    entity = locations["/v1/models/meta/llama-3.2-1b-instruct"]
    assert entity["namespace"] == "meta" and entity["name"] == "llama-3.2-1b-instruct"
    assert entity["api_endpoint"]["url"] == f"http://llama-3-2-1b-instruct.{ns}.svc.cluster.local:8000/v1"
    sha = apps.read_namespaced_deployment("dfw-entity-store-mock", ns).spec.template.metadata.annotations
    assert core.read_namespaced_service("dfw-entity-store-mock", ns).spec.ports[0].port == 8000
    assert run_role(extra, kubeconfig).changed == 0

    third = {"name": "nvidia/llama-3.3-nemotron-super-49b-v1", "nim_service": "nemotron-super", "nim_namespace": "nim"}
    grown = run_role(dict(extra, remediate_nemo_models=[*MODELS, third]), kubeconfig)
    assert grown.ok
    locations = mock_locations(core.read_namespaced_config_map("dfw-entity-store-mock", ns).data["default.conf"])
    assert locations["/v1/models/nvidia/llama-3.3-nemotron-super-49b-v1"]["api_endpoint"]["url"] == (
        "http://nemotron-super.nim.svc.cluster.local:8000/v1"
    )
    new_sha = apps.read_namespaced_deployment("dfw-entity-store-mock", ns).spec.template.metadata.annotations
    assert new_sha != sha, "a changed NIM list must roll the mock"


# ---------------------------------------------------------------- openshift-routes


ROUTES = [
    {"name": "flywheel-api", "service": "df-api-service", "port": 8000},
    {"name": "flywheel-kibana", "service": "df-kibana-service", "port": 5601},
    {"name": "flywheel-mlflow", "service": "df-mlflow-service", "port": 5000, "timeout": "600s"},
]


@pytest.mark.parametrize("ns_on", ["openshift"], indirect=True)
def test_openshift_routes_for_api_and_uis(ns_on):
    _profile, kubeconfig, api, ns = ns_on
    custom = client.CustomObjectsApi(api)
    assert custom.list_namespaced_custom_object("route.openshift.io", "v1", ns, "routes")["items"] == []
    extra = {"remediate_namespace": ns, "remediate_routes": ROUTES}
    first = run_role(extra, kubeconfig)
    assert first.ok, first.text()[-3000:]
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
    assert first.fact("remediate_route_urls")["flywheel-api"] == f"https://{host}"
    second = run_role(extra, kubeconfig)
    assert second.ok and second.changed == 0


# ---------------------------------------------------------------- pcai-routing and the values overlay


@pytest.mark.parametrize("ns_on", ["pcai"], indirect=True)
def test_pcai_routing_domain_sidecars_and_values_overlay(ns_on):
    _profile, kubeconfig, api, ns = ns_on
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    domain = core.read_namespaced_config_map("ezua-cluster-config", "ezua-system").data["cluster.domainName"]

    # The ${DOMAIN_NAME} trap: a literal placeholder is refused before anything is created.
    trap = run_role({"remediate_namespace": ns, "remediate_pcai_cluster_domain": "${DOMAIN_NAME}"}, kubeconfig)
    assert not trap.ok and "remediate_pcai_cluster_domain" in trap.failure_msg()
    assert labelled(api, ns, "pcai-routing") == []

    # Broken state: in the mesh, a Job Pod gets the (emulated) istio-proxy sidecar that keeps it running.
    first = run_role({"remediate_namespace": ns}, kubeconfig)
    assert first.ok, first.text()[-3000:]
    assert core.read_namespace(ns).metadata.labels.get("istio-injection") == "enabled"
    plain = job_pod(api, ns, "plain-job")
    assert "istio-proxy" in [c.name for c in plain.spec.containers + (plain.spec.init_containers or [])]

    overlay = first.fact("remediate_flywheel_values_overlay")
    assert overlay["ezua"]["virtualService"] == {
        "endpoint": f"data-flywheel.{domain}",
        "istioGateway": "istio-system/ezaf-gateway",
    }
    assert "$" not in json.dumps(overlay)
    assert overlay["podLabels"] == {"hpe-ezua/app": "data-flywheel", "hpe-ezua/type": "vendor-service"}
    assert overlay["podAnnotations"] == {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432,9200,6379,27017"}
    assert overlay["foundationalFlywheelServer"]["config"]["nmp_config"]["nemo_base_url"] == (
        f"http://df-generic-service.{ns}.svc.cluster.local:8000"
    )
    assert overlay["namespace"] == ns
    fixed = job_pod(api, ns, "fixed-job", annotations=overlay["jobPodAnnotations"])
    assert "istio-proxy" not in [c.name for c in fixed.spec.containers + (fixed.spec.init_containers or [])]

    vs = {
        v["metadata"]["name"]: v
        for v in custom.list_namespaced_custom_object("networking.istio.io", "v1beta1", ns, "virtualservices")["items"]
    }
    gw = vs["data-flywheel"]["spec"]
    assert gw["hosts"] == [f"data-flywheel.{domain}"] and gw["gateways"] == ["istio-system/ezaf-gateway"]
    assert gw["http"][0]["route"][0]["destination"]["host"] == f"df-api-service.{ns}.svc.cluster.local"
    mesh = vs["nemo-generic-routing"]["spec"]
    assert "gateways" not in mesh and mesh["hosts"] == [f"df-generic-service.{ns}.svc.cluster.local"]
    prefixes = [
        (m["uri"]["prefix"], r["route"][0]["destination"]["host"].split(".")[0])
        for r in mesh["http"]
        for m in r["match"]
    ]
    assert ("/v1/customization", "nemo-customizer") in prefixes and ("/v1/models", "nemo-entity-store") in prefixes
    assert core.read_namespaced_service("df-generic-service", ns).spec.ports[0].port == 8000

    second = run_role({"remediate_namespace": ns}, kubeconfig)
    assert second.ok and second.changed == 0


# ---------------------------------------------------------------- no-touch per profile


@pytest.mark.parametrize("ns_on", ["vanilla", "openshift", "nutanix"], indirect=True)
def test_pcai_units_do_not_touch_other_platforms(ns_on):
    profile, kubeconfig, api, ns = ns_on
    run = run_role({"remediate_namespace": ns}, kubeconfig)
    assert run.ok, run.text()[-3000:]
    assert run.fact("remediate_facts")["platform"] == profile
    assert labelled(api, ns, "pcai-routing") == []
    assert run.fact("remediate_flywheel_values_overlay") == {}
    assert "istio-injection" not in (client.CoreV1Api(api).read_namespace(ns).metadata.labels or {})


@pytest.mark.parametrize("ns_on", ["vanilla", "pcai", "nutanix"], indirect=True)
def test_routes_only_on_openshift(ns_on):
    profile, kubeconfig, api, ns = ns_on
    run = run_role({"remediate_namespace": ns, "remediate_routes": ROUTES}, kubeconfig)
    assert run.ok, run.text()[-3000:]
    assert not run.ran("Routes for the flywheel API and UIs")
    assert [k for k, _n in labelled(api, ns, "openshift-routes")] == []
    assert run.fact("remediate_route_urls") == {}


@pytest.mark.parametrize("ns_on", ["nutanix"], indirect=True)
def test_nutanix_profile_gets_only_the_all_platform_units(ns_on):
    """Exercises the whole role on the nutanix profile: only all-platform units act; no OpenShift or PCAI
    objects; the resolver check is not part of the cluster-side role run."""
    profile, kubeconfig, api, ns = ns_on
    extra = {
        "remediate_namespace": ns,
        "remediate_scc_grants": [{"service_account": "default", "scc": "anyuid"}],
        "remediate_model_pvc": "model-store",
        "remediate_routes": ROUTES,
    }
    first = run_role(extra, kubeconfig)
    assert first.ok, first.text()[-3000:]
    facts = first.fact("remediate_facts")
    assert facts["platform"] == "nutanix" and facts["nutanix_storage"]
    for remediation in ("openshift-scc", "openshift-ownership", "openshift-routes", "pcai-routing"):
        assert labelled(api, ns, remediation) == [], remediation
    assert not first.ran("resolve") and "getent" not in first.text()
    assert client.RbacAuthorizationV1Api(api).read_namespaced_role_binding("nemoevaluator-extra", ns)
    assert run_role(extra, kubeconfig).changed == 0


def test_nutanix_resolver_runs_only_on_inventory_nodes():
    """playbooks/preflight.yml: the resolver entry point is only included in the play over the GPU inventory
    hosts (the nodes' own resolver), never in the localhost/cluster play; site.yml imports that playbook."""
    plays = yaml.safe_load((ROOT / "playbooks/preflight.yml").read_text())
    with_resolver = [
        p
        for p in plays
        for t in p.get("tasks", [])
        if (t.get("ansible.builtin.include_role") or {}).get("tasks_from") == "nutanix_resolver"
    ]
    assert len(with_resolver) == 1
    assert with_resolver[0]["hosts"] == "{{ preflight_gpu_hosts | default('gpu_hosts') }}"
    assert all(p["hosts"] == "localhost" for p in plays if p not in with_resolver)
    main = (ROOT / "roles/remediate/tasks/main.yml").read_text()
    assert "nutanix_resolver" not in main
