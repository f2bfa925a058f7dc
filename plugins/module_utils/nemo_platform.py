# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Where the NeMo microservices are once deployed, and the NeMo chart's values (pure functions).

Service names (sources in tests/fixtures/README.md):
- nemo-microservices-helm-chart: every microservice is a subchart whose objects carry helm's standard
  fullname, <release>-<subchart> (the release name alone when it already contains the subchart's
  name; <subchart>.fullnameOverride wins). A standalone release `nemo` (NVIDIA's install guides and
  scripts) gives nemo-entity-store:8000, nemo-data-store:3000, ... (the names the chart's own defaults
  wire, e.g. customizer.customizerConfig.entityStoreURL); as the flywheel chart's subchart the release
  is the flywheel's (data-flywheel-entity-store, ...), so those defaults are wrong there and the role
  sets them.
- NIM Operator custom resources: the operator names each Service like its resource, port
  spec.expose.service.port (8000).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# subchart -> Service port
CHART_SERVICES = {
    "entity-store": 8000,
    "data-store": 3000,
    "customizer": 8000,
    "evaluator": 7331,
    "guardrails": 7331,
    "deployment-management": 8000,
    "nim-proxy": 8000,
}
# endpoint key -> subchart
ENDPOINT_SERVICES = {
    "entity_store": "entity-store",
    "data_store": "data-store",
    "customizer": "customizer",
    "evaluator": "evaluator",
    "deployment_management": "deployment-management",
    "nim_proxy": "nim-proxy",
    "guardrails": "guardrails",
}
# endpoint key -> NIM Operator custom resource (its Service has the same name, port 8000)
OPERATOR_SERVICES = {
    "entity_store": "nemoentitystore",
    "data_store": "nemodatastore",
    "customizer": "nemocustomizer",
    "evaluator": "nemoevaluator",
    "guardrails": "nemoguardrail",
}
# the NeMo chart's subcharts whose Bitnami PostgreSQL the collection points at the bitnamilegacy images
POSTGRESQL_SUBCHARTS = ("entity-store", "data-store", "customizer", "evaluator", "guardrails", "auditor")


class NemoPlatformError(ValueError):
    """Inputs that cannot describe a NeMo deployment; the message names the variable."""


def chart_service_name(release, subchart, fullname_override=""):
    """helm's standard fullname helper, as the NeMo subcharts use it."""
    if fullname_override:
        name = fullname_override
    elif subchart in release:
        name = release
    else:
        name = "%s-%s" % (release, subchart)
    return name[:63].rstrip("-")


def url(name, namespace, port, path=""):
    return "http://%s.%s.svc.cluster.local:%d%s" % (name, namespace, int(port), path)


def endpoints(style, helm_mode, namespace, release, guardrails=False, nims=None, fullname_overrides=None):
    """Service URLs of what nemo_platform deployed.

    style helm: `namespace`/`release` are the release's (the flywheel's in subchart mode);
    style operator: `namespace` holds the custom resources and `nims` ({model_name, name}) the NIMs.
    Returns entity_store, data_store, customizer, evaluator, deployment_management, nim_proxy,
    guardrails ("" where nothing serves it) and nims ({model_name: url})."""
    if style not in ("helm", "operator"):
        raise NemoPlatformError("nemo_platform_style=%r: choose helm or operator" % (style,))
    out = {}
    if style == "helm":
        if helm_mode not in ("standalone", "subchart"):
            raise NemoPlatformError("nemo_platform_helm_mode=%r: choose standalone or subchart" % (helm_mode,))
        overrides = dict(fullname_overrides or {})
        for key, subchart in ENDPOINT_SERVICES.items():
            if key == "guardrails" and not guardrails:
                out[key] = ""
                continue
            name = chart_service_name(release, subchart, overrides.get(subchart, ""))
            out[key] = url(name, namespace, CHART_SERVICES[subchart])
        out["nims"] = {}
        return out
    for key in ENDPOINT_SERVICES:
        name = OPERATOR_SERVICES.get(key)
        out[key] = url(name, namespace, 8000) if name and (key != "guardrails" or guardrails) else ""
    out["nims"] = dict((n["model_name"], url(n["name"], namespace, 8000)) for n in (nims or []))
    return out


def gateway_routes(found):
    """Path prefix -> upstream for the NeMo gateway, from endpoints(): the paths the flywheel calls on
    nemo_base_url and datastore_base_url, /v1/guardrail when Guardrails are deployed, and /nim/<model>/
    per NIM (operator style)."""
    routes = []
    for path in ("/v1/namespaces", "/v1/datasets", "/v1/models", "/v1/projects"):
        routes.append({"path": path, "upstream": found["entity_store"]})
    for path in ("/v1/datastore", "/v1/hf"):
        routes.append({"path": path, "upstream": found["data_store"]})
    routes.append({"path": "/v1/customization", "upstream": found["customizer"]})
    routes.append({"path": "/v1/evaluation", "upstream": found["evaluator"]})
    if found.get("deployment_management"):
        routes.append({"path": "/v1/deployment", "upstream": found["deployment_management"]})
    if found.get("guardrails"):
        # NVIDIA's NeMo ingress routes /v1/guardrail; nginx matches string prefixes, so this location also
        # serves /v1/guardrails/... (the path the field's hand-written gateways used)
        routes.append({"path": "/v1/guardrail", "upstream": found["guardrails"]})
    for model, target in sorted((found.get("nims") or {}).items()):
        routes.append({"path": "/nim/%s/" % model, "upstream": target + "/", "nim": model})
    return routes


_RESOLVER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$")


def gateway_resolver(override, services):
    """The address of the gateway nginx's `resolver`: `override` (nemo_platform_gateway_resolver) when set,
    else the ClusterIP of the first DNS Service found (`services`: the Service objects found, in lookup
    order). nginx resolves a resolver NAME only once, at start, through the pod's own resolver, so the
    Service's ClusterIP (IPv6 in brackets) is what it gets, never the Service's DNS name."""
    override = (override or "").strip()
    if override:
        if override.count(":") > 1 and not override.startswith("["):  # a bare IPv6 address
            override = "[%s]" % override
        if not _RESOLVER.match(override):
            raise NemoPlatformError(
                "nemo_platform_gateway_resolver=%r is not an address nginx can use as resolver: give the cluster "
                "DNS Service's ClusterIP (for example 10.96.0.10 or 172.30.0.10), or leave it empty to discover it"
                % (override,)
            )
        return override
    for service in services or []:
        ip = ((service or {}).get("spec") or {}).get("clusterIP") or ""
        if ip and ip != "None":
            return "[%s]" % ip if ":" in ip else ip
    raise NemoPlatformError(
        "no cluster DNS Service with a ClusterIP among nemo_platform_gateway_dns_services: set "
        "nemo_platform_gateway_resolver to the address of the cluster's DNS Service (the nameserver in a pod's "
        "/etc/resolv.conf), or add where the Service is to nemo_platform_gateway_dns_services"
    )


def chart_values(
    subchart,
    namespace,
    release,
    postgresql_image,
    bitnami_helper_images,
    storage_class="",
    training_access_mode="ReadWriteOnce",
    customization_targets=None,
    guardrails_enabled=False,
    bundled_nim_operator=False,
):
    """Values for nemo-microservices-helm-chart (standalone release, or under the flywheel chart's
    `nemo-microservices-helm-chart` key when `subchart`). Every key exists in the chart (the tests hold
    them against the fixture's documented values and the flywheel chart's own overrides)."""
    for name, image in (("nemo_platform_postgresql_image", postgresql_image),):
        if not isinstance(image, dict) or not all(image.get(k) for k in ("registry", "repository", "tag")):
            raise NemoPlatformError("%s needs registry, repository and tag (got %r)" % (name, image))
    helpers = dict(bitnami_helper_images or {})
    for key in ("volume_permissions", "metrics"):
        if not isinstance(helpers.get(key), dict) or not helpers[key].get("repository"):
            raise NemoPlatformError("nemo_platform_bitnami_helper_images.%s needs a repository" % key)
    found = endpoints("helm", "subchart" if subchart else "standalone", namespace, release)
    data_store_host = found["data_store"].split("/")[2].split(":")[0]
    targets = dict(customization_targets or {})
    values = {
        "existingSecret": "ngc-api",
        "existingImagePullSecret": "nvcrimagepullsecret",
        # Bitnami's charts refuse the substituted (bitnamilegacy) images without this
        "global": {"security": {"allowInsecureImages": True}},
        # the NIM Operator runs on its own (nim_operator role): not a second one from this chart
        "nim-operator": {"enabled": bool(bundled_nim_operator)},
        "guardrails": {"enabled": bool(guardrails_enabled)},
        # the Data Store's own URL (upstream's default is the minikube ingress host data-store.test)
        "data-store": {"external": {"rootUrl": found["data_store"], "domain": data_store_host}},
        "customizer": {
            "modelsStorage": {"storageClassName": storage_class},
            "customizerConfig": {
                # upstream's defaults name the Services of a release `nemo`
                "entityStoreURL": found["entity_store"],
                "nemoDataStoreURL": found["data_store"],
                "training": {"pvc": {"storageClass": storage_class, "volumeAccessMode": training_access_mode}},
            },
            "customizationTargets": {"overrideExistingTargets": len(targets) > 0, "targets": targets},
        },
        "deployment-management": {"deployments": {"defaultStorageClass": storage_class}},
    }
    for name in POSTGRESQL_SUBCHARTS:
        section = values.setdefault(name, {})
        section["postgresql"] = {
            "image": dict(postgresql_image),
            "volumePermissions": {"image": dict(helpers["volume_permissions"])},
            "metrics": {"image": dict(helpers["metrics"])},
        }
    if subchart:
        values["enabled"] = True
    return values
