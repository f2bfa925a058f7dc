"""A module reaches an in-cluster Service from the controller with no URL given: by what the platform
exposes when that answers, else by a port-forward through the Kubernetes API.

The local cluster's Pods do not run (kwok plays kubelet), so where a Pod's port leads is said by a
kwok PortForward rule: the test points it at the Entity Store SIMULATOR on a loopback port that the
module is never told. The only way the module's requests can land there is the API server's
portforward subresource to that Pod, which kwok serves as a kubelet would. The modules run
in-process (their main()), with the kubernetes.core connection options.
"""

from __future__ import annotations

import json

import time
import uuid

import pytest
from kubernetes import client

from tests.integration.remediate_run import drop_namespace
from tests.sim.entity_store.simulator import start as start_entity_store
from tests.unit.test_rest_options import run_main

pytestmark = pytest.mark.cluster
MODEL = {"namespace": "meta", "name": "llama-3.2-1b-instruct", "api_endpoint_url": "http://llama.nim.svc:8000/v1"}


@pytest.fixture(scope="module")
def scene(vanilla, vanilla_kubeconfig):
    """A namespace with a ClusterIP-only Service, its Pod on a kwok node and the kwok rule that
    sends the Pod's port 8000 to a fresh Entity Store simulator."""
    store = start_entity_store()
    ns = f"dfw-reach-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(vanilla)
    custom = client.CustomObjectsApi(vanilla)
    core.create_namespace({"metadata": {"name": ns}})
    labels = {"app": "entity-store"}
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "entity-store-0", "labels": labels},
            "spec": {
                "nodeName": "cpu-node-1",
                "tolerations": [{"operator": "Exists"}],
                "containers": [
                    {"name": "api", "image": "entity-store", "ports": [{"containerPort": 8000, "name": "api"}]}
                ],
            },
        },
    )
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "entity-store"},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000, "targetPort": "api"}]},
        },
    )
    custom.create_namespaced_custom_object(
        "kwok.x-k8s.io",
        "v1alpha1",
        ns,
        "portforwards",
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "PortForward",
            "metadata": {"name": "entity-store-0"},
            "spec": {
                "forwards": [{"ports": [8000], "target": {"address": "127.0.0.1", "port": store.server_address[1]}}]
            },
        },
    )
    deadline = time.monotonic() + 60
    while True:
        # raw JSON: the client's EndpointSlice model refuses a slice with no endpoints yet (endpoints: null)
        slices = json.loads(
            client.DiscoveryV1Api(vanilla)
            .list_namespaced_endpoint_slice(
                ns, label_selector="kubernetes.io/service-name=entity-store", _preload_content=False
            )
            .data
        )
        if any((e.get("conditions") or {}).get("ready") for s in slices["items"] for e in s.get("endpoints") or []):
            break
        assert time.monotonic() < deadline, "the Service's EndpointSlice never listed a ready Pod"
        time.sleep(0.5)
    yield {"ns": ns, "store": store, "kubeconfig": vanilla_kubeconfig, "core": core}
    store.shutdown()
    drop_namespace(vanilla, ns)


def test_a_clusterip_only_service_is_reached_through_a_port_forward(scene):
    ref = {"namespace": scene["ns"], "name": "entity-store", "port": "http"}
    svc = scene["core"].read_namespaced_service("entity-store", scene["ns"])
    assert svc.spec.type == "ClusterIP" and not svc.status.load_balancer.ingress
    args = dict(MODEL, kubeconfig=scene["kubeconfig"], entity_store_service=ref)
    first = run_main("nemo_model", args)
    assert not first["failed"], first["msg"]
    assert first["changed"] is True and first["namespace_created"] is True
    assert ("meta", "llama-3.2-1b-instruct") in scene["store"].state.models
    # the same path on a rerun: nothing to change, and the simulator saw only GETs
    posts = scene["store"].stats.get("POST /v1/models", 0)
    again = run_main("nemo_model", args)
    assert again["changed"] is False, again
    assert scene["store"].stats.get("POST /v1/models", 0) == posts


def test_an_explicit_url_wins_over_the_service(scene):
    ref = {"namespace": scene["ns"], "name": "no-such-service"}
    args = dict(MODEL, name="explicit", kubeconfig=scene["kubeconfig"], entity_store_service=ref)
    done = run_main("nemo_model", dict(args, entity_store_url=scene["store"].url))
    assert not done["failed"], done["msg"]
    assert ("meta", "explicit") in scene["store"].state.models


def test_a_service_that_cannot_be_reached_says_why(scene):
    core, ns = scene["core"], scene["ns"]
    core.create_namespaced_service(
        ns, {"metadata": {"name": "nobody-home"}, "spec": {"selector": {"app": "none"}, "ports": [{"port": 9200}]}}
    )
    base = dict(MODEL, kubeconfig=scene["kubeconfig"])
    missing = run_main("nemo_model", dict(base, entity_store_service={"namespace": ns, "name": "absent"}))
    assert missing["failed"] and f"Service {ns}/absent does not exist" in missing["msg"], missing["msg"]
    empty = run_main("nemo_model", dict(base, entity_store_service={"namespace": ns, "name": "nobody-home"}))
    assert empty["failed"] and "has no ready Pod to port-forward to" in empty["msg"], empty["msg"]
    wrong_port = run_main(
        "nemo_model", dict(base, entity_store_service={"namespace": ns, "name": "entity-store", "port": 9999})
    )
    assert wrong_port["failed"] and "has no port 9999; it has 8000 (http)" in wrong_port["msg"], wrong_port["msg"]


def test_a_load_balancer_that_answers_is_used_without_a_port_forward(scene):
    """A LoadBalancer Service whose address answers from here is called directly: the Service's
    selector matches no Pod, so a port-forward could not have worked."""
    core, ns, store = scene["core"], scene["ns"], scene["store"]
    port = store.server_address[1]
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "entity-store-lb"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "none"}, "ports": [{"name": "http", "port": port}]},
        },
    )
    core.patch_namespaced_service_status(
        "entity-store-lb", ns, {"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}}
    )
    args = dict(
        MODEL,
        name="via-lb",
        kubeconfig=scene["kubeconfig"],
        entity_store_service={"namespace": ns, "name": "entity-store-lb"},
    )
    done = run_main("nemo_model", args)
    assert not done["failed"], done["msg"]
    assert ("meta", "via-lb") in store.state.models
