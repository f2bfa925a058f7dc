"""module_utils/k8s_service: which address of a Service the modules use, in which order, and what they
say when none works. The Kubernetes API answers are the client's own model objects (or the JSON the
API returns for custom resources); a real API server and a real port-forward are exercised by
tests/integration/test_service_reach.py."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import k8s_service as ks

NS, NAME = "nemo", "entity-store"


def service(kind="ClusterIP", ports=None, lb=None, selector=None):
    return k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name=NAME, namespace=NS),
        spec=k8s.V1ServiceSpec(
            type=kind,
            selector=selector if selector is not None else {"app": NAME},
            ports=ports or [k8s.V1ServicePort(name="http", port=8000, target_port=8000, node_port=30080)],
        ),
        status=k8s.V1ServiceStatus(load_balancer=k8s.V1LoadBalancerStatus(ingress=lb)),
    )


class FakeAPI:
    """What the cluster holds, served through the API classes k8s_service calls."""

    def __init__(self, svc, routes=(), virtual_services=(), ingresses=(), nodes=(), missing_groups=()):
        self.svc, self.routes, self.vs = svc, list(routes), list(virtual_services)
        self.ingresses, self.nodes, self.missing = list(ingresses), list(nodes), set(missing_groups)

    def install(self, monkeypatch):
        fake = self

        class Core:
            def __init__(self, _api):
                pass

            def read_namespaced_service(self, name, namespace):
                if (namespace, name) != (NS, NAME):
                    raise k8s.ApiException(status=404, reason="Not Found")
                return fake.svc

            def list_node(self):
                return k8s.V1NodeList(items=fake.nodes)

        class Custom:
            def __init__(self, _api):
                pass

            def list_namespaced_custom_object(self, group, version, namespace, plural):
                if group in fake.missing:
                    raise k8s.ApiException(status=404, reason="Not Found")
                return {"items": fake.routes}

            def list_custom_object_for_all_namespaces(self, group, version, plural):
                if group in fake.missing:
                    raise k8s.ApiException(status=404, reason="Not Found")
                return {"items": fake.vs}

        class Networking:
            def __init__(self, _api):
                pass

            def list_namespaced_ingress(self, namespace):
                return k8s.V1IngressList(items=fake.ingresses)

        monkeypatch.setattr(ks.k8s, "CoreV1Api", Core)
        monkeypatch.setattr(ks.k8s, "CustomObjectsApi", Custom)
        monkeypatch.setattr(ks.k8s, "NetworkingV1Api", Networking)
        monkeypatch.setattr(ks, "backend_pod", lambda api, svc, entry: (x for x in ()).throw(ks.ServiceError("no pod")))


def route(name, host, tls=False, target_port=None, to=NAME):
    spec = {"host": host, "to": {"kind": "Service", "name": to}}
    if tls:
        spec["tls"] = {"termination": "edge"}
    if target_port:
        spec["port"] = {"targetPort": target_port}
    return {"metadata": {"name": name}, "spec": spec}


def ingress(host=None, port=8000, tls=False, lb_ip=None, path="/"):
    backend = k8s.V1IngressBackend(
        service=k8s.V1IngressServiceBackend(name=NAME, port=k8s.V1ServiceBackendPort(number=port))
    )
    rule = k8s.V1IngressRule(
        host=host,
        http=k8s.V1HTTPIngressRuleValue(paths=[k8s.V1HTTPIngressPath(path=path, path_type="Prefix", backend=backend)]),
    )
    return k8s.V1Ingress(
        metadata=k8s.V1ObjectMeta(name="es-ingress", namespace=NS),
        spec=k8s.V1IngressSpec(rules=[rule], tls=[k8s.V1IngressTLS(hosts=[host])] if tls else None),
        status=k8s.V1IngressStatus(
            load_balancer=k8s.V1IngressLoadBalancerStatus(
                ingress=[k8s.V1IngressLoadBalancerIngress(ip=lb_ip)] if lb_ip else None
            )
        ),
    )


def node(name, internal, external=None):
    addresses = [k8s.V1NodeAddress(type="InternalIP", address=internal)]
    if external:
        addresses.append(k8s.V1NodeAddress(type="ExternalIP", address=external))
    return k8s.V1Node(metadata=k8s.V1ObjectMeta(name=name), status=k8s.V1NodeStatus(addresses=addresses))


REF = {"namespace": NS, "name": NAME, "port": None, "scheme": None, "path": ""}


def reach(monkeypatch, fake, answering, ref=None):
    fake.install(monkeypatch)
    return ks.reach(object(), dict(REF, **(ref or {})), probe=lambda url: url in answering)


def test_first_answering_exposure_wins_in_platform_order(monkeypatch):
    fake = FakeAPI(
        service("LoadBalancer", lb=[k8s.V1LoadBalancerIngress(ip="203.0.113.7")]),
        routes=[route("es", "es-nemo.apps.example.com", tls=True)],
        ingresses=[ingress(host="es.example.com")],
        nodes=[node("n1", "10.0.0.5", "198.51.100.5")],
    )
    everything = {
        "https://es-nemo.apps.example.com",
        "http://es.example.com",
        "http://203.0.113.7:8000",
        "http://198.51.100.5:30080",
    }
    assert reach(monkeypatch, fake, everything)[:2] == ("https://es-nemo.apps.example.com", "Route es")
    assert reach(monkeypatch, fake, everything - {"https://es-nemo.apps.example.com"})[:2] == (
        "http://es.example.com",
        "Ingress es-ingress",
    )
    assert reach(monkeypatch, fake, {"http://203.0.113.7:8000", "http://198.51.100.5:30080"})[:2] == (
        "http://203.0.113.7:8000",
        "LoadBalancer",
    )
    assert reach(monkeypatch, fake, {"http://198.51.100.5:30080"})[:2] == (
        "http://198.51.100.5:30080",
        "NodePort on n1",
    )


def test_nothing_answers_then_the_port_forward_is_next_and_says_what_was_tried(monkeypatch):
    fake = FakeAPI(
        service("NodePort"), routes=[route("es", "es-nemo.apps.example.com")], nodes=[node("n1", "10.0.0.5")]
    )
    with pytest.raises(ks.ServiceError) as err:
        reach(monkeypatch, fake, set())
    text = str(err.value)
    assert "no pod" in text
    assert "Route es (http://es-nemo.apps.example.com) does not answer from here" in text
    assert "NodePort on n1 (http://10.0.0.5:30080) does not answer from here" in text


def test_routes_and_ingresses_of_other_services_or_ports_are_not_taken(monkeypatch):
    fake = FakeAPI(
        service(),
        routes=[
            route("other", "other.apps.example.com", to="other"),
            route("metrics", "m.example.com", target_port="metrics"),
        ],
        ingresses=[ingress(host="wrong-port.example.com", port=9090)],
    )
    with pytest.raises(ks.ServiceError) as err:
        reach(
            monkeypatch,
            fake,
            {"http://other.apps.example.com", "http://m.example.com", "http://wrong-port.example.com"},
        )
    assert "does not answer" not in str(err.value)


def test_ingress_without_host_uses_its_load_balancer_address_and_path(monkeypatch):
    fake = FakeAPI(service(), ingresses=[ingress(lb_ip="192.0.2.10", path="/entity-store/")])
    url, how, forward = reach(monkeypatch, fake, {"http://192.0.2.10/entity-store"}, ref={"path": "/v1"})
    assert (url, how, forward) == ("http://192.0.2.10/entity-store/v1", "Ingress es-ingress", None)


def test_istio_virtual_service_host_is_https(monkeypatch):
    vs = {
        "metadata": {"name": "es-vs"},
        "spec": {
            "hosts": ["entity-store.pcai.example.com", "*.mesh"],
            "http": [
                {"route": [{"destination": {"host": f"{NAME}.{NS}.svc.cluster.local", "port": {"number": 8000}}}]}
            ],
        },
    }
    fake = FakeAPI(service(), virtual_services=[vs], missing_groups={"route.openshift.io"})
    assert reach(monkeypatch, fake, {"https://entity-store.pcai.example.com"})[:2] == (
        "https://entity-store.pcai.example.com",
        "VirtualService es-vs",
    )


def test_ports_and_schemes():
    two = service(ports=[k8s.V1ServicePort(name="http", port=8000), k8s.V1ServicePort(name="https", port=8443)])
    with pytest.raises(ks.ServiceError, match="has no port given"):
        ks.service_port(two, None)
    assert ks.service_port(two, "https").port == 8443
    assert ks.service_port(two, 8000).name == "http"
    assert ks.default_scheme(ks.service_port(two, 8443)) == "https"
    assert ks.default_scheme(ks.service_port(two, "http")) == "http"
    with pytest.raises(ks.ServiceError, match="has no port 9; it has 8000 \\(http\\), 8443 \\(https\\)"):
        ks.service_port(two, 9)


def test_a_missing_service_is_named(monkeypatch):
    fake = FakeAPI(service())
    with pytest.raises(ks.ServiceError, match="Service nemo/absent does not exist"):
        reach(monkeypatch, fake, set(), ref={"name": "absent"})


def test_backend_pod_by_selector_is_a_ready_pod_not_being_deleted(monkeypatch):
    """With no ready endpoint in the EndpointSlices, the Service's selector picks the Pod; a Pod in its grace
    period (deletionTimestamp set) can still say Ready, but it is going away."""

    def pod(name, deleting=False):
        return k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=name, deletion_timestamp="2026-12-05T00:00:00Z" if deleting else None),
            status=k8s.V1PodStatus(phase="Running", conditions=[k8s.V1PodCondition(type="Ready", status="True")]),
        )

    pods = [pod("es-old", deleting=True), pod("es-new")]

    class Raw:
        data = b'{"items": []}'

    class Discovery:
        def __init__(self, _api):
            pass

        def list_namespaced_endpoint_slice(self, namespace, label_selector, _preload_content):
            return Raw()

    class Core:
        def __init__(self, _api):
            pass

        def list_namespaced_pod(self, namespace, label_selector):
            assert (namespace, label_selector) == (NS, f"app={NAME}")
            return k8s.V1PodList(items=list(pods))

    monkeypatch.setattr(ks.k8s, "DiscoveryV1Api", Discovery)
    monkeypatch.setattr(ks.k8s, "CoreV1Api", Core)
    svc = service()
    assert ks.backend_pod(object(), svc, svc.spec.ports[0]) == ("es-new", 8000)
    pods.pop()
    with pytest.raises(ks.ServiceError, match="no ready Pod"):
        ks.backend_pod(object(), svc, svc.spec.ports[0])
