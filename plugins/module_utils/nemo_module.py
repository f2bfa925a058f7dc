# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the NeMo job modules share: connection argument_spec (doc fragment nemo_api) and clients."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_jobs import NemoJobError, parse_nmp_uri
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient

# which module reads a job of each kind, for the error on an nmp_uri of the other kind
JOB_MODULES = {
    "evaluation": "dataflywheel.blueprint.nemo_evaluation_job",
    "customization": "dataflywheel.blueprint.nemo_customization_job_info",
}

NEMO_CONNECTION_ARGS = dict(
    nemo_base_url=dict(type="str", fallback=(env_fallback, ["NEMO_BASE_URL"])),
    nemo_api_token=dict(type="str", no_log=True, fallback=(env_fallback, ["NEMO_API_TOKEN"])),
    nemo_api_headers=dict(type="dict", default={}),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["NEMO_VALIDATE_CERTS"])),
    ca_path=dict(type="path", fallback=(env_fallback, ["NEMO_CA_PATH"])),
    request_timeout=dict(type="int", default=30),
    retries=dict(type="int", default=5),
)


def check_url(module, name, value):
    if value is not None and not str(value).startswith(("http://", "https://")):
        module.fail_json(
            msg="%s=%r must start with http:// or https:// (for example http://nemo.test or "
            "http://nemo-gateway.nemo.svc:8080)" % (name, value)
        )


def rest_for(module, base_url, token=None, headers=None):
    p = module.params
    return RestClient(
        base_url,
        token=token,
        headers=headers or {},
        validate_certs=p["validate_certs"],
        ca_path=p["ca_path"],
        timeout=p["request_timeout"],
        retries=p["retries"],
        user_agent="dataflywheel.blueprint/%s" % module._name,
    )


def job_reference(module, kind):
    """(base_url, job_id) from job_id/nemo_base_url or from a flywheel result's nmp_uri of `kind`;
    fails the module with the fix when the URI is of the other kind or no base URL is known."""
    p = module.params
    base_url, job_id = p["nemo_base_url"], p["job_id"]
    if p["nmp_uri"]:
        try:
            uri_base, uri_kind, job_id = parse_nmp_uri(p["nmp_uri"])
        except NemoJobError as err:
            module.fail_json(msg=str(err))
        if uri_kind != kind:
            article = "an" if uri_kind[0] in "aeiou" else "a"
            module.fail_json(
                msg="nmp_uri=%r points at %s %s job; use %s for it"
                % (p["nmp_uri"], article, uri_kind, JOB_MODULES.get(uri_kind, "the module for that kind"))
            )
        base_url = base_url or uri_base
    if not base_url:
        module.fail_json(msg="nemo_base_url is required (or set NEMO_BASE_URL), for example http://nemo.test")
    check_url(module, "nemo_base_url", base_url)
    return base_url, job_id
