# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that say where a Helm chart comes from and which credentials its repository takes.

Documented in chart_source.yml, chart_sources.yml and chart_source_variables.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

NGC_HOSTS = ("helm.ngc.nvidia.com", "nvcr.io")
NGC_USERNAME = "$oauthtoken"
# the variables of a chart role read per chart, after its prefix
CHART_SUFFIXES = ("_chart_ref", "_chart_repo_url", "_chart_repo_username", "_chart_repo_password")


def _host(url):
    match = re.match(r"^[a-z][a-z0-9+.-]*://([^/@]*@)?([^/:?#]+)", url or "", re.IGNORECASE)
    return match.group(2).lower() if match else ""


def chart_source(chart_ref, repo_url="", username="", password="", ngc_api_key="", ngc_hosts=None):
    """Where chart_ref comes from: a local file or directory, an OCI reference, or a chart in repo_url;
    whether that is NGC; and the credentials to fetch it with (the given ones, else $oauthtoken and the
    NGC key for an NGC source, else none)."""
    ref = str(chart_ref or "")
    repo = str(repo_url or "")
    hosts = [h.lower() for h in (ngc_hosts if ngc_hosts else NGC_HOSTS)]
    local = bool(re.match(r"^(/|\./|\.\./|~)", ref)) or ref.endswith(".tgz")
    oci = ref.startswith("oci://")
    host = "" if local else _host(ref if oci else repo)
    ngc = bool(host) and any(host == h or host.endswith("." + h) for h in hosts)
    user, secret = str(username or ""), str(password or "")
    if ngc and not user and not secret:
        user, secret = NGC_USERNAME, str(ngc_api_key or "")
    return {
        "local": local,
        "oci": oci,
        "remote": not local,
        "host": host,
        "ngc": ngc,
        "location": ref if (local or oci) else "%s (%s)" % (ref, repo),
        "username": user if secret else "",
        "password": secret,
        "authenticated": bool(secret),
    }


def chart_source_variables(roles):
    """The variable names chart_sources reads for these chart roles (to look up the inventory's values)."""
    names = []
    for role in roles:
        names += list(role.get("enabled", []))
        names += [role["method"]] if role.get("method") else []
        names += [role["prefix"] + suffix for suffix in CHART_SUFFIXES]
        names += [condition.partition("=")[0] for condition in role.get("only_when", [])]
    return sorted(set(names))


def _setting(settings, name, role):
    if name not in settings:
        raise AnsibleFilterError(
            "chart_sources: %s is set neither in the inventory nor in role %s's defaults/main.yml "
            "(check preflight_chart_roles)" % (name, role.get("role", "?"))
        )
    value = settings[name]
    if isinstance(value, str) and "{{" in value:
        raise AnsibleFilterError(
            "chart_sources: the default of %s in role %s is a template, which is not rendered here: "
            "set %s in the inventory" % (name, role.get("role", "?"), name)
        )
    return value


def chart_sources(roles, defaults, values=None, platform="vanilla", ngc_api_key="", ngc_hosts=None):
    """The charts this run installs, each as chart_source() plus name, prefix, repo_url and explicit (the role
    was given credentials). roles: preflight_chart_roles; defaults: the chart roles' defaults/main.yml (a list
    of dicts, unrendered); values: the inventory's values of chart_source_variables(roles), which win."""
    settings = {}
    for item in defaults or []:
        settings.update(item or {})
    settings.update(values or {})
    out = []
    for role in roles:
        if not all(boolean(_setting(settings, v, role), strict=False) for v in role.get("enabled", [])):
            continue
        method = _setting(settings, role["method"], role) if role.get("method") else "helm"
        if not (method == "helm" or (method == "auto" and platform != "openshift")):
            continue  # installed another way (OLM on OpenShift)
        conditions = [c.partition("=")[::2] for c in role.get("only_when", [])]
        if any(str(_setting(settings, name, role)) != want for name, want in conditions):
            continue  # e.g. the NeMo chart as the flywheel chart's subchart: no release of its own
        prefix = role["prefix"]
        ref, repo, user, password = (_setting(settings, prefix + s, role) for s in CHART_SUFFIXES)
        source = chart_source(ref, repo, user, password, ngc_api_key, ngc_hosts)
        source.update(
            name=role["name"],
            prefix=prefix,
            repo_url=str(repo or ""),
            explicit=bool(user or password),
        )
        out.append(source)
    return out


class FilterModule(object):
    def filters(self):
        return {
            "chart_source": chart_source,
            "chart_sources": chart_sources,
            "chart_source_variables": chart_source_variables,
        }
