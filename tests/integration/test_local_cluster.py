"""The local test cluster behaves like a real one where the collection depends on it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from .cluster_state import served_resources
from .conftest import api_client
from .kwok_logs import serve_logs, write_log

pytestmark = pytest.mark.cluster

# Tests of what the local cluster itself provides (its fake GPU nodes, its emulated provisioner).
sim_only = pytest.mark.skipif(
    bool(os.environ.get("TEST_KUBECONFIG")),
    reason="tests the local test cluster's own nodes/emulators, not a property of any cluster",
)


def wait_for(predicate, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def served(api: client.ApiClient, group_version: str) -> bool:
    group, _sep, version = group_version.rpartition("/")
    for g in client.ApisApi(api).get_api_versions().groups:
        if g.name == group:
            return any(v.version == version for v in g.versions)
    return False


# ------------------------------------------------------------------ vanilla profile
@sim_only
def test_gpu_nodes_advertise_gpus(vanilla):
    nodes = client.CoreV1Api(vanilla).list_node().items
    gpu = [n for n in nodes if n.metadata.labels.get("feature.node.kubernetes.io/pci-10de.present") == "true"]
    assert len(gpu) == 2, [n.metadata.name for n in nodes]
    for node in gpu:
        assert node.status.allocatable["nvidia.com/gpu"] == "8"
        assert node.metadata.labels["nvidia.com/gpu.product"].startswith("NVIDIA-")
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    cpu = [n for n in nodes if n not in gpu]
    assert cpu and all("nvidia.com/gpu" not in (n.status.allocatable or {}) for n in cpu)


@sim_only
def test_gpu_request_is_scheduled_on_a_gpu_node(vanilla, namespace):
    core = client.CoreV1Api(vanilla)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="wants-gpu"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="c",
                    image="nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
                    resources=client.V1ResourceRequirements(limits={"nvidia.com/gpu": "4"}),
                )
            ]
        ),
    )
    core.create_namespaced_pod(namespace, pod)
    node = wait_for(lambda: core.read_namespaced_pod("wants-gpu", namespace).spec.node_name, what="scheduling")
    assert node.startswith("gpu-node-")
    # 8 GPUs per node: a request for 9 can never be scheduled, and the scheduler says why.
    pod.metadata.name = "wants-too-many"
    pod.spec.containers[0].resources.limits = {"nvidia.com/gpu": "9"}
    core.create_namespaced_pod(namespace, pod)

    def unschedulable():
        conds = core.read_namespaced_pod("wants-too-many", namespace).status.conditions or []
        return [c for c in conds if c.type == "PodScheduled" and c.reason == "Unschedulable"]

    cond = wait_for(unschedulable, what="the scheduler to refuse 9 GPUs")[0]
    assert "nvidia.com/gpu" in cond.message


def test_deployment_reaches_ready(vanilla, namespace):
    apps = client.AppsV1Api(vanilla)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.27")]),
                ),
            ),
        ),
    )
    dep = wait_for(
        lambda: (d := apps.read_namespaced_deployment("web", namespace)).status.ready_replicas == 2 and d,
        what="2/2 ready replicas",
    )
    assert dep.status.available_replicas == 2


def test_job_completes(vanilla, namespace):
    batch = client.BatchV1Api(vanilla)
    batch.create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="once"),
            spec=client.V1JobSpec(
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        containers=[client.V1Container(name="c", image="busybox", command=["true"])],
                    )
                ),
            ),
        ),
    )

    def complete():
        conds = batch.read_namespaced_job("once", namespace).status.conditions or []
        return any(c.type == "Complete" and c.status == "True" for c in conds)

    wait_for(complete, what="Job Complete")
    assert batch.read_namespaced_job("once", namespace).status.succeeded == 1


def test_vanilla_as_shipped_serves_no_mutating_admission_policy(vanilla):
    """Kubernetes 1.34 ships MutatingAdmissionPolicy (beta) with its feature gate off: the default profile too."""
    kinds = set()
    for group in client.ApisApi(vanilla).get_api_versions().groups:
        if group.name == "admissionregistration.k8s.io":
            for version in group.versions:
                found = vanilla.call_api(
                    f"/apis/{version.group_version}", "GET", response_type="object", _return_http_data_only=True
                )
                kinds |= {r["kind"] for r in found["resources"]}
    assert "ValidatingAdmissionPolicy" in kinds, "the group is served (ValidatingAdmissionPolicy is GA)"
    assert "MutatingAdmissionPolicy" not in kinds


@pytest.fixture
def map_namespace(vanilla_map):
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(vanilla_map)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def test_mutating_admission_policy_mutates_new_objects(vanilla_map, map_namespace):
    """The vanilla-map profile: the feature gate and admissionregistration.k8s.io/v1beta1 on."""
    vanilla, namespace = vanilla_map, map_namespace
    assert served(vanilla, "admissionregistration.k8s.io/v1beta1")
    custom = client.CustomObjectsApi(vanilla)
    name = f"t-map-{uuid.uuid4().hex[:6]}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1beta1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}
                ]
            },
            "mutations": [
                {
                    "patchType": "ApplyConfiguration",
                    "applyConfiguration": {
                        "expression": 'Object{metadata: Object.metadata{labels: {"mutated-by": "map"}}}'
                    },
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1beta1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    }
    group, version = "admissionregistration.k8s.io", "v1beta1"
    custom.create_cluster_custom_object(group, version, "mutatingadmissionpolicies", policy)
    custom.create_cluster_custom_object(group, version, "mutatingadmissionpolicybindings", binding)
    core = client.CoreV1Api(vanilla)
    try:
        # The policy is picked up asynchronously: create probe objects until one is mutated.
        def mutated():
            probe = f"probe-{uuid.uuid4().hex[:6]}"
            cm = core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=probe))
            )
            return (cm.metadata.labels or {}).get("mutated-by") == "map"

        wait_for(mutated, timeout=30, what="the MutatingAdmissionPolicy to take effect")
        stored = core.list_namespaced_config_map(namespace, label_selector="mutated-by=map").items
        assert stored, "the mutation is in the stored object, not only in the response"
        # the binding's namespaceSelector keeps it out of other namespaces
        other = core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"not-mutated-{uuid.uuid4().hex[:6]}"))
        )
        core.delete_namespaced_config_map(other.metadata.name, "default")
        assert "mutated-by" not in (other.metadata.labels or {})
    finally:
        custom.delete_cluster_custom_object(group, version, "mutatingadmissionpolicybindings", name)
        custom.delete_cluster_custom_object(group, version, "mutatingadmissionpolicies", name)


def test_api_validation_is_real(vanilla):
    """Server-side validation rejects what a real API server rejects."""
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(vanilla).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="Not_Valid")))
    assert err.value.status == 422


@sim_only
def test_pvc_is_bound_by_the_emulated_provisioner(vanilla, namespace):
    core = client.CoreV1Api(vanilla)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="data"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteMany"],
                storage_class_name="nfs-client",
                resources=client.V1VolumeResourceRequirements(requests={"storage": "5Gi"}),
            ),
        ),
    )
    pvc = wait_for(
        lambda: (p := core.read_namespaced_persistent_volume_claim("data", namespace)).status.phase == "Bound" and p,
        what="PVC Bound",
    )
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    assert pv.spec.csi.driver == "nfs.csi.k8s.io"
    assert pv.spec.csi.volume_attributes["server"] == "nfs.dfw.example.test"


@sim_only
def test_container_logs_come_through_the_api_server_from_kwok(vanilla, namespace, tmp_path):
    """pods/log as a kubelet serves it: per container, tailLines, the current content of the log, and a 400 for a
    container whose log there is none of (kwok Logs CRD, read by the real kube-apiserver from kwok's endpoint)."""
    core = client.CoreV1Api(vanilla)
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="two"),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="app", image="app"), client.V1Container(name="side", image="s")]
            ),
        ),
    )
    wait_for(lambda: core.read_namespaced_pod("two", namespace).spec.node_name, what="the Pod scheduled")
    files = serve_logs(vanilla, namespace, "two", {"app": ["starting", "ERROR: it broke"]}, tmp_path)
    assert core.read_namespaced_pod_log("two", namespace, container="app") == "starting\nERROR: it broke\n"
    assert core.read_namespaced_pod_log("two", namespace, container="app", tail_lines=1) == "ERROR: it broke\n"
    write_log(files["app"], ["starting", "ERROR: it broke", "recovered"])
    assert core.read_namespaced_pod_log("two", namespace, container="app", tail_lines=1) == "recovered\n"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("two", namespace, container="side")
    assert err.value.status == 400 and "side" in err.value.body


# ------------------------------------------------------------------ RBAC
def test_rbac_is_enforced_for_a_service_account_token(vanilla, namespace):
    core, rbac = client.CoreV1Api(vanilla), client.RbacAuthorizationV1Api(vanilla)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="configmap-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
        ),
    )
    token = core.create_namespaced_service_account_token(
        "reader",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=["https://kubernetes.default.svc.cluster.local"], expiration_seconds=600
            )
        ),
    ).status.token

    cfg = client.Configuration()
    cfg.host = vanilla.configuration.host
    cfg.ssl_ca_cert = vanilla.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    as_sa = client.CoreV1Api(client.ApiClient(cfg))

    assert isinstance(as_sa.list_namespaced_config_map(namespace).items, list)  # allowed
    with pytest.raises(ApiException) as err:
        as_sa.list_namespaced_secret(namespace)  # not in the Role
    assert err.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in err.value.body
    with pytest.raises(ApiException) as err:
        as_sa.list_namespaced_config_map("default")  # Role is namespaced
    assert err.value.status == 403
    with pytest.raises(ApiException) as err:
        as_sa.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert err.value.status == 403  # verb not granted


# ------------------------------------------------------------------ openshift profile
def test_openshift_api_surface_is_served(openshift):
    for gv in ("security.openshift.io/v1", "route.openshift.io/v1", "config.openshift.io/v1"):
        assert served(openshift, gv), gv
    custom = client.CustomObjectsApi(openshift)
    version = custom.get_cluster_custom_object("config.openshift.io", "v1", "clusterversions", "version")
    assert re.match(r"^4\.\d+\.\d+$", version["status"]["desired"]["version"])
    scc = custom.get_cluster_custom_object("security.openshift.io", "v1", "securitycontextconstraints", "restricted-v2")
    assert scc["runAsUser"]["type"] == "MustRunAsRange"
    role = client.RbacAuthorizationV1Api(openshift).read_cluster_role("system:openshift:scc:anyuid")
    assert role.rules[0].resource_names == ["anyuid"] and role.rules[0].verbs == ["use"]
    nodes = client.CoreV1Api(openshift).list_node().items
    assert all(n.metadata.labels.get("node.openshift.io/os_id") == "rhcos" for n in nodes)


def test_openshift_new_namespaces_get_a_unique_uid_range(openshift):
    core = client.CoreV1Api(openshift)
    names = [f"t-ocp-{uuid.uuid4().hex[:6]}", f"t-ocp-{uuid.uuid4().hex[:6]}"]
    try:
        for name in names:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

        def ranges():
            got = [
                (core.read_namespace(n).metadata.annotations or {}).get("openshift.io/sa.scc.uid-range") for n in names
            ]
            return all(got) and got

        got = wait_for(ranges, timeout=20, what="openshift.io/sa.scc.uid-range on new namespaces")
        for value in got:
            start, size = value.split("/")
            assert int(start) >= 1_000_000_000 and int(size) == 10_000
        assert got[0] != got[1]
    finally:
        for name in names:
            core.delete_namespace(name)


def test_openshift_route_gets_a_host(openshift):
    custom = client.CustomObjectsApi(openshift)
    name = f"r-{uuid.uuid4().hex[:6]}"
    route = {
        "apiVersion": "route.openshift.io/v1",
        "kind": "Route",
        "metadata": {"name": name},
        "spec": {"to": {"kind": "Service", "name": "api"}, "port": {"targetPort": 8000}},
    }
    created = custom.create_namespaced_custom_object("route.openshift.io", "v1", "default", "routes", route)
    try:
        assert created["spec"]["host"] == f"{name}-default.apps.dfw-openshift.example.test"
        bad = {**route, "metadata": {"name": name + "-bad"}, "spec": {"port": {"targetPort": 8000}}}
        with pytest.raises(ApiException) as err:
            custom.create_namespaced_custom_object("route.openshift.io", "v1", "default", "routes", bad)
        assert err.value.status == 422 and "spec.to" in err.value.body
    finally:
        custom.delete_namespaced_custom_object("route.openshift.io", "v1", "default", "routes", name)


# ---------------------------------------------------------------- EMULATED OpenShift SCC admission
@pytest.fixture
def scc_namespace(openshift):
    """A fresh openshift namespace with its UID range written (as cluster-policy-controller does) and a
    ServiceAccount `es` without any SCC grant."""
    core = client.CoreV1Api(openshift)
    name = f"t-scc-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: (core.read_namespace(name).metadata.annotations or {}).get("openshift.io/sa.scc.uid-range"),
        timeout=20,
        what="the namespace UID range",
    )
    wait_for(lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items)
    core.create_namespaced_service_account(name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="es")))
    yield name
    core.delete_namespace(name)


def scc_pod(name, security_context=None, container_context=None, annotations=None, volumes=None):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations),
        spec=client.V1PodSpec(
            service_account_name="es",
            security_context=security_context,
            containers=[client.V1Container(name="main", image="fixture:1", security_context=container_context)],
            volumes=volumes,
        ),
    )


def refused(core, namespace, pod) -> str:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(namespace, pod)
    assert err.value.status == 403, err.value.body
    return json.loads(err.value.body)["message"]


def test_openshift_scc_admission_refuses_what_the_service_account_may_not_use(openshift, scc_namespace):
    """The emulated SCC admission (a webhook of the tests, tests/sim/admission.py, called by the real API
    server) admits a Pod only under an SCC its ServiceAccount may `use`, as OpenShift does."""
    core, rbac, ns = client.CoreV1Api(openshift), client.RbacAuthorizationV1Api(openshift), scc_namespace
    uid_start = int(core.read_namespace(ns).metadata.annotations["openshift.io/sa.scc.uid-range"].split("/")[0])
    # restricted-v2 (every authenticated subject): no security context, or a UID inside the namespace range
    core.create_namespaced_pod(ns, scc_pod("plain"))
    core.create_namespaced_pod(ns, scc_pod("in-range", client.V1PodSecurityContext(run_as_user=uid_start + 5)))
    root = client.V1PodSecurityContext(run_as_user=0)
    body = refused(core, ns, scc_pod("root", root))
    assert "unable to validate against any security context constraint" in body
    assert 'provider "anyuid": Forbidden: not usable by user or serviceaccount' in body
    assert "must be in the ranges" in body and "EMULATED" in body
    fixed_uid = refused(core, ns, scc_pod("uid-1000", client.V1PodSecurityContext(run_as_user=1000)))
    assert f"[{uid_start}, {uid_start + 9999}]" in fixed_uid

    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="es-anyuid"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:openshift:scc:anyuid"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="es", namespace=ns)],
        ),
    )
    # RBAC is read at admission: the grant takes effect for the next Pod
    wait_for(lambda: _created(core, ns, scc_pod("root", root)), timeout=20, what="the anyuid grant to take effect")
    # anyuid still refuses a privileged container, and the grant is per ServiceAccount
    privileged = refused(core, ns, scc_pod("priv", container_context=client.V1SecurityContext(privileged=True)))
    assert "Privileged containers are not allowed" in privileged
    other = scc_pod("root-default-sa", root)
    other.spec.service_account_name = "default"
    assert "not usable by user or serviceaccount" in refused(core, ns, other)
    host_path = [client.V1Volume(name="h", host_path=client.V1HostPathVolumeSource(path="/var"))]
    assert "hostPath volumes are not allowed" in refused(core, ns, scc_pod("hostpath", volumes=host_path))


def _created(core, namespace, pod) -> bool:
    try:
        core.create_namespaced_pod(namespace, pod)
    except ApiException as exc:
        if exc.status == 403:
            return False
        raise
    return True


def test_openshift_required_scc_pins_the_constraint(openshift, scc_namespace):
    """openshift.io/required-scc: only the named SCC is tried, even for a Pod restricted-v2 would admit."""
    core, ns = client.CoreV1Api(openshift), scc_namespace
    body = refused(core, ns, scc_pod("pinned", annotations={"openshift.io/required-scc": "anyuid"}))
    assert "anyuid" in body and "restricted-v2" not in body
    core.create_namespaced_pod(ns, scc_pod("pinned-ok", annotations={"openshift.io/required-scc": "restricted-v2"}))


# ---------------------------------------------------------------- cluster DNS where each platform has it
@pytest.mark.parametrize(
    ("profile", "namespace", "name", "address", "absent"),
    [
        ("vanilla", "kube-system", "kube-dns", "10.96.0.10", ("openshift-dns", "dns-default")),
        ("openshift", "openshift-dns", "dns-default", "172.30.0.10", ("kube-system", "kube-dns")),
        ("pcai", "kube-system", "kube-dns", "10.96.0.10", ("openshift-dns", "dns-default")),
        ("nutanix", "kube-system", "kube-dns", "10.96.0.10", ("openshift-dns", "dns-default")),
    ],
)
def test_cluster_dns_service_lives_where_the_platform_has_it(profile, namespace, name, address, absent):
    core = client.CoreV1Api(api_client(profile))
    service = core.read_namespaced_service(name, namespace)
    assert service.spec.cluster_ip == address
    assert {p.port for p in service.spec.ports} == {53, 9153} or {p.port for p in service.spec.ports} == {53, 9154}
    with pytest.raises(ApiException) as err:
        core.read_namespaced_service(absent[1], absent[0])
    assert err.value.status == 404


def test_the_tests_discover_each_cluster_afresh_where_the_clients_cache_would_mislead(vanilla, openshift):
    """The kubernetes client keeps its discovery in a file named after the server URL alone (osrcp-<md5 of the
    URL>.json in the temp directory), and local clusters reuse ports: a file written for another cluster hides or
    invents kinds. cluster_state.served_resources (used by the snapshot, owned-state and secret-scan helpers) must
    answer what THIS server serves even with such a file in place."""
    host = vanilla.configuration.host.encode()
    default = Path(tempfile.gettempdir(), f"osrcp-{hashlib.md5(host, usedforsecurity=False).hexdigest()}.json")
    kept = default.read_bytes() if default.exists() else None
    try:
        default.unlink(missing_ok=True)  # an earlier client's file for this URL would be read, not rewritten
        dynamic.DynamicClient(openshift, cache_file=str(default)).resources.search()  # another cluster's file
        stale = dynamic.DynamicClient(vanilla)  # the client's default: that file
        assert any(r.kind == "Route" for r in stale.resources.search()), "the premise: a foreign cache invents kinds"
        kinds = {(r.group, r.kind) for r in served_resources(vanilla)}
    finally:
        if kept is None:
            default.unlink(missing_ok=True)
        else:
            default.write_bytes(kept)
    assert ("route.openshift.io", "Route") not in kinds
    assert {("", "Namespace"), ("apps", "Deployment"), ("apiextensions.k8s.io", "CustomResourceDefinition")} <= kinds


@sim_only
def test_a_stopped_cluster_whose_ports_were_taken_meanwhile_is_recreated(tmp_path):
    """A stopped cluster restarts on the ports it was created with. Another cluster created meanwhile (the other
    test worker) or any other process may hold one of them by then: `up` must notice and create the cluster
    afresh, not wait two minutes for an API server that cannot bind and then fail (seen in CI)."""
    from tests.sim import cluster as sim  # noqa: PLC0415 - for its binaries; its STATE is this worker's

    clusters = tmp_path / "clusters"
    env = {**os.environ, "DFW_CLUSTERS_DIR": str(clusters)}

    def launcher(*args):
        return subprocess.run(
            [sys.executable, str(sim.HERE / "cluster.py"), *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def port(kubeconfig):
        return int(re.search(r"server: https://127\.0\.0\.1:(\d+)", Path(kubeconfig).read_text()).group(1))

    first = launcher("up", "--profile", "vanilla")
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        kubeconfig = first.stdout.strip().splitlines()[-1]
        held = port(kubeconfig)
        kwok_env = {**env, "KWOK_WORKDIR": str(clusters / "kwok")}
        with socket.socket() as squatter:
            with sim.port_lock():  # the other worker creating a cluster now could take the port first
                subprocess.run(
                    [str(sim.binary("kwokctl")), "stop", "cluster", "--name", "dfw-vanilla"],
                    env=kwok_env,
                    check=True,
                    capture_output=True,
                )
                squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

                def bound():
                    try:
                        squatter.bind(("127.0.0.1", held))
                    except OSError:
                        return False
                    return True

                wait_for(bound, timeout=30, what=f"port {held} to be free")
                squatter.listen()
            again = launcher("up", "--profile", "vanilla")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "its ports are in use by other processes now (" in again.stderr
        assert f"kube-apiserver {held}" in again.stderr
        assert port(kubeconfig) != held
        answer = subprocess.run(
            [str(sim.binary("kubectl")), "--kubeconfig", kubeconfig, "get", "--raw", "/readyz"],
            check=False,
            capture_output=True,
            text=True,
        )
        assert answer.stdout.strip() == "ok", answer.stderr
    finally:
        launcher("down", "--profile", "vanilla")
