"""The NeMo gateway's nginx resolves its upstreams through the cluster's own DNS Service, wherever the platform
keeps it: kube-system/kube-dns (vanilla, pcai, nutanix: 10.96.0.10) or openshift-dns/dns-default (openshift:
172.30.0.10, no kube-dns). One playbook run converges the gateway on the four local profiles at once (one
inventory host per cluster), plus three hosts on the vanilla cluster for the override and the two refusals;
the rerun reports changed=0 (the pod template carries the config's hash)."""

from __future__ import annotations

import re
import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.integration.conftest import api_client, kubeconfig_for

PROFILES = ("vanilla", "openshift", "pcai", "nutanix")
# where each profile serves its DNS Service (tests/sim/profiles/<profile>/dns.yaml)
DNS = {
    "vanilla": ("kube-system", "kube-dns", "10.96.0.10"),
    "openshift": ("openshift-dns", "dns-default", "172.30.0.10"),
    "pcai": ("kube-system", "kube-dns", "10.96.0.10"),
    "nutanix": ("kube-system", "kube-dns", "10.96.0.10"),
}
# host -> (cluster profile, extra host variables, the error the run must stop that host with)
NOWHERE = [{"namespace": "kube-system", "name": "nope"}]
REFUSED = {
    "vanilla-no-dns": ("vanilla", {"nemo_platform_gateway_dns_services": NOWHERE},
                       "set nemo_platform_gateway_resolver to the address of the cluster's DNS Service"),
    "vanilla-bad": ("vanilla", {"nemo_platform_gateway_resolver": "10.96.0.10; include /etc/passwd"},
                    "nemo_platform_gateway_resolver='10.96.0.10; include /etc/passwd' is not an address"),
}  # fmt: skip
OVERRIDE = ("vanilla-override", "vanilla", "fd00:10:96::a", "[fd00:10:96::a]")


def _resolver(api, namespace):
    conf = client.CoreV1Api(api).read_namespaced_config_map("nemo-gateway", namespace).data["nginx.conf"]
    return re.findall(r"^\s*resolver\s+(\S+)\s+valid=", conf, re.M)


@pytest.fixture(scope="module")
def scene(ansible_playbook, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway-resolver")
    hosts, namespaces = {}, {}
    for name, profile, extra in (
        [(p, p, {}) for p in PROFILES]
        + [(h, p, e) for h, (p, e, _msg) in REFUSED.items()]
        + [(OVERRIDE[0], OVERRIDE[1], {"nemo_platform_gateway_resolver": OVERRIDE[2]})]
    ):
        ns = f"gw-{uuid.uuid4().hex[:6]}"
        client.CoreV1Api(api_client(profile)).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=ns))
        )
        namespaces[name] = (profile, ns)
        hosts[name] = {"flywheel_kubeconfig": kubeconfig_for(profile), "nemo_platform_flywheel_namespace": ns, **extra}
    inventory = tmp / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "flywheel_clusters": {
                    "hosts": hosts,
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    },
                }
            }
        )
    )
    try:
        first = ansible_playbook("tests/integration/data/gateway_resolver.yml", inventory=inventory, timeout=900)
        rerun = ansible_playbook("tests/integration/data/gateway_resolver.yml", inventory=inventory, timeout=900)
        yield first, rerun, namespaces
    finally:
        for profile, ns in namespaces.values():
            client.CoreV1Api(api_client(profile)).delete_namespace(ns)


@pytest.mark.cluster
@pytest.mark.parametrize("profile", PROFILES)
def test_gateway_resolver_is_the_profiles_dns_service(scene, profile):
    first, rerun, namespaces = scene
    api = api_client(profile)
    dns_ns, dns_name, address = DNS[profile]
    service = client.CoreV1Api(api).read_namespaced_service(dns_name, dns_ns)
    assert service.spec.cluster_ip == address, "the profile's DNS Service is not where the test expects it"
    if profile == "openshift":  # the lookup must not depend on kube-dns
        with pytest.raises(ApiException) as missing:
            client.CoreV1Api(api).read_namespaced_service("kube-dns", "kube-system")
        assert missing.value.status == 404
    assert first.recap(profile)["failed"] == 0, first.tail()
    assert _resolver(api, namespaces[profile][1]) == [address], first.tail()
    assert rerun.recap(profile)["changed"] == 0 and rerun.recap(profile)["failed"] == 0, rerun.tail()


@pytest.mark.cluster
def test_gateway_resolver_override_wins(scene):
    first, rerun, namespaces = scene
    host, profile, _given, address = OVERRIDE
    assert _resolver(api_client(profile), namespaces[host][1]) == [address], first.tail()
    assert rerun.recap(host)["changed"] == 0, rerun.tail()


@pytest.mark.cluster
@pytest.mark.parametrize("host", sorted(REFUSED))
def test_gateway_without_a_usable_resolver_stops_naming_the_variable_and_changes_nothing(scene, host):
    first, _rerun, namespaces = scene
    profile, _extra, message = REFUSED[host]
    assert first.returncode != 0 and first.recap(host)["failed"] == 1, first.tail()
    # each refused host has its own message ([ERROR] lines are not wrapped; the fatal result is)
    assert message in first.stdout, first.tail()
    assert "Traceback" not in first.stdout
    with pytest.raises(ApiException) as gone:
        client.CoreV1Api(api_client(profile)).read_namespaced_config_map("nemo-gateway", namespaces[host][1])
    assert gone.value.status == 404
