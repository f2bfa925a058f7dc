#!/usr/bin/env python3
"""Emulated platform controllers for the local test cluster (EMULATION: not the real controllers).

Only the visible effect the collection depends on is reproduced, against the real API server:

* pv-provisioner (every profile): a dynamic provisioner for the profile's StorageClasses. For each
  Pending PVC of a known provisioner it creates a PV pre-bound to the claim (CSI source named after
  the provisioner; NFS parameters copied into volumeAttributes), so kube-controller-manager's real
  PV binder binds it; Released PVs it created are deleted (reclaimPolicy Delete).
* namespace-uid (openshift): what OpenShift's cluster-policy-controller does for every namespace:
  allocate a unique 10000-wide UID block and write the `openshift.io/sa.scc.uid-range`,
  `openshift.io/sa.scc.supplemental-groups` and `openshift.io/sa.scc.mcs` annotations.

* admission (openshift, pcai): the EMULATED admission webhooks of tests/sim/admission.py (SCC
  admission, Route hosts, Istio sidecar injection), registered with the real API server by cluster.py.

Run by tests/sim/cluster.py; logs to the cluster state directory.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from kubernetes import client, config, utils, watch
from kubernetes.client.rest import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests import upstream  # noqa: E402 - the repo root goes on the path first

LOG = logging.getLogger("emulators")
STOP = threading.Event()

PROVISIONERS = {
    "rancher.io/local-path",
    "nfs.csi.k8s.io",
    "csi.nutanix.com",
    "csi.hpe.com",
    "openshift-storage.cephfs.csi.ceph.com",
    "openshift-storage.rbd.csi.ceph.com",
}
UID_BASE = 1_000_000_000
UID_BLOCK = 10_000
UID_ANN = "openshift.io/sa.scc.uid-range"


def forever(name: str, fn, *args) -> None:
    """Run a watch loop until stopped, restarting it after errors (API server restarts, 410 Gone)."""
    while not STOP.is_set():
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - keep the emulator alive, log the reason
            LOG.warning("%s: %s; restarting in 1s", name, exc)
            STOP.wait(1)


# ---------------------------------------------------------------- pv-provisioner
def volume_source(provisioner: str, pv_name: str, attrs: dict) -> dict:
    """A CSI source for CSI provisioners; local-path's name is no CSI driver name (it has a slash, which
    the API refuses there): the host path its provisioner would create."""
    if "/" in provisioner:
        return {"host_path": client.V1HostPathVolumeSource(path=f"/opt/local-path-provisioner/{pv_name}")}
    source = client.V1CSIPersistentVolumeSource(driver=provisioner, volume_handle=pv_name, volume_attributes=attrs)
    return {"csi": source}


def provision(core: client.CoreV1Api, storage: client.StorageV1Api, pvc) -> None:
    sc_name = pvc.spec.storage_class_name
    if not sc_name or pvc.status.phase != "Pending" or pvc.spec.volume_name:
        return
    try:
        sc = storage.read_storage_class(sc_name)
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    if sc.provisioner not in PROVISIONERS:
        return
    pv_name = f"pvc-{pvc.metadata.uid}"
    attrs = {k: str(v) for k, v in (sc.parameters or {}).items() if "secret" not in k.lower()}
    pv = client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(
            name=pv_name,
            annotations={
                "pv.kubernetes.io/provisioned-by": sc.provisioner,
                "dfw.sim/emulated": "pv-provisioner",
            },
        ),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": pvc.spec.resources.requests.get("storage", "1Gi")},
            access_modes=pvc.spec.access_modes,
            persistent_volume_reclaim_policy=sc.reclaim_policy or "Delete",
            storage_class_name=sc_name,
            volume_mode=pvc.spec.volume_mode,
            claim_ref=client.V1ObjectReference(
                kind="PersistentVolumeClaim",
                namespace=pvc.metadata.namespace,
                name=pvc.metadata.name,
                uid=pvc.metadata.uid,
            ),
            **volume_source(sc.provisioner, pv_name, attrs),
        ),
    )
    try:
        core.create_persistent_volume(pv)
        LOG.info("provisioned %s for %s/%s (%s)", pv_name, pvc.metadata.namespace, pvc.metadata.name, sc_name)
    except ApiException as exc:
        if exc.status != 409:
            raise


def pv_provisioner(api: client.ApiClient) -> None:
    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    claims = core.list_persistent_volume_claim_for_all_namespaces()
    for pvc in claims.items:
        provision(core, storage, pvc)
    for event in watch.Watch().stream(
        core.list_persistent_volume_claim_for_all_namespaces,
        resource_version=claims.metadata.resource_version,
        timeout_seconds=60,
    ):
        if STOP.is_set():
            return
        if event["type"] in ("ADDED", "MODIFIED"):
            provision(core, storage, event["object"])
    # each minute: reclaim Released volumes this emulator made
    for pv in core.list_persistent_volume().items:
        ann = pv.metadata.annotations or {}
        if (
            ann.get("dfw.sim/emulated") == "pv-provisioner"
            and pv.status.phase == "Released"
            and pv.spec.persistent_volume_reclaim_policy == "Delete"
        ):
            core.delete_persistent_volume(pv.metadata.name)
            LOG.info("deleted released %s", pv.metadata.name)


# ---------------------------------------------------------------- namespace-uid (OpenShift)
def used_blocks(core: client.CoreV1Api) -> set[int]:
    blocks = set()
    for ns in core.list_namespace().items:
        value = (ns.metadata.annotations or {}).get(UID_ANN, "")
        if "/" in value:
            blocks.add(int(value.split("/")[0]))
    return blocks


def annotate_namespace(core: client.CoreV1Api, ns, blocks: set[int]) -> None:
    if UID_ANN in (ns.metadata.annotations or {}) or ns.status.phase == "Terminating":
        return
    start = UID_BASE
    while start in blocks:
        start += UID_BLOCK
    blocks.add(start)
    index = (start - UID_BASE) // UID_BLOCK
    mcs = f"s0:c{index // 25 + 1},c{index % 25 + 1}"
    patch = {
        "metadata": {
            "annotations": {
                UID_ANN: f"{start}/{UID_BLOCK}",
                "openshift.io/sa.scc.supplemental-groups": f"{start}/{UID_BLOCK}",
                "openshift.io/sa.scc.mcs": mcs,
            }
        }
    }
    core.patch_namespace(ns.metadata.name, patch)
    LOG.info("namespace %s: uid-range %s/%s", ns.metadata.name, start, UID_BLOCK)


def namespace_uid(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    namespaces = core.list_namespace()
    blocks = used_blocks(core)
    for ns in namespaces.items:
        annotate_namespace(core, ns, blocks)
    for event in watch.Watch().stream(
        core.list_namespace, resource_version=namespaces.metadata.resource_version, timeout_seconds=60
    ):
        if STOP.is_set():
            return
        if event["type"] == "ADDED":
            annotate_namespace(core, event["object"], blocks)


# ---------------------------------------------------------------- operator-status
# (group, version, plural, namespaced, ready state)
OPERATED = [
    ("nvidia.com", "v1", "clusterpolicies", False, "ready"),
    ("apps.nvidia.com", "v1alpha1", "nimcaches", True, "Ready"),
    ("apps.nvidia.com", "v1alpha1", "nimservices", True, "Ready"),
    ("apps.nvidia.com", "v1alpha1", "nemoentitystores", True, "Ready"),
    ("apps.nvidia.com", "v1alpha1", "nemodatastores", True, "Ready"),
    ("apps.nvidia.com", "v1alpha1", "nemocustomizers", True, "Ready"),
    ("apps.nvidia.com", "v1alpha1", "nemoevaluators", True, "Ready"),
    ("apps.nvidia.com", "v1alpha1", "nemoguardrails", True, "Ready"),
]
STATE_ANN = "dfw-sim.emulation/state"


def wanted_status(plural: str, obj: dict, ready: str) -> dict:
    meta = obj["metadata"]
    state = (meta.get("annotations") or {}).get(STATE_ANN, ready)
    ok = state == ready
    status: dict = {"state": state}
    if plural == "clusterpolicies":
        status["namespace"] = "gpu-operator"
        return status
    if plural == "nimcaches":
        # the real CRDs' status schema: conditions are metav1.Conditions (reason non-empty, message present)
        status["conditions"] = [
            {
                "type": "NIM_CACHE_JOB_COMPLETED",
                "status": "True" if ok else "False",
                "reason": "JobCompleted" if ok else "JobFailed",
                "message": "",
            }
        ]
        return status
    status["conditions"] = [
        {"type": "Ready", "status": "True" if ok else "False", "reason": "Ready" if ok else state, "message": ""},
        {"type": "Failed", "status": "True" if state == "Failed" else "False", "reason": state, "message": ""},
    ]
    if plural == "nimservices":
        port = (((obj.get("spec") or {}).get("expose") or {}).get("service") or {}).get("port", 8000)
        status["model"] = {
            "name": meta["name"],
            "clusterEndpoint": f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local:{port}",
            "externalEndpoint": "",
        }
    return status


def same_status(have: dict, want: dict) -> bool:
    def strip(conds):
        return [{k: c.get(k) for k in ("type", "status", "reason")} for c in conds or []]

    return (
        have.get("state") == want.get("state")
        and strip(have.get("conditions")) == strip(want.get("conditions"))
        and have.get("model") == want.get("model")
    )


OFF_LABEL = "dfw-sim.emulation/operator-status"


# The NIM Operator's Service per NIMService / Nemo* resource: named like the resource, port
# spec.expose.service.port (default 8000) named "api" (its GetServiceParams, v2.0.2 and v3.1.2).
SERVICE_PLURALS = {
    "nimservices",
    "nemoentitystores",
    "nemodatastores",
    "nemocustomizers",
    "nemoevaluators",
    "nemoguardrails",
}


def ensure_service(core: client.CoreV1Api, obj: dict) -> None:
    meta = obj["metadata"]
    port = (((obj.get("spec") or {}).get("expose") or {}).get("service") or {}).get("port") or 8000
    owner = client.V1OwnerReference(
        api_version=obj["apiVersion"], kind=obj["kind"], name=meta["name"], uid=meta["uid"], controller=True
    )
    body = client.V1Service(
        metadata=client.V1ObjectMeta(
            name=meta["name"],
            namespace=meta["namespace"],
            labels={"app.kubernetes.io/name": meta["name"], "dfw-sim.emulation/created-by": "operator-status"},
            owner_references=[owner],
        ),
        spec=client.V1ServiceSpec(
            selector={"app": meta["name"]},
            ports=[client.V1ServicePort(name="api", port=int(port), target_port="api")],
        ),
    )
    try:
        core.create_namespaced_service(meta["namespace"], body)
        LOG.info("operator-status: Service %s/%s port %s", meta["namespace"], meta["name"], port)
    except ApiException as exc:
        if exc.status != 409:
            raise


def watch_custom(api: client.ApiClient, group: str, version: str, plural: str, handle) -> None:
    """handle(obj) for every object of a custom kind, then for each one added or changed, until the watch ends
    (at most a minute; forever() lists and watches again). A kind whose CRD is not served (yet, or any more) is
    looked for again every 2 s. A watch instead of polling: an idle cluster's API server answers no lists."""
    custom = client.CustomObjectsApi(api)
    try:
        listed = custom.list_cluster_custom_object(group, version, plural)
    except ApiException as exc:
        if exc.status == 404:  # CRD not installed (yet)
            STOP.wait(2)
            return
        raise
    for obj in listed["items"]:
        handle(obj)
    for event in watch.Watch().stream(
        custom.list_cluster_custom_object,
        group,
        version,
        plural,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=60,
        _request_timeout=90,  # a connection the paused or restarted API server left hanging
    ):
        if STOP.is_set():
            return
        if event["type"] in ("ADDED", "MODIFIED"):
            handle(event["object"])


def hands_off(core: client.CoreV1Api, namespace: str | None) -> bool:
    """A test that plays the operator itself labels its namespace operator-status=off."""
    if not namespace:
        return False
    try:
        labels = core.read_namespace(namespace).metadata.labels or {}
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return labels.get(OFF_LABEL) == "off"


def operator_status(api: client.ApiClient) -> None:
    """One watch per operated kind (OPERATED), each in its own thread; returns when the emulator stops."""
    served: set[str] = set()
    refused: set[str] = set()
    threads = [
        threading.Thread(
            target=forever,
            args=(
                f"operator-status {kind[2]}",
                watch_custom,
                api,
                *kind[:3],
                status_writer(api, kind, served, refused),
            ),
            daemon=True,
        )
        for kind in OPERATED
    ]
    for thread in threads:
        thread.start()
    STOP.wait()


def status_writer(api: client.ApiClient, kind: tuple, served: set[str], refused: set[str]):
    group, version, plural, namespaced, ready = kind
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)

    def handle(obj: dict) -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return
        want = wanted_status(plural, obj, ready)
        new_service = plural in SERVICE_PLURALS and meta["uid"] not in served
        if (not new_service and same_status(obj.get("status") or {}, want)) or hands_off(core, meta.get("namespace")):
            return
        if new_service:
            ensure_service(core, obj)
            served.add(meta["uid"])
            if same_status(obj.get("status") or {}, want):
                return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for cond in want.get("conditions", []):
            cond["lastTransitionTime"] = now
        body = {"status": want}
        name = meta["name"]
        try:
            if namespaced:
                custom.patch_namespaced_custom_object_status(group, version, meta["namespace"], plural, name, body)
            else:
                custom.patch_cluster_custom_object_status(group, version, plural, name, body)
        except ApiException as exc:
            if exc.status == 404:  # deleted meanwhile
                return
            if exc.status != 422:
                raise
            # the real CRD refuses the status: say so once per object, keep serving the others
            if meta["uid"] not in refused:
                refused.add(meta["uid"])
                LOG.warning("operator-status: %s %s: status refused: %s", plural, name, exc.body)
            return
        LOG.info("operator-status: %s %s -> %s", plural, name, want["state"])

    return handle


# ---------------------------------------------------------------- olm-subscription
# The CRDs each package's bundle owns; OLM installs them with the CSV (here: upstream's real CRDs,
# which the cluster already serves from its start, so this is a no-op unless a test deleted them).
NIM_OPERATOR_VERSION = upstream.NIM_OPERATOR_DEFAULT


def olm_owned_crds(package: str) -> list[Path]:
    if package == "gpu-operator-certified":
        return upstream.gpu_operator_crd_files()
    if package == "nim-operator-certified":
        return upstream.nim_operator_crd_files(NIM_OPERATOR_VERSION)
    return []


def install_owned_crds(api: client.ApiClient, package: str) -> None:
    for path in olm_owned_crds(package):
        try:
            utils.create_from_yaml(api, str(path))
        except utils.FailToCreateError as err:
            if not all(e.status == 409 for e in err.api_exceptions):
                raise


def olm_subscription(api: client.ApiClient) -> None:
    group, version = "operators.coreos.com", "v1alpha1"
    watch_custom(api, group, version, "subscriptions", functools.partial(_install_subscription, api, group, version))


def _install_subscription(api: client.ApiClient, group: str, version: str, sub: dict) -> None:
    if (sub.get("status") or {}).get("installedCSV") or sub["metadata"].get("deletionTimestamp"):
        return
    custom = client.CustomObjectsApi(api)
    ns, package = sub["metadata"]["namespace"], sub["spec"]["name"]
    install_owned_crds(api, package)
    csv = f"{package}.v0.0.0-emulated"
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "ClusterServiceVersion",
        "metadata": {"name": csv, "namespace": ns},
        "spec": {"displayName": f"{package} (EMULATED by the local test cluster)"},
    }
    try:
        custom.create_namespaced_custom_object(group, version, ns, "clusterserviceversions", body)
    except ApiException as exc:
        if exc.status != 409:
            raise
    custom.patch_namespaced_custom_object_status(
        group,
        version,
        ns,
        "clusterserviceversions",
        csv,
        {"status": {"phase": "Succeeded", "reason": "InstallSucceeded"}},
    )
    custom.patch_namespaced_custom_object_status(
        group,
        version,
        ns,
        "subscriptions",
        sub["metadata"]["name"],
        {"status": {"state": "AtLatestKnown", "currentCSV": csv, "installedCSV": csv}},
    )
    LOG.info("olm-subscription: %s/%s -> %s Succeeded", ns, sub["metadata"]["name"], csv)


LOOPS = {
    "vanilla": [pv_provisioner, operator_status],
    "openshift": [pv_provisioner, namespace_uid, operator_status, olm_subscription],
    "pcai": [pv_provisioner, operator_status],
    "nutanix": [pv_provisioner, operator_status],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, choices=sorted(LOOPS))
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--nim-operator-version", default=upstream.NIM_OPERATOR_DEFAULT)
    parser.add_argument("--admission-port", type=int, help="serve the emulated admission webhooks on this port")
    parser.add_argument("--admission-dir", type=Path, help="their certificate directory (tls.crt, tls.key)")
    args = parser.parse_args()
    global NIM_OPERATOR_VERSION  # noqa: PLW0603 - set once at start-up, read by the OLM loop
    NIM_OPERATOR_VERSION = args.nim_operator_version
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stdout)
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    settings = client.Configuration()
    config.load_kube_config(config_file=args.kubeconfig, client_configuration=settings)
    # a connection per watch (one per operated kind, PVCs, namespaces, Subscriptions) besides the requests
    settings.connection_pool_maxsize = 32
    api = client.ApiClient(settings)
    threads = [threading.Thread(target=forever, args=(fn.__name__, fn, api), daemon=True) for fn in LOOPS[args.profile]]
    if args.admission_port:
        import admission  # noqa: PLC0415 - tests/sim, next to this script

        threads.append(
            threading.Thread(
                target=admission.serve, args=(api, args.admission_port, args.admission_dir, STOP), daemon=True
            )
        )
    for t in threads:
        t.start()
    LOG.info(
        "EMULATED platform controllers for profile %s: %s",
        args.profile,
        ", ".join(fn.__name__ for fn in LOOPS[args.profile]),
    )
    while not STOP.is_set():
        time.sleep(0.5)


if __name__ == "__main__":
    main()
