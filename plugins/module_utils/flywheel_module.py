# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the flywheel modules share: their connection argument_spec and a client built from it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import TERMINAL, FlywheelClient
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_jobs import NemoJobsClient, enrich_summary
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient

CONNECTION_ARGS = dict(
    api_url=dict(type="str", required=True, fallback=(env_fallback, ["FLYWHEEL_API_URL"])),
    api_token=dict(type="str", no_log=True, fallback=(env_fallback, ["FLYWHEEL_API_TOKEN"])),
    api_headers=dict(type="dict", default={}),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["FLYWHEEL_API_VALIDATE_CERTS"])),
    ca_path=dict(type="path", fallback=(env_fallback, ["FLYWHEEL_API_CA_PATH"])),
    request_timeout=dict(type="int", default=30),
    retries=dict(type="int", default=5),
)

# Optional: explain failed evaluations/customizations with the NeMo services' own status
NEMO_DIAGNOSIS_ARGS = dict(
    nemo_base_url=dict(type="str", fallback=(env_fallback, ["NEMO_BASE_URL"])),
    nemo_api_token=dict(type="str", no_log=True, fallback=(env_fallback, ["NEMO_API_TOKEN"])),
)

WAIT_ARGS = dict(
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=3600),
    wait_sleep=dict(type="int", default=30),
)


def client_from(module):
    p = module.params
    if not p["api_url"].startswith(("http://", "https://")):
        module.fail_json(
            msg="api_url=%r must start with http:// or https:// (for example "
            "http://df-api.data-flywheel.svc:8000)" % p["api_url"]
        )
    nemo = p.get("nemo_base_url")
    if nemo and not nemo.startswith(("http://", "https://")):
        module.fail_json(
            msg="nemo_base_url=%r must start with http:// or https:// (for example http://nemo.test)" % nemo
        )
    rest = RestClient(
        p["api_url"],
        token=p["api_token"],
        headers=p["api_headers"],
        validate_certs=p["validate_certs"],
        ca_path=p["ca_path"],
        timeout=p["request_timeout"],
        retries=p["retries"],
        user_agent="dataflywheel.blueprint/%s" % module._name,
    )
    return FlywheelClient(rest)


def diagnose_failures(module, job, summary):
    """With nemo_base_url set, add the evaluator's/customizer's own diagnosis to the failed parts
    of a finished job's summary (in place). A NeMo side that cannot be reached only warns."""
    p = module.params
    if not p.get("nemo_base_url") or not summary.get("failures") or job.get("status") not in TERMINAL:
        return 0
    rest = RestClient(
        p["nemo_base_url"],
        token=p["nemo_api_token"],
        validate_certs=p["validate_certs"],
        ca_path=p["ca_path"],
        timeout=p["request_timeout"],
        retries=min(p["retries"], 2),
        user_agent="dataflywheel.blueprint/%s" % module._name,
    )
    count = enrich_summary(summary, job, NemoJobsClient(rest))
    unreached = [f for f in summary["failures"] if (f.get("diagnosis") or {}).get("error")]
    for failure in unreached:
        module.warn("no NeMo diagnosis for %s: %s" % (failure["part"], failure["diagnosis"]["error"]))
    return count
