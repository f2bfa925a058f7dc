# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The documentation of every REST service's options, built when the plugin loader imports this fragment from
the table the modules' argument_spec comes from (module_utils/rest_options.py: SERVICES, aliases, env_names), so
the two cannot drift apart. Each attribute is a YAML (JSON) text, as in a hand-written fragment."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import (
    DEFAULT_RETRIES,
    SERVICES,
    aliases,
    env_names,
    option_name,
)

# What the URL of each service is, in the words of the module that calls it.
URL_HELP = dict(
    flywheel="Base URL of the Data Flywheel API, without C(/api).",
    nemo="Base URL that routes C(/v1/evaluation), C(/v1/customization), C(/v1/deployment) and C(/v1/models) "
    "to the NeMo services, without C(/v1) (the flywheel's C(nmp_config.nemo_base_url) as the controller "
    "reaches it, or a gateway Service).",
    entity_store="Base URL of the NeMo Entity Store.",
    nim="Base URL of the NIM or the NIM proxy, without C(/v1) (the flywheel's C(nim_base_url)).",
    es="Base URL of the Elasticsearch (or OpenSearch) that holds the flywheel's log index.",
)

NEMO_DIAGNOSIS_URL_HELP = (
    "Base URL of the NeMo services (the flywheel's C(nmp_config.nemo_base_url) as the controller "
    "reaches it). When set, every failed evaluation or customization of a finished job that carries an "
    "C(nmp_uri) is looked up there, and its failure gets the service's own words (the customizer's status "
    "log line, the evaluator's status message and log tail) plus a hint, in C(error) and C(diagnosis). "
    "Only the job id is taken from the C(nmp_uri). A NeMo side that cannot be reached leaves the failure "
    "as it was and warns. M(dataflywheel.blueprint.flywheel_job) with state C(cancelled) or C(absent) also "
    "cancels there the customizations the job leaves running (the flywheel's own cancel posts to a path "
    "NeMo answers 404, so training would keep its GPU), and says whether each GPU was released."
)

ENTITY_STORE_DIAGNOSIS_URL_HELP = (
    "Base URL of the NeMo Entity Store as the controller reaches it. When set, the doctor asks it for every "
    "model the NIMServices serve (and the models given), as the evaluator does (C(GET /v1/models/<namespace>/<name>)); "
    "unset, that check is reported as not run."
)

# The options of <service>_service (module_utils.k8s_service.SERVICE_SPEC), the same for every service.
SERVICE_SUBOPTIONS = dict(
    namespace=dict(description="Namespace of the Service.", type="str", required=True),
    name=dict(description="Name of the Service.", type="str", required=True),
    port=dict(
        description="The Service port, by number or name; may be left out when the Service has one port.",
        type="raw",
    ),
    scheme=dict(
        description="V(http) or V(https); by default V(https) for port 443 or 8443 or a port named "
        "C(https*), else V(http). A Route or Ingress with TLS is always V(https).",
        type="str",
        choices=["http", "https"],
    ),
    path=dict(description="Path prefix added to the URL found, for example C(/v1).", type="str", default=""),
)

WAIT = {
    "options": {
        "wait": {
            "description": ["Wait until the job or deployment reaches the state the module description names."],
            "type": "bool",
            "default": False,
        },
        "wait_timeout": {
            "description": ["Seconds to wait at most. On timeout the module fails saying where it got to."],
            "type": "int",
            "default": 3600,
        },
        "wait_sleep": {
            "description": ["Longest pause between two polls; polls start 2 s apart and double up to this."],
            "type": "int",
            "default": 30,
        },
    }
}


def _env(service, field):
    names = env_names(service, field)
    text = "Falls back to E(%s)" % names[0]
    if len(names) > 1:
        text += ", then %s (former name%s)" % (", ".join("E(%s)" % n for n in names[1:]), "s"[: len(names) - 2])
    return text + "."


def _option(service, field, description, primary, **extra):
    opt = dict(description=description, **extra)
    names = aliases(service, field, primary)
    if names:
        opt["aliases"] = names
    return {option_name(service, field): opt}


def fragment(service, primary=True, url_help=None):
    """The documentation of one service's options (a dict), as module_utils.rest_options.service_spec builds
    them: its main service when `primary`, else a module's second service (no request_timeout/retries, TLS
    settings defaulting to the main service's)."""
    title = SERVICES[service]["title"]
    ca = option_name(service, "ca_path")
    options = {}
    options.update(
        _option(
            service,
            "url",
            [
                url_help or URL_HELP[service],
                "For example C(%s), or the Route, Ingress or load balancer address the platform exposes."
                % SERVICES[service]["example"],
                _env(service, "url"),
            ],
            primary,
            type="str",
        )
    )
    options.update(
        _option(
            service,
            "token",
            [
                "Bearer token sent as C(Authorization) header to %s, for a gateway that adds authentication "
                "in front of it. Never logged." % title,
                _env(service, "token"),
            ],
            primary,
            type="str",
        )
    )
    options.update(
        _option(
            service,
            "headers",
            "Extra HTTP headers for every request to %s (for example a gateway's API-key header)." % title,
            primary,
            type="dict",
            default={},
        )
    )
    options.update(
        _option(
            service,
            "validate_certs",
            [
                "Verify the TLS certificate of %s. Leave it on; give O(%s) for a private CA instead." % (title, ca),
                _env(service, "validate_certs")[:-1]
                + (
                    "; unset, it is O(validate_certs) when that is set (its former name), else V(true)."
                    if primary
                    else "; unset, it is the setting of the module's main service."
                ),
            ],
            primary,
            type="bool",
        )
    )
    options.update(
        _option(
            service,
            "ca_path",
            [
                "PEM file with the CA certificate(s) that signed the certificate of %s." % title,
                _env(service, "ca_path"),
            ],
            primary,
            type="path",
        )
    )
    options[option_name(service, "service")] = dict(
        description=[
            "The Kubernetes Service that serves %s, used when O(%s) is not set: the module finds what the "
            "platform exposes for it (an OpenShift Route, an Istio VirtualService host, an Ingress, a LoadBalancer "
            "address or a NodePort), keeps the first address that answers from the controller and, where none "
            "does, opens a port-forward to a ready Pod of the Service through the Kubernetes API for as long as "
            "the module runs." % (title, option_name(service, "url")),
            "The Kubernetes API is reached with the module's Kubernetes connection options (O(kubeconfig), "
            "O(context), O(host), ... and the E(K8S_AUTH_*) variables), as kubernetes.core does.",
            "Through a port-forward the URL is C(127.0.0.1); with O(%s.scheme=https) the certificate must then be "
            "valid for that address, or its check turned off." % option_name(service, "service"),
        ],
        type="dict",
        suboptions=SERVICE_SUBOPTIONS,
    )
    if primary:
        options["request_timeout"] = dict(
            description="Seconds to wait for one HTTP answer.",
            type="int",
            default=SERVICES[service]["request_timeout"],
        )
        options["retries"] = dict(
            description=[
                "How many times a request is retried after a connection error, a timeout or a 5xx answer, "
                "with exponential backoff and jitter. Requests that create something are not retried blindly.",
            ],
            type="int",
            default=DEFAULT_RETRIES,
        )
    return {"options": options}


def _text(doc):
    # JSON is YAML: the plugin loader reads each attribute as a YAML document
    return json.dumps(doc, indent=2, sort_keys=True)


class ModuleDocFragment(object):
    # extends_documentation_fragment: dataflywheel.blueprint.rest_api.<service> (and .nemo_diagnosis, .wait)
    # Annotated assignments: ansible-test's yamllint reads every plain assignment of a fragment class as a literal
    # string and fails on a built one. tests/unit/test_rest_options.py applies that linter, with ansible-test's own
    # configuration, to what these hold.

    FLYWHEEL: str = _text(fragment("flywheel"))
    NEMO: str = _text(fragment("nemo"))
    ENTITY_STORE: str = _text(fragment("entity_store"))
    NIM: str = _text(fragment("nim"))
    ES: str = _text(fragment("es"))
    # NeMo as the flywheel modules' second service, the Entity Store as the doctor's third
    NEMO_DIAGNOSIS: str = _text(fragment("nemo", primary=False, url_help=NEMO_DIAGNOSIS_URL_HELP))
    ENTITY_STORE_DIAGNOSIS: str = _text(
        fragment("entity_store", primary=False, url_help=ENTITY_STORE_DIAGNOSIS_URL_HELP)
    )
    WAIT: str = _text(WAIT)
