# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the NeMo modules share: a client on the nemo_* options, and a job named by id or nmp_uri."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_jobs import NemoJobError, parse_nmp_uri
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import rest_client

# which module reads a job of each kind, for the error on an nmp_uri of the other kind
JOB_MODULES = {
    "evaluation": "dataflywheel.blueprint.nemo_evaluation_job",
    "customization": "dataflywheel.blueprint.nemo_customization_job_info",
}


def nemo_client(module, base_url, client_class):
    """`client_class` (a NeMo API client) on the REST client built from the nemo_* options."""
    return client_class(rest_client(module, "nemo", base_url=base_url))


def job_reference(module, kind):
    """(base URL of the nmp_uri or None, job_id) from job_id or a flywheel result's nmp_uri of `kind`;
    fails the module with the fix when the URI is of the other kind. nemo_url and nemo_service win over
    the URI's base (its host is usually the in-cluster one), see rest_options.resolve_url."""
    p = module.params
    base_url, job_id = None, p["job_id"]
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
        base_url = uri_base
    return base_url, job_id
