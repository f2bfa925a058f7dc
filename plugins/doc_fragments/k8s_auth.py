# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Kubernetes connection options of the modules that read the cluster (same names and
    # environment variables as kubernetes.core, so AWX's Kubernetes credential works unchanged).
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file. Falls back to E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG),
        then the in-cluster service account, then C(~/.kube/config).
      - Ignored when O(host) and O(api_key) are set.
    type: path
  context:
    description: Kubeconfig context to use. Falls back to E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example C(https://api.ocp.example.com:6443). Used with
        O(api_key) instead of a kubeconfig.
      - Falls back to E(K8S_AUTH_HOST), which AWX's "OpenShift or Kubernetes API Bearer Token"
        credential injects.
    type: str
  api_key:
    description:
      - Bearer token (for example a ServiceAccount token) for O(host). Never logged.
      - Falls back to E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server certificate. Falls back to E(K8S_AUTH_VERIFY_SSL).
      - Only used with O(host); a kubeconfig carries its own setting.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - PEM CA bundle that signed the API server certificate. Falls back to E(K8S_AUTH_SSL_CA_CERT).
      - Only used with O(host); a kubeconfig carries its own CA.
    type: path
    aliases: [ssl_ca_cert]
"""
