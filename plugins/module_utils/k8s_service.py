# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Reach an in-cluster Service from the controller, given only its namespace, name and port.

What the platform exposes is tried first, in this order: an OpenShift Route, an Istio VirtualService
host (HPE PCAI), an Ingress, a LoadBalancer address, a NodePort on a node address. Each candidate is
kept only if a TCP connection to it opens from here (a Route host that does not resolve from a laptop
is no use). Where nothing answers, a port-forward through the Kubernetes API to a ready Pod behind
the Service serves a loopback address for as long as the module runs: no `kubectl port-forward` left
running anywhere. Everything goes through the module's kubernetes.core connection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import json
import select
import socket
import threading

from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.kubernetes_lazy import api_exception
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.kubernetes_lazy import client as k8s
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.kubernetes_lazy import stream as k8s_stream


# the suboptions of every <service>_service option (documented in doc fragment rest_api)
SERVICE_SPEC = dict(
    namespace=dict(type="str", required=True),
    name=dict(type="str", required=True),
    port=dict(type="raw"),
    scheme=dict(type="str", choices=["http", "https"]),
    path=dict(type="str", default=""),
)
PROBE_TIMEOUT = 3.0


class ServiceError(Exception):
    """The Service cannot be reached; the message says what was tried."""


def service_port(svc, port):
    """The Service's port entry for `port` (number or name; None when it has exactly one)."""
    ports = svc.spec.ports or []
    if port in (None, ""):
        if len(ports) == 1:
            return ports[0]
    else:
        for entry in ports:
            if str(entry.port) == str(port) or (entry.name and entry.name == str(port)):
                return entry
    raise ServiceError(
        "Service %s/%s has no port %s; it has %s"
        % (
            svc.metadata.namespace,
            svc.metadata.name,
            port if port not in (None, "") else "given (set port, it has several)",
            ", ".join("%s%s" % (p.port, " (%s)" % p.name if p.name else "") for p in ports) or "none",
        )
    )


def default_scheme(entry):
    name = (entry.name or "").lower()
    return "https" if entry.port in (443, 8443) or name.startswith("https") or name == "tls" else "http"


def _routes(api, svc, entry):
    try:
        items = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
            "route.openshift.io", "v1", svc.metadata.namespace, "routes"
        )["items"]
    except api_exception() as exc:
        if exc.status in (403, 404):
            return []
        raise
    out = []
    for route in items:
        spec = route.get("spec") or {}
        to = spec.get("to") or {}
        target = str((spec.get("port") or {}).get("targetPort", ""))
        if to.get("kind", "Service") != "Service" or to.get("name") != svc.metadata.name:
            continue
        if target and target not in (str(entry.port), entry.name or "", str(entry.target_port)):
            continue
        if spec.get("host"):
            scheme = "https" if spec.get("tls") else "http"
            out.append(
                ("Route %s" % route["metadata"]["name"], "%s://%s%s" % (scheme, spec["host"], spec.get("path") or ""))
            )
    return out


def _virtual_services(api, svc, entry):
    names = (svc.metadata.name, "%s.%s" % (svc.metadata.name, svc.metadata.namespace))
    out = []
    for version in ("v1", "v1beta1"):
        try:
            items = k8s.CustomObjectsApi(api).list_custom_object_for_all_namespaces(
                "networking.istio.io", version, "virtualservices"
            )["items"]
        except api_exception() as exc:
            if exc.status in (403, 404):
                continue
            raise
        for vs in items:
            spec = vs.get("spec") or {}
            for http in spec.get("http") or []:
                for route in http.get("route") or []:
                    dest = route.get("destination") or {}
                    host = dest.get("host", "")
                    port = str((dest.get("port") or {}).get("number", entry.port))
                    if (host in names or host.startswith(names[1] + ".svc")) and port == str(entry.port):
                        for external in spec.get("hosts") or []:
                            if "*" not in external and "." in external and not external.endswith(".svc.cluster.local"):
                                out.append(("VirtualService %s" % vs["metadata"]["name"], "https://%s" % external))
        return out
    return out


def _ingresses(api, svc, entry):
    try:
        items = k8s.NetworkingV1Api(api).list_namespaced_ingress(svc.metadata.namespace).items
    except api_exception() as exc:
        if exc.status in (403, 404):
            return []
        raise
    out = []
    for ing in items:
        tls_hosts = set(h for t in ing.spec.tls or [] for h in t.hosts or [])
        lb = [
            i.hostname or i.ip for i in ((ing.status.load_balancer or k8s.V1IngressLoadBalancerStatus()).ingress or [])
        ]
        for rule in ing.spec.rules or []:
            for path in (rule.http.paths if rule.http else None) or []:
                backend = path.backend.service
                if not backend or backend.name != svc.metadata.name:
                    continue
                if backend.port and backend.port.number not in (None, entry.port) and backend.port.name != entry.name:
                    continue
                prefix = (path.path or "").rstrip("/") if path.path_type in (None, "Prefix", "Exact") else ""
                for host in [rule.host] if rule.host else lb:
                    scheme = "https" if host in tls_hosts else "http"
                    out.append(("Ingress %s" % ing.metadata.name, "%s://%s%s" % (scheme, host, prefix)))
    return out


def _load_balancer(api, svc, entry, scheme):
    if svc.spec.type != "LoadBalancer" or not svc.status.load_balancer:
        return []
    return [
        ("LoadBalancer", "%s://%s:%s" % (scheme, i.hostname or i.ip, entry.port))
        for i in svc.status.load_balancer.ingress or []
        if i.hostname or i.ip
    ]


def _node_port(api, svc, entry, scheme):
    if svc.spec.type not in ("NodePort", "LoadBalancer") or not entry.node_port:
        return []
    out = []
    for node in k8s.CoreV1Api(api).list_node().items:
        addresses = dict((a.type, a.address) for a in node.status.addresses or [])
        for kind in ("ExternalIP", "InternalIP"):
            if addresses.get(kind):
                out.append(
                    ("NodePort on %s" % node.metadata.name, "%s://%s:%s" % (scheme, addresses[kind], entry.node_port))
                )
                break
    return out[:3]


def answers(url, timeout=PROBE_TIMEOUT):
    """Whether a TCP connection to the URL's host and port opens from here."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
        return True
    except (OSError, ValueError):
        return False


def backend_pod(api, svc, entry):
    """(pod name, pod port) of a ready Pod behind the Service: its EndpointSlices, else its selector."""
    namespace, name = svc.metadata.namespace, svc.metadata.name
    # raw JSON: the client's EndpointSlice model refuses a slice with no endpoints (endpoints: null)
    raw = k8s.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector="kubernetes.io/service-name=%s" % name, _preload_content=False
    )
    for eps in json.loads(raw.data).get("items") or []:
        ports = eps.get("ports") or []
        ports = [p for p in ports if (p.get("name") or "") == (entry.name or "")] or ports[:1]
        for endpoint in eps.get("endpoints") or []:
            ready = (endpoint.get("conditions") or {}).get("ready") is not False
            target = endpoint.get("targetRef") or {}
            if ready and target.get("kind") == "Pod" and ports and ports[0].get("port"):
                return target["name"], ports[0]["port"]
    selector = ",".join("%s=%s" % kv for kv in sorted((svc.spec.selector or {}).items()))
    if selector:
        for pod in k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items:
            ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
            # a Pod being deleted may still say Ready for its grace period (its endpoint already says not ready)
            if pod.status.phase == "Running" and ready and not pod.metadata.deletion_timestamp:
                return pod.metadata.name, _container_port(pod, entry.target_port or entry.port)
    raise ServiceError(
        "Service %s/%s has no ready Pod to port-forward to (no ready endpoint in its EndpointSlices%s)"
        % (namespace, name, ", none Running and Ready for selector %s" % selector if selector else ", no selector")
    )


def _container_port(pod, target):
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod.spec.containers:
        for port in container.ports or []:
            if port.name == target:
                return port.container_port
    raise ServiceError("Pod %s has no container port named %s" % (pod.metadata.name, target))


class PortForward(object):
    """A loopback listener whose every connection is a port-forward stream to one Pod port, through
    the Kubernetes API (the portforward subresource, as kubectl port-forward uses)."""

    def __init__(self, configuration, headers, namespace, pod, port):
        # a client of its own: kubernetes.stream swaps the ApiClient's request function during a call
        self.api = k8s.ApiClient(configuration)
        for header, value in (headers or {}).items():
            self.api.set_default_header(header, value)
        self.namespace, self.pod, self.port = namespace, pod, port
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.local_port = self.listener.getsockname()[1]
        self.closed = False
        self.errors = []
        threading.Thread(target=self._accept, name="dfw-port-forward", daemon=True).start()
        atexit.register(self.close)

    def describe(self):
        return "port-forward to pod %s/%s port %s" % (self.namespace, self.pod, self.port)

    def _accept(self):
        while not self.closed:
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        stream = None
        try:
            with self.lock:
                stream = k8s_stream.portforward(
                    k8s.CoreV1Api(self.api).connect_get_namespaced_pod_portforward,
                    self.pod,
                    self.namespace,
                    ports=str(self.port),
                )
            remote = stream.socket(self.port)
            remote.setblocking(True)
            pipe(conn, remote)
            error = stream.error(self.port)
            if error:
                self.errors.append(error)
        except Exception as exc:  # noqa: BLE001 - the REST client sees the dropped connection and says so
            self.errors.append(str(exc))
        finally:
            conn.close()
            if stream is not None:
                stream.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.listener.close()


def pipe(a, b, idle=300.0):
    """Copy bytes both ways until one side closes (or nothing moves for `idle` seconds)."""
    sockets = [a, b]
    while True:
        readable, _w, _x = select.select(sockets, [], [], idle)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


def reach(api, ref, probe=answers):
    """(base URL, how it was found, the PortForward or None) for the Service `ref` (SERVICE_SPEC)."""
    try:
        svc = k8s.CoreV1Api(api).read_namespaced_service(ref["name"], ref["namespace"])
    except api_exception() as exc:
        if exc.status == 404:
            raise ServiceError("Service %s/%s does not exist" % (ref["namespace"], ref["name"])) from None
        raise
    entry = service_port(svc, ref.get("port"))
    scheme = ref.get("scheme") or default_scheme(entry)
    path = ref.get("path") or ""
    tried = []
    for finder in (_routes, _virtual_services, _ingresses):
        for what, url in finder(api, svc, entry):
            if probe(url):
                return url + path, what, None
            tried.append("%s (%s) does not answer from here" % (what, url))
    for finder in (_load_balancer, _node_port):
        for what, url in finder(api, svc, entry, scheme):
            if probe(url):
                return url + path, what, None
            tried.append("%s (%s) does not answer from here" % (what, url))
    try:
        pod, port = backend_pod(api, svc, entry)
    except ServiceError as exc:
        raise ServiceError("; ".join([str(exc)] + tried)) from None
    forward = PortForward(api.configuration, api.default_headers, svc.metadata.namespace, pod, port)
    how = forward.describe() + (" (%s)" % "; ".join(tried) if tried else "")
    return "%s://127.0.0.1:%s%s" % (scheme, forward.local_port, path), how, forward
