# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Platform detection from the Kubernetes API alone.

Two halves, so the logic is testable without a cluster:

* ``gather(api_client)`` reads the discovery data (API groups, CRD names and which are
  Established, the GPU Operator's ClusterPolicy states, namespaces with labels/annotations,
  the cluster DNS Service, node labels and GPU capacity, storage classes, CSI drivers, mutating
  webhooks, the EZUA cluster ConfigMap, server version) into a plain dict.
* ``classify(discovery, force=None)`` turns that dict into facts. It is pure and is
  unit-tested against recorded discovery data (tests/unit/data/platform/*.json).

Precedence (platforms.md section 5): EZUA/PCAI markers, then OpenShift markers, then
Nutanix Enterprise AI markers, then vanilla. Nutanix *storage* is a separate fact,
because OpenShift-on-Nutanix and NKP overlap. Istio alone never means PCAI.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException
except ImportError:  # the module reports missing_required_lib("kubernetes"); classify() needs nothing
    k8s = None
    ApiException = Exception

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_connection import call_api, get_json

PLATFORMS = ("openshift", "pcai", "nutanix", "vanilla")

PCAI_CRD = "ezappconfigs.ezconfig.hpe.ezaf.com"
PCAI_NAMESPACES = ("ezapp-system", "ezua-system", "ez-chartmuseum-ns")
OPENSHIFT_GROUPS = ("security.openshift.io", "route.openshift.io", "apps.openshift.io", "config.openshift.io")
OPENSHIFT_NODE_LABEL = "node.openshift.io/os_id"
NAI_GROUP = "iep.nai.nutanix.com"
NAI_NAMESPACES = ("nai-system", "nai-admin")
NUTANIX_PROVISIONER = "csi.nutanix.com"
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io")
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_LABELS = ("nvidia.com/gpu.present", "feature.node.kubernetes.io/pci-10de.present")
MAP_GROUP = "admissionregistration.k8s.io"
MAP_PREFERENCE = ("v1", "v1beta1", "v1alpha1")
# where distributions keep the cluster DNS Service (CoreDNS-based ones, OpenShift): read with the rest at the start
# of the run, so the NeMo gateway's resolver (nemo_platform_gateway_dns_services, same defaults) needs no read
DNS_SERVICES = (("kube-system", "kube-dns"), ("openshift-dns", "dns-default"))


class PlatformError(Exception):
    """Bad input to classify (e.g. an unknown forced platform)."""


def crd_names(items):
    """(names, established names) of CustomResourceDefinition items as the API returns them (dicts)."""
    names, established = [], []
    for item in items:
        name = (item.get("metadata") or {}).get("name")
        names.append(name)
        conditions = (item.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            established.append(name)
    return sorted(names), sorted(established)


def cluster_policy_states(items):
    """{name: status.state} of the GPU Operator's ClusterPolicy items (dicts); '' where no state is reported."""
    return dict(
        ((item.get("metadata") or {}).get("name"), (item.get("status") or {}).get("state") or "") for item in items
    )


def gpu_cluster_policies(api_client, crds):
    """{name: state} of the GPU Operator's ClusterPolicies ({} when the CRD is not served); None when these
    credentials may not list them (the GPU Operator role then reads the one it waits for itself)."""
    if "clusterpolicies.nvidia.com" not in crds:
        return {}
    try:
        return cluster_policy_states(get_json(api_client, "/apis/nvidia.com/v1/clusterpolicies").get("items") or [])
    except ApiException as exc:
        if exc.status not in (403, 404):
            raise
        return None


def dns_services(api_client, namespaces):
    """The cluster DNS Services of DNS_SERVICES that exist, in that order, each as a Service object reduced to its
    namespace, name and ClusterIP. A place whose namespace does not exist is not read; one these credentials may
    not read is left out (the NeMo gateway's resolver then reads it itself)."""
    found = []
    for namespace, name in DNS_SERVICES:
        if namespace not in namespaces:
            continue
        try:
            service = get_json(api_client, "/api/v1/namespaces/%s/services/%s" % (namespace, name))
        except ApiException as exc:
            if exc.status not in (403, 404):
                raise
            continue
        found.append(
            {
                "metadata": {"namespace": namespace, "name": name},
                "spec": {"clusterIP": (service.get("spec") or {}).get("clusterIP") or ""},
            }
        )
    return found


def _groups(discovery):
    return discovery.get("api_groups") or {}


def _has_group(discovery, group):
    return group in _groups(discovery)


def _crds(discovery):
    return set(discovery.get("crds") or [])


def _crd_groups(discovery):
    return set(name.split(".", 1)[1] for name in _crds(discovery) if "." in name)


def _group_present(discovery, group):
    return _has_group(discovery, group) or group in _crd_groups(discovery)


def _namespaces(discovery):
    return discovery.get("namespaces") or {}


def _mutating_admission_policy_version(discovery):
    """The best served version of MutatingAdmissionPolicy, or None.

    ``map_versions`` lists the admissionregistration versions that serve the
    ``mutatingadmissionpolicies`` resource (resource-level discovery), because the group
    itself is always present.
    """
    served = discovery.get("map_versions") or []
    for version in MAP_PREFERENCE:
        if version in served:
            return "%s/%s" % (MAP_GROUP, version)
    return None


def _istio(discovery):
    namespaces = _namespaces(discovery)
    signals = []
    for group in ISTIO_GROUPS:
        if _group_present(discovery, group):
            signals.append("api group %s" % group)
    if "istio-system" in namespaces:
        signals.append("namespace istio-system")
    for hook in discovery.get("mutating_webhooks") or []:
        if "istio-sidecar-injector" in hook or "istio-revision-tag" in hook:
            signals.append("webhook %s" % hook)
    injected = sorted(
        name
        for name, meta in namespaces.items()
        if (meta.get("labels") or {}).get("istio-injection") == "enabled"
        or "istio.io/rev" in (meta.get("labels") or {})
    )
    # API groups are required: a stray namespace name alone is not a mesh.
    present = any(s.startswith("api group") for s in signals)
    return {"present": present, "signals": signals, "injected_namespaces": injected}


def _service_mesh_flavour(discovery):
    if _group_present(discovery, "maistra.io"):
        return "ossm2"
    if _group_present(discovery, "sailoperator.io"):
        return "ossm3"
    return None


def _pcai_signals(discovery):
    signals = []
    if PCAI_CRD in _crds(discovery) or _has_group(discovery, "ezconfig.hpe.ezaf.com"):
        signals.append("CRD %s" % PCAI_CRD)
    for ns in PCAI_NAMESPACES:
        if ns in _namespaces(discovery):
            signals.append("namespace %s" % ns)
    if discovery.get("ezua_cluster_config") is not None:
        signals.append("ConfigMap ezua-system/ezua-cluster-config")
    for hook in discovery.get("mutating_webhooks") or []:
        if hook == "vezappconfig.kb.io":
            signals.append("webhook vezappconfig.kb.io")
    return signals


def _openshift_signals(discovery):
    signals = ["api group %s" % g for g in OPENSHIFT_GROUPS if _group_present(discovery, g)]
    for node in discovery.get("nodes") or []:
        if OPENSHIFT_NODE_LABEL in (node.get("labels") or {}):
            signals.append("node label %s" % OPENSHIFT_NODE_LABEL)
            break
    return signals


def _nai_signals(discovery):
    signals = []
    if _group_present(discovery, NAI_GROUP):
        signals.append("api group %s" % NAI_GROUP)
    for ns in NAI_NAMESPACES:
        if ns in _namespaces(discovery):
            signals.append("namespace %s" % ns)
    return signals


def _storage(discovery):
    classes = []
    for sc in discovery.get("storage_classes") or []:
        classes.append(
            {
                "name": sc.get("name"),
                "provisioner": sc.get("provisioner"),
                "default": bool(sc.get("default")),
                "parameters": dict(sc.get("parameters") or {}),
            }
        )
    nutanix = [c["name"] for c in classes if c["provisioner"] == NUTANIX_PROVISIONER]
    nutanix_driver = NUTANIX_PROVISIONER in (discovery.get("csi_drivers") or [])
    return classes, {
        "present": bool(nutanix) or nutanix_driver,
        "storage_classes": nutanix,
        "csi_driver": nutanix_driver,
    }


def _gpu_nodes(discovery):
    out = []
    for node in discovery.get("nodes") or []:
        labels = node.get("labels") or {}
        try:
            count = int(str(node.get("gpu_capacity") or "0"))
        except ValueError:
            count = 0
        if count > 0 or any(labels.get(k) == "true" for k in GPU_NODE_LABELS):
            out.append({"name": node.get("name"), "gpus": count})
    return out


def _operators(discovery):
    crds = _crds(discovery)
    return {
        "gpu_operator": "clusterpolicies.nvidia.com" in crds,
        "nim_operator": "nimservices.apps.nvidia.com" in crds,
        "nemo_operator": any(
            c in crds
            for c in (
                "nemocustomizers.apps.nvidia.com",
                "nemoevaluators.apps.nvidia.com",
                "nemoentitystores.apps.nvidia.com",
            )
        ),
        "volcano": _group_present(discovery, "scheduling.volcano.sh"),
        "kyverno": _group_present(discovery, "kyverno.io"),
        "olm": _group_present(discovery, "operators.coreos.com"),
    }


def _minor(version):
    try:
        major, minor = str(version).lstrip("v").split(".")[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except ValueError:
        return (0, 0)


def classify(discovery, force=None):
    """Return platform facts for recorded or live discovery data.

    ``force`` (one of PLATFORMS, or empty) overrides the detected platform; the detected
    value and its signals are still reported so a wrong override is visible.
    """
    if force not in (None, "", "auto") and force not in PLATFORMS:
        raise PlatformError(
            "platform_info: force=%r is not a platform; use one of %s (or leave it empty to detect)"
            % (force, ", ".join(PLATFORMS))
        )
    pcai = _pcai_signals(discovery)
    openshift = _openshift_signals(discovery)
    nai = _nai_signals(discovery)
    if pcai:
        detected, signals = "pcai", pcai
    elif openshift:
        detected, signals = "openshift", openshift
    elif nai:
        detected, signals = "nutanix", nai
    else:
        detected, signals = "vanilla", []
    classes, nutanix_storage = _storage(discovery)
    istio = _istio(discovery)
    ezua = discovery.get("ezua_cluster_config") or {}
    domain = ezua.get("domain") if isinstance(ezua, dict) else None
    server = discovery.get("server_version") or ""
    facts = {
        "platform": force if force not in (None, "", "auto") else detected,
        "detected_platform": detected,
        "forced": force not in (None, "", "auto"),
        "signals": signals,
        "openshift": {
            "present": bool(openshift),
            "version": discovery.get("openshift_version"),
            "service_mesh": _service_mesh_flavour(discovery),
        },
        "pcai": {"present": bool(pcai), "cluster_domain": domain},
        "nutanix_ai": {"present": bool(nai), "signals": nai},
        "nutanix_storage": nutanix_storage,
        "istio": istio,
        "kyverno": _operators(discovery)["kyverno"],
        "mutating_admission_policy": _mutating_admission_policy_version(discovery),
        "gpu_nodes": _gpu_nodes(discovery),
        "storage_classes": classes,
        "operators": _operators(discovery),
        "server_version": server,
        "native_sidecars": _minor(server) >= (1, 29),
        "namespaces": sorted(_namespaces(discovery)),
        "crds_established": sorted(discovery.get("crds_established") or []),
        "gpu_cluster_policies": discovery.get("gpu_cluster_policies"),
        "dns_services": discovery.get("dns_services") or [],
    }
    return facts


def _parse_cluster_config(data):
    """Pull the cluster domain out of the ezua-cluster-config ConfigMap data."""
    domain = None
    for key in ("cluster.domainName", "domainName", "domain"):
        if data.get(key):
            domain = data[key].strip()
            break
    if domain is None:
        for value in data.values():
            for line in str(value).splitlines():
                stripped = line.strip()
                if stripped.startswith("domainName:") or stripped.startswith("domainName="):
                    domain = stripped.split(":", 1)[-1].split("=", 1)[-1].strip().strip('"')
                    break
            if domain:
                break
    return {"domain": domain, "keys": sorted(data)}


def gather(api_client):
    """Read the discovery data from a live cluster through a kubernetes ApiClient."""
    discovery = {}
    version = k8s.VersionApi(api_client).get_code()
    discovery["server_version"] = "%s.%s" % (version.major, version.minor.rstrip("+"))
    groups = {}
    for group in k8s.ApisApi(api_client).get_api_versions().groups:
        groups[group.name] = [v.version for v in group.versions]
    discovery["api_groups"] = groups
    map_versions = []
    for ver in groups.get(MAP_GROUP, []):
        resources = api_client.call_api(
            "/apis/%s/%s" % (MAP_GROUP, ver),
            "GET",
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
        if any(r.get("name") == "mutatingadmissionpolicies" for r in resources.get("resources", [])):
            map_versions.append(ver)
    discovery["map_versions"] = map_versions
    discovery["crds"], discovery["crds_established"] = crd_names(
        get_json(api_client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions").get("items") or []
    )
    # the GPU Operator's ClusterPolicy states, so its role need not read them again on a run that changes nothing;
    # None (its role reads them) when these credentials may not list them
    discovery["gpu_cluster_policies"] = gpu_cluster_policies(api_client, discovery["crds"])
    core = k8s.CoreV1Api(api_client)
    discovery["namespaces"] = {
        n.metadata.name: {"labels": n.metadata.labels or {}, "annotations": n.metadata.annotations or {}}
        for n in core.list_namespace().items
    }
    discovery["dns_services"] = dns_services(api_client, discovery["namespaces"])
    discovery["nodes"] = [
        {
            "name": n.metadata.name,
            "labels": n.metadata.labels or {},
            "gpu_capacity": (n.status.capacity or {}).get(GPU_RESOURCE, "0"),
        }
        for n in core.list_node().items
    ]
    storage = k8s.StorageV1Api(api_client)
    discovery["storage_classes"] = [
        {
            "name": s.metadata.name,
            "provisioner": s.provisioner,
            "parameters": s.parameters or {},
            "default": (s.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true",
        }
        for s in storage.list_storage_class().items
    ]
    discovery["csi_drivers"] = [d.metadata.name for d in storage.list_csi_driver().items]
    hooks = []
    for cfg in k8s.AdmissionregistrationV1Api(api_client).list_mutating_webhook_configuration().items:
        hooks.append(cfg.metadata.name)
        hooks.extend(w.name for w in cfg.webhooks or [])
    discovery["mutating_webhooks"] = hooks
    if "ezua-system" in discovery["namespaces"]:
        try:
            cm = core.read_namespaced_config_map("ezua-cluster-config", "ezua-system")
            discovery["ezua_cluster_config"] = _parse_cluster_config(cm.data or {})
        except ApiException as exc:
            if exc.status != 404:
                raise
    if "config.openshift.io" in groups:
        try:
            cv = k8s.CustomObjectsApi(api_client).get_cluster_custom_object(
                "config.openshift.io", groups["config.openshift.io"][0], "clusterversions", "version"
            )
            discovery["openshift_version"] = (cv.get("status") or {}).get("desired", {}).get("version") or (
                (cv.get("status") or {}).get("history") or [{}]
            )[0].get("version")
        except ApiException as exc:
            if exc.status != 404:
                raise
    return discovery


def run_module(module):
    """platform_info: read the discovery data through the module's Kubernetes connection, classify it."""
    discovery = call_api(
        module,
        gather,
        "while reading discovery data; check the credentials can list namespaces, nodes, CRDs and storage classes",
    )
    try:
        facts = classify(discovery, force=module.params["force"])
    except PlatformError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, platform_info=facts)
