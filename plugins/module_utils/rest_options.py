# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The collection's one vocabulary for the REST services its modules call.

Every service has the same options, named after it (``<service>_url``, ``<service>_token``,
``<service>_headers``, ``<service>_validate_certs``, ``<service>_ca_path``), and every option falls
back to the environment variable ``DFW_<OPTION IN CAPITALS>`` (then to the names earlier releases
read). The names the modules had before stay as aliases. The unprefixed connection names
(``validate_certs``, ``ca_cert``, ``host``, ...) belong to kubernetes.core's Kubernetes connection,
which the same modules also take. Doc fragment ``dataflywheel.blueprint.rest_api`` documents
exactly what ``argument_spec()`` builds (both read SERVICES).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import k8s_connection, k8s_service
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient

# Per service: what it is (for messages and docs), an example URL, the per-module defaults, and
# the names earlier releases used (option aliases and environment variables, in that order).
SERVICES = {
    "flywheel": dict(
        title="the Data Flywheel API",
        example="http://df-api-service.data-flywheel.svc:8000",
        request_timeout=30,
        aliases=dict(url=["api_url"], token=["api_token"], headers=["api_headers"]),
        legacy_env=dict(
            url=["FLYWHEEL_API_URL"],
            token=["FLYWHEEL_API_TOKEN"],
            validate_certs=["FLYWHEEL_API_VALIDATE_CERTS"],
            ca_path=["FLYWHEEL_API_CA_PATH"],
        ),
    ),
    "nemo": dict(
        title="the NeMo microservices",
        example="http://nemo.test",
        request_timeout=30,
        aliases=dict(url=["nemo_base_url"], token=["nemo_api_token"], headers=["nemo_api_headers"]),
        legacy_env=dict(
            url=["NEMO_BASE_URL"],
            token=["NEMO_API_TOKEN"],
            validate_certs=["NEMO_VALIDATE_CERTS"],
            ca_path=["NEMO_CA_PATH"],
        ),
    ),
    "entity_store": dict(
        title="the NeMo Entity Store",
        example="http://nemo-entity-store.nemo.svc:8000",
        request_timeout=30,
        aliases=dict(token=["api_token"]),
        legacy_env=dict(
            url=["NEMO_ENTITY_STORE_URL"],
            token=["NEMO_ENTITY_STORE_TOKEN"],
            ca_path=["NEMO_ENTITY_STORE_CA_PATH"],
        ),
    ),
    "nim": dict(
        title="the NIM",
        example="http://nim.test",
        request_timeout=120,
        aliases=dict(token=["api_token"]),
        legacy_env=dict(url=["NIM_BASE_URL"]),
    ),
    "es": dict(
        title="the flywheel's Elasticsearch",
        example="http://df-elasticsearch-service.data-flywheel.svc:9200",
        request_timeout=60,
        aliases=dict(),
        legacy_env=dict(
            url=["FLYWHEEL_ES_URL", "ELASTICSEARCH_URL"],
            validate_certs=["FLYWHEEL_ES_VALIDATE_CERTS"],
            ca_path=["FLYWHEEL_ES_CA_PATH"],
        ),
    ),
}

FIELDS = ("url", "token", "headers", "validate_certs", "ca_path")
FIELD_TYPES = {"url": "str", "token": "str", "headers": "dict", "validate_certs": "bool", "ca_path": "path"}
DEFAULT_RETRIES = 5

WAIT_ARG_SPEC = dict(
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=3600),
    wait_sleep=dict(type="int", default=30),
)


def option_name(service, field):
    return "%s_%s" % (service, field)


def env_names(service, field):
    """The environment variables an option falls back to, newest first."""
    return ["DFW_%s" % option_name(service, field).upper()] + SERVICES[service]["legacy_env"].get(field, [])


def aliases(service, field, primary):
    """The option's earlier names; `ca_path` (and the legacy `validate_certs`) only on the primary
    service, the one the module mainly talks to (a module has one of each)."""
    names = list(SERVICES[service]["aliases"].get(field, []))
    if not primary:  # the generic former names (api_token, api_url, ...) belong to the module's main service
        names = [n for n in names if not n.startswith("api_")]
    if primary and field == "ca_path":
        names.append("ca_path")
    return names


def service_spec(service, primary=True):
    spec = {}
    for field in FIELDS:
        opt = dict(type=FIELD_TYPES[field], fallback=(env_fallback, env_names(service, field)))
        if field == "token":
            opt["no_log"] = True
        if field == "headers":
            opt["default"] = {}
            del opt["fallback"]
        names = aliases(service, field, primary)
        if names:
            opt["aliases"] = names
        spec[option_name(service, field)] = opt
    spec[option_name(service, "service")] = dict(type="dict", options=copy.deepcopy(k8s_service.SERVICE_SPEC))
    if primary:
        spec["request_timeout"] = dict(type="int", default=SERVICES[service]["request_timeout"])
        spec["retries"] = dict(type="int", default=DEFAULT_RETRIES)
    return spec


def argument_spec(primary, *secondary, **extra):
    """The connection options of a module that talks to `primary` (and to `secondary` services,
    whose TLS settings default to the primary's): kubernetes.core's Kubernetes connection (to find
    and reach in-cluster Services), each service's options, then the module's own `extra` options."""
    spec = k8s_connection.argument_spec()
    spec.update(service_spec(primary, primary=True))
    for service in secondary:
        spec.update(service_spec(service, primary=False))
    spec.update(copy.deepcopy(extra))
    return spec


def url_problem(value):
    """Why `value` is not an http(s) URL with a host, or None. The one check (the roles use it
    through the test plugin dataflywheel.blueprint.http_url)."""
    if not isinstance(value, str) or not value:
        return "is empty"
    if any(c.isspace() for c in value):
        return "contains whitespace"
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return "must start with http:// or https:// and name a host"
    return None


def check_url(module, option, value, example):
    problem = url_problem(value)
    if problem:
        module.fail_json(msg="%s=%r %s (for example %s)" % (option, value, problem, example))


def resolve_validate_certs(module, service, tls_from=None):
    """<service>_validate_certs, else the primary service's (tls_from), else the legacy
    `validate_certs`, else True. A legacy `false` is said out loud: it no longer only means this."""
    p = module.params
    for name in (service, tls_from):
        if name and p.get(option_name(name, "validate_certs")) is not None:
            return p[option_name(name, "validate_certs")]
    if p.get("validate_certs") is False:
        module.warn(
            "validate_certs (the Kubernetes API's) is off, and so it also turns off certificate verification "
            "of %s, as it did before %s existed; set %s to decide it on its own"
            % ((SERVICES[service]["title"],) + (option_name(service, "validate_certs"),) * 2)
        )
        return False
    return True


def resolve_url(module, service, base_url=None):
    """(URL, how it was found): the <service>_url option (or its variables) wins; else the Service
    named by <service>_service, found or port-forwarded (module_utils.k8s_service); else
    `base_url` (a URL the module found another way, e.g. in an nmp_uri); else the module fails."""
    p = module.params
    url_option = option_name(service, "url")
    if p.get(url_option):
        return p[url_option], None
    ref = p.get(option_name(service, "service"))
    if ref:
        where = "%s/%s" % (ref["namespace"], ref["name"])

        def find(api):
            url, how, _forward = k8s_service.reach(api, ref)
            module.debug("%s: Service %s reached through %s" % (url_option, where, how))
            return url, how

        return k8s_connection.call_api(
            module,
            find,
            "while looking up Service %s (%s)" % (where, option_name(service, "service")),
            expected=(k8s_service.ServiceError,),
        )
    if base_url:
        return base_url, None
    info = SERVICES[service]
    former = aliases(service, "url", True)
    module.fail_json(
        msg="%s%s is required: set it or %s to the URL of %s (for example %s), or %s to the Service that serves it"
        % (
            url_option,
            " (or %s)" % ", ".join(former) if former else "",
            env_names(service, "url")[0],
            info["title"],
            info["example"],
            option_name(service, "service"),
        )
    )


def rest_client(module, service, base_url=None, tls_from=None, client_class=RestClient, **kwargs):
    """The REST client for `service` from the module's parameters: URL (resolve_url), token, headers,
    TLS, timeout and retries. Fails the module with the option to set when the URL is missing or not
    http(s). `kwargs` go to `client_class`."""
    p = module.params
    info = SERVICES[service]
    url, how = resolve_url(module, service, base_url)
    check_url(module, option_name(service, "url"), url, info["example"])
    ca_path = p.get(option_name(service, "ca_path")) or (tls_from and p.get(option_name(tls_from, "ca_path")))
    client = client_class(
        url,
        token=p.get(option_name(service, "token")),
        headers=p.get(option_name(service, "headers")) or {},
        validate_certs=resolve_validate_certs(module, service, tls_from),
        ca_path=ca_path or None,
        timeout=p["request_timeout"],
        retries=p["retries"] if "retries" not in kwargs else kwargs.pop("retries"),
        user_agent="dataflywheel.blueprint/%s" % module._name,
        **kwargs,
    )
    client.via = how
    client.tls_hint = "Set %s (or %s) to the PEM file of the CA that signed the certificate of %s." % (
        option_name(service, "ca_path"),
        env_names(service, "ca_path")[0],
        info["title"],
    )
    return client
