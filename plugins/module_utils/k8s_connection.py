# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""How the collection's modules reach Kubernetes: through kubernetes.core, nothing of our own.

Its connection options (AUTH_ARG_SPEC, documented by the doc fragment kubernetes.core.k8s_auth_options),
its K8S_AUTH_* environment variables and its client (module_utils.k8s.client.get_api_client), so a
kubeconfig, a context, a token, client certificates, a proxy, impersonation or an AWX credential work
the same for our modules as for kubernetes.core.k8s. What this adds is what our modules say when the
connection cannot be made: which credentials they used, and the option that fixes it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.kubernetes_lazy import api_exception

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    HAS_KUBERNETES_COLLECTION = True
    KUBERNETES_COLLECTION_ERROR = None
except ImportError:  # the module says so (missing_collection), with the install command
    AUTH_ARG_SPEC = {}
    HAS_KUBERNETES_COLLECTION = False
    KUBERNETES_COLLECTION_ERROR = traceback.format_exc()

    class CoreException(Exception):
        pass


def missing_collection():
    return (
        "This module needs the collection kubernetes.core (>= 5.0.0) for its Kubernetes connection: "
        "ansible-galaxy collection install kubernetes.core"
    )


def argument_spec(**extra):
    """kubernetes.core's connection options, updated with the module's own `extra` options."""
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(copy.deepcopy(extra))
    return spec


class K8sConnectionError(Exception):
    """The connection settings are unusable; the message names them and the fix."""


def _setting(params, name, environ):
    value = params.get(name)
    return value if value not in (None, "", []) else environ.get("K8S_AUTH_%s" % name.upper())


def describe(params, environ=None):
    """Which credentials kubernetes.core will use, in words (never a secret)."""
    environ = os.environ if environ is None else environ
    host = _setting(params, "host", environ)
    if host and _setting(params, "api_key", environ):
        text = "bearer token for %s" % host
    elif host and _setting(params, "client_cert", environ) and _setting(params, "client_key", environ):
        text = "client certificate %s for %s" % (_setting(params, "client_cert", environ), host)
    elif host and _setting(params, "username", environ) and _setting(params, "password", environ):
        text = "user %s on %s" % (_setting(params, "username", environ), host)
    else:
        kubeconfig = _setting(params, "kubeconfig", environ)
        if isinstance(kubeconfig, dict):
            text = "the kubeconfig given inline"
        elif kubeconfig:
            text = "kubeconfig %s" % kubeconfig
        else:
            text = "the in-cluster service account, else %s" % (environ.get("KUBECONFIG") or "~/.kube/config")
        context = _setting(params, "context", environ)
        if context:
            text += " (context %s)" % context
    proxy = _setting(params, "proxy", environ)
    if proxy:
        text += " through proxy %s" % proxy
    user = _setting(params, "impersonate_user", environ)
    if user:
        text += " as %s" % user
    return text


def check(params, environ=None):
    """Refuse, with the fix, a kubeconfig that kubernetes.core would read and that is not there."""
    environ = os.environ if environ is None else environ
    host = _setting(params, "host", environ)
    has_credentials = host and any(
        _setting(params, a, environ) and _setting(params, b, environ)
        for a, b in (("api_key", "api_key"), ("client_cert", "client_key"), ("username", "password"))
    )
    for name, variable in (("ca_cert", "SSL_CA_CERT"), ("client_cert", "CERT_FILE"), ("client_key", "KEY_FILE")):
        path = _setting(params, name, environ) or environ.get("K8S_AUTH_%s" % variable)
        if path and not os.path.isfile(os.path.expanduser(path)):
            raise K8sConnectionError(
                "%s %s (K8S_AUTH_%s) is not a readable file; point it at the PEM file%s"
                % (name, path, variable, " that signed the API server certificate" if name == "ca_cert" else "")
            )
    kubeconfig = _setting(params, "kubeconfig", environ)
    if not has_credentials and isinstance(kubeconfig, str) and not os.path.exists(os.path.expanduser(kubeconfig)):
        raise K8sConnectionError(
            "kubeconfig %s does not exist; set kubeconfig (or K8S_AUTH_KUBECONFIG) to a readable file, or "
            "host with api_key or with client_cert and client_key (K8S_AUTH_HOST, K8S_AUTH_API_KEY, ...)" % kubeconfig
        )


def get_api_client(**params):
    """kubernetes.core's get_api_client, imported on first use (its module imports the kubernetes library)."""
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import (  # noqa: PLC0415
        get_api_client as core_get_api_client,
    )

    return core_get_api_client(**params)


def api_client(module):
    """The kubernetes ApiClient kubernetes.core builds from the module's connection options and
    the K8S_AUTH_* variables. Raises K8sConnectionError with what was used and what to fix."""
    if not HAS_KUBERNETES_COLLECTION:
        raise K8sConnectionError(missing_collection())
    params = dict((name, module.params.get(name)) for name in AUTH_ARG_SPEC)
    check(params)
    try:
        return get_api_client(**params).client.client
    except CoreException as err:
        raise K8sConnectionError("cannot use %s: %s" % (describe(params), err)) from None


def k8s_module(**kwargs):
    """kubernetes.core's module class (it checks the kubernetes library) with its connection options
    added to `argument_spec`. Without kubernetes.core the module fails saying how to install it."""
    if not HAS_KUBERNETES_COLLECTION:
        AnsibleModule(argument_spec={}, bypass_checks=True).fail_json(
            msg=missing_collection(), exception=KUBERNETES_COLLECTION_ERROR
        )
    spec = argument_spec(**kwargs.pop("argument_spec", {}))
    return AnsibleK8SModule(module_class=AnsibleModule, argument_spec=spec, **kwargs)


def call_api(module, work, doing, expected=()):
    """work(api_client) with the module's connection; fails the module with a message that says what it
    was `doing`, the credentials it used and the answer, never a traceback. Errors of the `expected`
    classes already say what is wrong and are reported as they are."""
    params = dict((key, module.params.get(key)) for key in AUTH_ARG_SPEC)
    name = module._name.rsplit(".", 1)[-1]
    try:
        return work(api_client(module))
    except (K8sConnectionError,) + tuple(expected) as exc:
        module.fail_json(msg="%s: %s" % (name, exc))
    except api_exception() as exc:
        module.fail_json(
            msg="%s: the Kubernetes API answered %s %s %s (credentials: %s)"
            % (name, exc.status, exc.reason, doing, describe(params))
        )
    except Exception as exc:  # noqa: BLE001 - connection refused, TLS, proxy: report, no traceback
        module.fail_json(msg="%s: cannot reach the Kubernetes API (%s) %s: %s" % (name, describe(params), doing, exc))


def get_json(api_client, path, query=None, accept="application/json"):
    """GET `path` and parse the JSON answer as it is: lists and CRDs can be large, and the typed models of the
    kubernetes client would build an object for every field."""
    response = api_client.call_api(
        path,
        "GET",
        query_params=list((query or {}).items()),
        header_params={"Accept": accept},
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
    )
    return json.loads(response.data)
