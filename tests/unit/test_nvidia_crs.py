"""module_utils/nvidia_crs.py and module_utils/nemo_platform.py: the custom resources, Service names
and chart values the roles build (the cluster tests hold them against upstream's CRDs and charts)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.dataflywheel.blueprint.plugins.filter.nemo_platform import FilterModule
from ansible_collections.dataflywheel.blueprint.plugins.module_utils import nemo_platform as npf
from ansible_collections.dataflywheel.blueprint.plugins.module_utils import nvidia_crs as crs


@pytest.mark.parametrize(
    ("version", "shape"),
    [("3.1.2", "3"), ("v3.0.0", "3"), ("v2.0.2", "2"), ("2.0.1", "2")],
)
def test_operator_shape(version, shape):
    assert crs.operator_shape(version) == shape


@pytest.mark.parametrize("version", ["1.0.1", "2.1.0", "4.0.0", "latest", ""])
def test_unsupported_versions_are_refused_naming_the_variable(version):
    with pytest.raises(crs.CRInputError, match="nemo_platform_nim_operator_version"):
        crs.operator_shape(version, "nemo_platform_nim_operator_version")


def test_served_shape_from_crd_names():
    assert crs.served_shape(["nemocustomizers.apps.nvidia.com", "nimbuilds.apps.nvidia.com"]) == "3"
    assert crs.served_shape(["nemocustomizers.apps.nvidia.com"]) == "2"
    assert crs.served_shape(["routes.route.openshift.io"]) is None


def test_nim_objects_name_and_refuse_collisions():
    found = crs.nim_objects([{"model_name": "meta/Llama-3.2-1B-Instruct", "tag": 1.8}], "nemo", "50Gi")
    assert found[0]["name"] == "llama-3-2-1b-instruct"
    assert found[0]["nimcache"]["spec"]["source"]["ngc"]["modelPuller"] == "nvcr.io/nim/meta/Llama-3.2-1B-Instruct:1.8"
    assert found[0]["nimservice"]["spec"]["storage"] == {"nimCache": {"name": "llama-3-2-1b-instruct"}}
    with pytest.raises(crs.CRInputError, match="same object name"):
        crs.nim_objects([{"model_name": "a/x"}, {"model_name": "b/x"}], "nemo", "1Gi")
    with pytest.raises(crs.CRInputError, match=r"nemo_platform_nims\[0\] has no model_name"):
        crs.nim_objects([{"tag": "1"}], "nemo", "1Gi")


def test_missing_operator_inputs_name_the_variable():
    with pytest.raises(crs.CRInputError, match="nemo_platform_customizer_mlflow_endpoint"):
        crs.nemo_crs({"nim_operator_version": "3.1.2", "namespace": "nemo"})


def test_cluster_policy_spec_has_the_required_sections():
    spec = crs.cluster_policy_spec(False, "570.172.08")
    assert spec["driver"] == {"enabled": False, "version": "570.172.08", "kernelModuleType": "auto"}
    assert spec["toolkit"] == {"enabled": False}
    with pytest.raises(crs.CRInputError, match="gpu_operator_kernel_module_type"):
        crs.cluster_policy_spec(True, "1", "opn")


@pytest.mark.parametrize(
    ("release", "service", "name"),
    [("nemo", "entity-store", "nemo-entity-store"), ("data-flywheel", "nim-proxy", "data-flywheel-nim-proxy"),
     ("entity-store", "entity-store", "entity-store")],
)  # fmt: skip
def test_chart_service_names_follow_helm_fullname(release, service, name):
    assert npf.chart_service_name(release, service) == name


def test_endpoints_per_mode():
    standalone = npf.endpoints("helm", "standalone", "nemo", "nemo")
    assert standalone["entity_store"] == "http://nemo-entity-store.nemo.svc.cluster.local:8000"
    assert standalone["data_store"] == "http://nemo-data-store.nemo.svc.cluster.local:3000"
    assert standalone["evaluator"] == "http://nemo-evaluator.nemo.svc.cluster.local:7331"
    assert standalone["guardrails"] == ""
    sub = npf.endpoints("helm", "subchart", "fw", "data-flywheel", guardrails=True)
    assert sub["guardrails"] == "http://data-flywheel-guardrails.fw.svc.cluster.local:7331"
    op = npf.endpoints("operator", "subchart", "nemo", "x", nims=[{"model_name": "a/b", "name": "b"}])
    assert op["customizer"] == "http://nemocustomizer.nemo.svc.cluster.local:8000"
    assert op["deployment_management"] == "" and op["nims"] == {"a/b": "http://b.nemo.svc.cluster.local:8000"}
    routes = npf.gateway_routes(op)
    assert {"path": "/nim/a/b/", "upstream": "http://b.nemo.svc.cluster.local:8000/", "nim": "a/b"} in routes
    assert not [r for r in routes if r["path"] == "/v1/deployment"]


def test_chart_values_wire_this_release_and_turn_the_bundled_operator_off():
    pg = {"registry": "docker.io", "repository": "bitnamilegacy/postgresql", "tag": "16"}
    helpers = {"volume_permissions": {"repository": "bitnamilegacy/os-shell"},
               "metrics": {"repository": "bitnamilegacy/postgres-exporter"}}  # fmt: skip
    values = npf.chart_values(True, "fw", "data-flywheel", pg, helpers)
    assert values["enabled"] is True and values["nim-operator"] == {"enabled": False}
    assert values["global"]["security"]["allowInsecureImages"] is True
    urls = values["customizer"]["customizerConfig"]
    assert urls["entityStoreURL"] == "http://data-flywheel-entity-store.fw.svc.cluster.local:8000"
    assert urls["nemoDataStoreURL"] == "http://data-flywheel-data-store.fw.svc.cluster.local:3000"
    assert values["data-store"]["external"]["domain"] == "data-flywheel-data-store.fw.svc.cluster.local"
    assert "enabled" not in npf.chart_values(False, "nemo", "nemo", pg, helpers)
    with pytest.raises(npf.NemoPlatformError, match="nemo_platform_postgresql_image"):
        npf.chart_values(False, "nemo", "nemo", {"repository": "x"}, helpers)


def _nginx_location(path, routes):
    """The route nginx picks for a request path: the longest `location` prefix it starts with."""
    matching = [r for r in routes if path.startswith(r["path"])]
    return max(matching, key=lambda r: len(r["path"]))["upstream"] if matching else None


@pytest.mark.parametrize(
    ("style", "upstream"),
    [("helm", "http://data-flywheel-guardrails.fw.svc.cluster.local:7331"),
     ("operator", "http://nemoguardrail.fw.svc.cluster.local:8000")],
)  # fmt: skip
def test_gateway_routes_guardrails_only_when_deployed(style, upstream):
    on = npf.gateway_routes(npf.endpoints(style, "subchart", "fw", "data-flywheel", guardrails=True))
    # the API's own paths (NVIDIA's ingress prefix /v1/guardrail) and the plural the field's gateways used
    for path in ("/v1/guardrail/chat/completions", "/v1/guardrail/configs", "/v1/guardrails/checks"):
        assert _nginx_location(path, on) == upstream, path
    assert _nginx_location("/v1/evaluation/jobs", on) != upstream
    off = npf.gateway_routes(npf.endpoints(style, "subchart", "fw", "data-flywheel", guardrails=False))
    assert _nginx_location("/v1/guardrail/configs", off) is None
    assert [r for r in on if r not in off] == [{"path": "/v1/guardrail", "upstream": upstream}]


def test_gateway_routes_filter_as_ansible_calls_it():
    filters = FilterModule().filters()
    found = filters["nemo_platform_endpoints"]("helm", "standalone", "nemo", "nemo", True)
    routes = filters["nemo_platform_gateway_routes"](found)
    assert {"path": "/v1/guardrail", "upstream": "http://nemo-guardrails.nemo.svc.cluster.local:7331"} in routes


def _svc(ip):
    return {"kind": "Service", "spec": {"clusterIP": ip}}


@pytest.mark.parametrize(
    ("override", "services", "address"),
    [("", [_svc("10.96.0.10")], "10.96.0.10"),
     ("", [_svc("172.30.0.10")], "172.30.0.10"),  # OpenShift: only openshift-dns/dns-default exists
     ("", [_svc("None"), _svc("10.96.0.10")], "10.96.0.10"),  # a headless Service cannot be a resolver
     ("", [_svc("fd00:10:96::a")], "[fd00:10:96::a]"),
     ("10.0.0.53", [_svc("10.96.0.10")], "10.0.0.53"),
     (" fd00::a ", [], "[fd00::a]"),
     ("[fd00::a]:5353", [], "[fd00::a]:5353"),
     ("dns.example.test:53", [], "dns.example.test:53")],
)  # fmt: skip
def test_gateway_resolver_is_the_override_else_the_dns_service_cluster_ip(override, services, address):
    assert npf.gateway_resolver(override, services) == address


@pytest.mark.parametrize(
    "override", ["10.96.0.10; include /etc/passwd", "a b", "10.96.0.10 valid=1s", "-x", "http://x"]
)
def test_gateway_resolver_refuses_what_is_not_an_address_naming_the_variable(override):
    with pytest.raises(npf.NemoPlatformError, match="nemo_platform_gateway_resolver="):
        npf.gateway_resolver(override, [_svc("10.96.0.10")])


@pytest.mark.parametrize("services", [[], None, [_svc("None")], [{"kind": "Service", "spec": {}}]])
def test_gateway_resolver_without_a_dns_service_names_both_variables(services):
    with pytest.raises(AnsibleFilterError, match="nemo_platform_gateway_resolver.*nemo_platform_gateway_dns_services"):
        FilterModule().filters()["nemo_platform_gateway_resolver"]("", services)
