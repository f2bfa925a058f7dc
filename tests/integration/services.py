"""In-cluster URLs -> the Service and port that serve them (asserting both exist)."""

from __future__ import annotations

from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.rest import ApiException


def resolve(core: client.CoreV1Api, url: str, default_namespace: str) -> tuple[str, str, int]:
    """URL -> (namespace, Service, port), asserting the Service exists and serves that port."""
    parts = urlsplit(url)
    labels = parts.hostname.split(".")
    namespace = labels[1] if len(labels) > 1 else default_namespace
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        service = core.read_namespaced_service(labels[0], namespace)
    except ApiException as err:
        raise AssertionError(f"{url}: no Service {namespace}/{labels[0]} ({err.status})") from None
    assert port in [p.port for p in service.spec.ports], f"{url}: Service {namespace}/{labels[0]} has no port {port}"
    return namespace, labels[0], port
