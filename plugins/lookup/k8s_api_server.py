# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: k8s_api_server
short_description: The URL of the Kubernetes API server that connection settings point at, without contacting it
version_added: "0.1.0"
author:
  - dataflywheel.blueprint maintainers (@dataflywheel)
description:
  - Reads the connection settings as kubernetes.core reads them (C(host), else C(kubeconfig) with C(context), else
    the C(K8S_AUTH_*) environment variables, else C(KUBECONFIG) or C(~/.kube/config), else the in-cluster
    service account's C(KUBERNETES_SERVICE_HOST)) and returns the API server's URL, so that a message can name
    the server when it does not answer. Sends no request.
  - Returns an empty string when the settings name no server (for example a kubeconfig that does not exist).
  - Runs on the controller; connection settings given to modules through C(environment) are not seen.
options:
  _terms:
    description:
      - The connection settings, with kubernetes.core's option names (C(host), C(kubeconfig), C(context)); other
        keys are ignored. For example the playbooks' C(flywheel_k8s_module_defaults).
    required: true
    type: dict
"""

EXAMPLES = r"""
- name: Name the API server a failed task used
  ansible.builtin.debug:
    msg: "{{ lookup('dataflywheel.blueprint.k8s_api_server', {'kubeconfig': '/etc/dfw/kubeconfig'}) }}"
"""

RETURN = r"""
_raw:
  description: The API server URL (for example C(https://api.ocp.example.com:6443)), or an empty string.
  type: list
  elements: str
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase

try:
    import yaml
except ImportError:  # ansible-core itself needs PyYAML
    yaml = None


def _omitted(value):
    """A value templated from `default(omit)` (module_defaults-style settings passed as data)."""
    return type(value).__name__ == "_OmitType" or (isinstance(value, str) and value.startswith("__omit_place_holder__"))


def _setting(settings, name, environ):
    value = settings.get(name)
    if value in (None, "", []) or _omitted(value):
        return environ.get("K8S_AUTH_%s" % name.upper())
    return value


def _load(path):
    try:
        with open(os.path.expanduser(path)) as handle:
            return yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _kubeconfigs(settings, environ):
    """The kubeconfig documents kubernetes.core would read, in precedence order."""
    kubeconfig = _setting(settings, "kubeconfig", environ)
    if isinstance(kubeconfig, dict):
        return [kubeconfig]
    if kubeconfig:
        return [_load(kubeconfig)]
    paths = environ.get("KUBECONFIG") or "~/.kube/config"
    return [_load(p) for p in paths.split(os.pathsep) if p]


def _named(items, name):
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return {}


def api_server(settings, environ=None):
    """The API server URL `settings` point at, or ""."""
    environ = os.environ if environ is None else environ
    host = _setting(settings, "host", environ)
    if host:
        return str(host)
    configs = _kubeconfigs(settings, environ)
    context = _setting(settings, "context", environ)
    if not context:  # the first file that sets current-context wins, as with kubectl
        context = next((c.get("current-context") for c in configs if c.get("current-context")), None)
    for config in configs:
        cluster = (_named(config.get("contexts"), context).get("context") or {}).get("cluster")
        if not cluster:
            continue
        for other in configs:
            server = (_named(other.get("clusters"), cluster).get("cluster") or {}).get("server")
            if server:
                return str(server)
    if not any(configs) and environ.get("KUBERNETES_SERVICE_HOST"):
        host = environ["KUBERNETES_SERVICE_HOST"]
        host = "[%s]" % host if ":" in host else host
        return "https://%s:%s" % (host, environ.get("KUBERNETES_SERVICE_PORT", "443"))
    return ""


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if yaml is None:
            raise AnsibleLookupError("k8s_api_server needs PyYAML")
        out = []
        for term in terms:
            if not isinstance(term, dict):
                raise AnsibleLookupError(
                    "k8s_api_server takes the connection settings as a dict (host, kubeconfig, context), not %s"
                    % to_native(type(term).__name__)
                )
            out.append(api_server(term))
        return out
