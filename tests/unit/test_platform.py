"""Unit tests for platform detection against recorded discovery data.

The JSON files in tests/unit/data/platform/ were recorded with ``platform.gather`` from the
four local-cluster profiles; the edge cases are built from them by adding the API surface
the real platform would add (OpenShift Service Mesh, Nutanix CSI under OpenShift, Istio on
vanilla).
"""

import json
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.platform import (
    PlatformError,
    _parse_cluster_config,
    classify,
    crd_names,
    dns_services,
    gpu_cluster_policies,
)

DATA = Path(__file__).parent / "data" / "platform"


def recorded(name):
    return json.loads((DATA / f"{name}.json").read_text())


ISTIO_GROUPS = {"networking.istio.io": ["v1", "v1beta1", "v1alpha3"], "security.istio.io": ["v1", "v1beta1"]}
NUTANIX_SC = {
    "name": "nutanix-volume",
    "provisioner": "csi.nutanix.com",
    "default": False,
    "parameters": {"storageType": "NutanixVolumes"},
}


@pytest.mark.parametrize("profile", ["vanilla", "openshift", "pcai", "nutanix"])
def test_recorded_profiles_classify_as_themselves(profile):
    facts = classify(recorded(profile))
    assert facts["platform"] == profile
    assert facts["detected_platform"] == profile
    assert facts["forced"] is False
    assert (facts["signals"] == []) is (profile == "vanilla")


def test_openshift_facts():
    facts = classify(recorded("openshift"))
    assert facts["openshift"] == {"present": True, "version": "4.21.3", "service_mesh": None}
    assert "api group security.openshift.io" in facts["signals"]
    assert facts["istio"]["present"] is False
    assert facts["operators"]["olm"] is True
    assert facts["nutanix_storage"]["present"] is False


def test_pcai_facts_domain_and_istio():
    facts = classify(recorded("pcai"))
    assert facts["pcai"] == {"present": True, "cluster_domain": "pcai.dfw.example.test"}
    assert facts["istio"]["present"] is True
    assert "namespace istio-system" in facts["istio"]["signals"]
    assert facts["openshift"]["present"] is False


def test_nutanix_facts_storage_and_ai():
    facts = classify(recorded("nutanix"))
    assert facts["nutanix_ai"]["present"] is True
    assert facts["nutanix_storage"] == {
        "present": True,
        "storage_classes": ["nai-nfs-storage", "nutanix-volume"],
        "csi_driver": True,
    }
    nfs = next(c for c in facts["storage_classes"] if c["name"] == "nai-nfs-storage")
    assert nfs["parameters"]["nfsServer"] == "files01.ntnx.dfw.example.test"


def test_vanilla_facts():
    facts = classify(recorded("vanilla"))
    assert facts["istio"] == {"present": False, "signals": [], "injected_namespaces": []}
    assert facts["mutating_admission_policy"] == "admissionregistration.k8s.io/v1beta1"
    assert facts["native_sidecars"] is True
    assert {c["provisioner"] for c in facts["storage_classes"]} == {"rancher.io/local-path", "nfs.csi.k8s.io"}
    assert [c["name"] for c in facts["storage_classes"] if c["default"]] == ["standard"]


def test_openshift_with_service_mesh_2_stays_openshift():
    d = recorded("openshift")
    d["api_groups"].update(ISTIO_GROUPS)
    d["api_groups"]["maistra.io"] = ["v2", "v1"]
    d["namespaces"]["istio-system"] = {"labels": {}, "annotations": {}}
    d["namespaces"]["nemo"] = {"labels": {"istio-injection": "enabled"}, "annotations": {}}
    facts = classify(d)
    assert facts["platform"] == "openshift"
    assert facts["openshift"]["service_mesh"] == "ossm2"
    assert facts["istio"]["present"] is True
    assert facts["istio"]["injected_namespaces"] == ["nemo"]
    assert facts["pcai"]["present"] is False


def test_openshift_with_service_mesh_3_sail():
    d = recorded("openshift")
    d["crds"].append("istios.sailoperator.io")
    d["api_groups"].update(ISTIO_GROUPS)
    facts = classify(d)
    assert facts["platform"] == "openshift"
    assert facts["openshift"]["service_mesh"] == "ossm3"


def test_nutanix_storage_under_openshift_is_openshift_with_nutanix_storage():
    d = recorded("openshift")
    d["storage_classes"].append(NUTANIX_SC)
    d["csi_drivers"].append("csi.nutanix.com")
    d["namespaces"]["ntnx-system"] = {"labels": {}, "annotations": {}}
    facts = classify(d)
    assert facts["platform"] == "openshift"
    assert facts["nutanix_ai"]["present"] is False
    assert facts["nutanix_storage"]["present"] is True
    assert facts["nutanix_storage"]["storage_classes"] == ["nutanix-volume"]


def test_nutanix_csi_driver_alone_counts_as_nutanix_storage():
    d = recorded("vanilla")
    d["csi_drivers"] = ["csi.nutanix.com"]
    facts = classify(d)
    assert facts["platform"] == "vanilla"
    assert facts["nutanix_storage"] == {"present": True, "storage_classes": [], "csi_driver": True}


def test_istio_on_vanilla_is_not_pcai():
    d = recorded("vanilla")
    d["api_groups"].update(ISTIO_GROUPS)
    d["namespaces"]["istio-system"] = {"labels": {}, "annotations": {}}
    d["mutating_webhooks"] = ["istio-sidecar-injector", "rev.namespace.sidecar-injector.istio.io"]
    d["namespaces"]["apps"] = {"labels": {"istio.io/rev": "default"}, "annotations": {}}
    facts = classify(d)
    assert facts["platform"] == "vanilla"
    assert facts["pcai"]["present"] is False
    assert facts["istio"]["present"] is True
    assert "webhook istio-sidecar-injector" in facts["istio"]["signals"]
    assert facts["istio"]["injected_namespaces"] == ["apps"]


def test_istio_system_namespace_without_api_groups_is_not_istio():
    d = recorded("vanilla")
    d["namespaces"]["istio-system"] = {"labels": {}, "annotations": {}}
    assert classify(d)["istio"]["present"] is False


def test_pcai_wins_over_openshift_markers():
    d = recorded("pcai")
    d["api_groups"]["route.openshift.io"] = ["v1"]
    facts = classify(d)
    assert facts["platform"] == "pcai"
    assert facts["openshift"]["present"] is True


def test_openshift_wins_over_nai_markers():
    d = recorded("nutanix")
    d["api_groups"]["security.openshift.io"] = ["v1"]
    assert classify(d)["platform"] == "openshift"


def test_openshift_by_node_label_only():
    d = recorded("vanilla")
    d["nodes"][0]["labels"]["node.openshift.io/os_id"] = "rhcos"
    facts = classify(d)
    assert facts["platform"] == "openshift"
    assert facts["signals"] == ["node label node.openshift.io/os_id"]


def test_force_overrides_but_keeps_detected():
    facts = classify(recorded("vanilla"), force="openshift")
    assert facts["platform"] == "openshift"
    assert facts["detected_platform"] == "vanilla"
    assert facts["forced"] is True
    assert classify(recorded("pcai"), force="auto")["platform"] == "pcai"
    assert classify(recorded("pcai"), force="")["forced"] is False


def test_force_rejects_unknown_platform():
    with pytest.raises(PlatformError, match="force='rancher' is not a platform; use one of openshift, pcai"):
        classify(recorded("vanilla"), force="rancher")


@pytest.mark.parametrize(
    "served, expected",
    [
        ([], None),
        (["v1alpha1"], "admissionregistration.k8s.io/v1alpha1"),
        (["v1alpha1", "v1beta1"], "admissionregistration.k8s.io/v1beta1"),
        (["v1beta1", "v1"], "admissionregistration.k8s.io/v1"),
    ],
)
def test_map_version_preference(served, expected):
    d = recorded("vanilla")
    d["map_versions"] = served
    assert classify(d)["mutating_admission_policy"] == expected


def test_operators_and_kyverno():
    d = recorded("vanilla")
    d["crds"] += ["clusterpolicies.nvidia.com", "nimservices.apps.nvidia.com", "nemoevaluators.apps.nvidia.com"]
    d["api_groups"]["scheduling.volcano.sh"] = ["v1beta1"]
    d["api_groups"]["kyverno.io"] = ["v1"]
    facts = classify(d)
    assert facts["operators"] == {
        "gpu_operator": True,
        "nim_operator": True,
        "nemo_operator": True,
        "volcano": True,
        "kyverno": True,
        "olm": False,
    }
    assert facts["kyverno"] is True
    assert classify(recorded("vanilla"))["operators"]["gpu_operator"] is False


def test_gpu_nodes_by_capacity_or_label():
    d = recorded("vanilla")
    d["nodes"] = [
        {"name": "a", "labels": {}, "gpu_capacity": "4"},
        {"name": "b", "labels": {"nvidia.com/gpu.present": "true"}, "gpu_capacity": "0"},
        {"name": "c", "labels": {}, "gpu_capacity": "0"},
        {"name": "d", "labels": {}, "gpu_capacity": "garbage"},
    ]
    assert classify(d)["gpu_nodes"] == [{"name": "a", "gpus": 4}, {"name": "b", "gpus": 0}]


def test_old_server_has_no_native_sidecars():
    d = recorded("vanilla")
    d["server_version"] = "1.28+"
    assert classify(d)["native_sidecars"] is False


@pytest.mark.parametrize(
    "data, domain",
    [
        ({"cluster.domainName": "a.example.test"}, "a.example.test"),
        ({"config.yaml": "cluster:\n  domainName: b.example.test\n"}, "b.example.test"),
        ({"other": "x"}, None),
    ],
)
def test_parse_cluster_config(data, domain):
    assert _parse_cluster_config(data)["domain"] == domain


def _crd(name, *conditions):
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}


def test_crd_names_and_which_are_established():
    items = [
        _crd("nimservices.apps.nvidia.com", ("NamesAccepted", "True"), ("Established", "True")),
        _crd("nimcaches.apps.nvidia.com", ("NamesAccepted", "True"), ("Established", "False")),
        {"metadata": {"name": "clusterpolicies.nvidia.com"}},  # just created: no status yet
        _crd("logs.kwok.x-k8s.io", ("Established", "True")),
    ]
    names, established = crd_names(items)
    assert names == [
        "clusterpolicies.nvidia.com",
        "logs.kwok.x-k8s.io",
        "nimcaches.apps.nvidia.com",
        "nimservices.apps.nvidia.com",
    ]
    assert established == ["logs.kwok.x-k8s.io", "nimservices.apps.nvidia.com"]


class _Answer:
    def __init__(self, body):
        self.data = json.dumps(body).encode()


class _Api:
    """An ApiClient stand-in answering one path, or raising what the API server would (`status`, or per path in
    `statuses`)."""

    def __init__(self, answer=None, status=None, statuses=None):
        self.answer, self.status, self.statuses, self.paths = answer, status, statuses or {}, []

    def call_api(self, path, method, **kwargs):
        self.paths.append((method, path))
        status = self.statuses.get(path, self.status)
        if status is not None:
            raise ApiException(status=status, reason="Forbidden" if status == 403 else "Error")
        return _Answer(self.answer)


def test_gpu_cluster_policies_states_none_when_forbidden_and_no_read_without_the_crd():
    crds = ["clusterpolicies.nvidia.com"]
    api = _Api({"items": [{"metadata": {"name": "cluster-policy"}, "status": {"state": "ready"}},
                          {"metadata": {"name": "fresh"}}]})  # fmt: skip
    assert gpu_cluster_policies(api, crds) == {"cluster-policy": "ready", "fresh": ""}
    assert api.paths == [("GET", "/apis/nvidia.com/v1/clusterpolicies")]
    # credentials that may not list them: unknown (the GPU Operator role reads its ClusterPolicy itself)
    assert gpu_cluster_policies(_Api(status=403), crds) is None
    with pytest.raises(Exception, match="Forbidden|500"):
        gpu_cluster_policies(_Api(status=500), crds)
    quiet = _Api(status=500)
    assert gpu_cluster_policies(quiet, ["nimservices.apps.nvidia.com"]) == {} and quiet.paths == []


def test_start_of_run_crd_and_cluster_policy_states_reach_the_facts():
    d = recorded("vanilla")
    assert classify(d)["crds_established"] == [] and classify(d)["gpu_cluster_policies"] is None
    assert classify(d)["dns_services"] == []
    d["crds_established"] = ["nimservices.apps.nvidia.com", "clusterpolicies.nvidia.com"]
    d["gpu_cluster_policies"] = {"cluster-policy": "notReady"}
    facts = classify(d)
    assert facts["crds_established"] == ["clusterpolicies.nvidia.com", "nimservices.apps.nvidia.com"]
    assert facts["gpu_cluster_policies"] == {"cluster-policy": "notReady"}


def test_dns_services_in_lookup_order_only_where_the_namespace_exists():
    kube_dns = "/api/v1/namespaces/kube-system/services/kube-dns"
    openshift_dns = "/api/v1/namespaces/openshift-dns/services/dns-default"
    api = _Api({"spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}})
    assert dns_services(api, {"kube-system": {}, "default": {}}) == [
        {"metadata": {"namespace": "kube-system", "name": "kube-dns"}, "spec": {"clusterIP": "10.96.0.10"}}
    ]
    assert api.paths == [("GET", kube_dns)]  # no openshift-dns namespace: not read
    # OpenShift: no kube-dns Service (404), dns-default found; a forbidden place is left out, not a failure
    api = _Api({"spec": {"clusterIP": "172.30.0.10"}}, statuses={kube_dns: 404})
    assert dns_services(api, {"kube-system": {}, "openshift-dns": {}}) == [
        {"metadata": {"namespace": "openshift-dns", "name": "dns-default"}, "spec": {"clusterIP": "172.30.0.10"}}
    ]
    assert api.paths == [("GET", kube_dns), ("GET", openshift_dns)]
    assert dns_services(_Api(status=403), {"kube-system": {}, "openshift-dns": {}}) == []
    with pytest.raises(ApiException):
        dns_services(_Api(status=500), {"kube-system": {}})
