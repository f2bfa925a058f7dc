# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Kubernetes connection settings shared by the collection's modules that read the cluster.

The same precedence as kubernetes.core, so one AWX credential serves every module of a play:
a host plus a bearer token (AWX's "OpenShift or Kubernetes API Bearer Token" credential injects
K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL and K8S_AUTH_SSL_CA_CERT) wins; otherwise a
kubeconfig (option, K8S_AUTH_KUBECONFIG, KUBECONFIG); otherwise the in-cluster service account;
otherwise ~/.kube/config.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.basic import env_fallback

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
except ImportError:  # the module reports missing_required_lib itself
    k8s_client = None
    k8s_config = None

K8S_AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
)


class K8sAuthError(Exception):
    """A connection setting is unusable; the message names it and the fix."""


def kubeconfig_path(params, environ=None):
    environ = os.environ if environ is None else environ
    return params.get("kubeconfig") or environ.get("K8S_AUTH_KUBECONFIG") or environ.get("KUBECONFIG")


def describe(params, environ=None):
    """Which credential source api_client() will use (for messages; never the token)."""
    if params.get("host") and params.get("api_key"):
        return "bearer token for %s" % params["host"]
    path = kubeconfig_path(params, environ)
    if path:
        return "kubeconfig %s" % path
    return "in-cluster service account or ~/.kube/config"


def api_client(params, environ=None):
    """A kubernetes ApiClient for the module parameters (see the module docstring for precedence)."""
    environ = os.environ if environ is None else environ
    host, token = params.get("host"), params.get("api_key")
    if host or token:
        if not (host and token):
            missing = "api_key (K8S_AUTH_API_KEY)" if host else "host (K8S_AUTH_HOST)"
            raise K8sAuthError(
                "Kubernetes bearer-token authentication needs both host and api_key; %s is not set" % missing
            )
        cfg = k8s_client.Configuration()
        cfg.host = host.rstrip("/")
        cfg.api_key = {"authorization": "Bearer %s" % token}
        if params.get("validate_certs") is not None:
            cfg.verify_ssl = params["validate_certs"]
        ca_cert = params.get("ca_cert")
        if ca_cert:
            if not os.path.isfile(ca_cert):
                raise K8sAuthError(
                    "ca_cert %s (K8S_AUTH_SSL_CA_CERT) is not a readable file; point it at the PEM bundle "
                    "that signed the API server certificate" % ca_cert
                )
            cfg.ssl_ca_cert = ca_cert
        return k8s_client.ApiClient(cfg)
    context = params.get("context") or environ.get("K8S_AUTH_CONTEXT")
    path = kubeconfig_path(params, environ)
    if path:
        if not os.path.exists(path):
            raise K8sAuthError(
                "kubeconfig %s does not exist; set kubeconfig or K8S_AUTH_KUBECONFIG to a readable file, "
                "or K8S_AUTH_HOST and K8S_AUTH_API_KEY" % path
            )
        return k8s_config.new_client_from_config(config_file=path, context=context)
    try:
        k8s_config.load_incluster_config()
        return k8s_client.ApiClient()
    except k8s_config.ConfigException:
        return k8s_config.new_client_from_config(context=context)
