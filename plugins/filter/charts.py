# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filter that says where a Helm chart comes from and which credentials its repository takes.

Documented in chart_source.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

NGC_HOSTS = ("helm.ngc.nvidia.com", "nvcr.io")
NGC_USERNAME = "$oauthtoken"


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


class FilterModule(object):
    def filters(self):
        return {"chart_source": chart_source}
