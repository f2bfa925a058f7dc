# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the flywheel job modules share: their connection argument_spec, a client built from it, and
the NeMo side of a flywheel job (diagnosing its failed parts, cancelling its customizations)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import TERMINAL, FlywheelClient
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_jobs import (
    CUST_TERMINAL,
    NemoJobError,
    NemoJobsClient,
    enrich_summary,
    parse_nmp_uri,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient, RestError

CONNECTION_ARGS = dict(
    api_url=dict(type="str", required=True, fallback=(env_fallback, ["FLYWHEEL_API_URL"])),
    api_token=dict(type="str", no_log=True, fallback=(env_fallback, ["FLYWHEEL_API_TOKEN"])),
    api_headers=dict(type="dict", default={}),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["FLYWHEEL_API_VALIDATE_CERTS"])),
    ca_path=dict(type="path", fallback=(env_fallback, ["FLYWHEEL_API_CA_PATH"])),
    request_timeout=dict(type="int", default=30),
    retries=dict(type="int", default=5),
)

# Optional: explain failed evaluations/customizations with the NeMo services' own status, and
# cancel the customizations a cancelled or deleted job leaves running
NEMO_DIAGNOSIS_ARGS = dict(
    nemo_base_url=dict(type="str", fallback=(env_fallback, ["NEMO_BASE_URL"])),
    nemo_api_token=dict(type="str", no_log=True, fallback=(env_fallback, ["NEMO_API_TOKEN"])),
)

WAIT_ARGS = dict(
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=3600),
    wait_sleep=dict(type="int", default=30),
    orphan_timeout=dict(type="int", default=120),
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


def nemo_client(module):
    """A NeMo jobs client for nemo_base_url, or None when it is not set."""
    p = module.params
    if not p.get("nemo_base_url"):
        return None
    rest = RestClient(
        p["nemo_base_url"],
        token=p["nemo_api_token"],
        validate_certs=p["validate_certs"],
        ca_path=p["ca_path"],
        timeout=p["request_timeout"],
        retries=min(p["retries"], 2),
        user_agent="dataflywheel.blueprint/%s" % module._name,
    )
    return NemoJobsClient(rest)


def diagnose_failures(module, job, summary):
    """With nemo_base_url set, add the evaluator's/customizer's own diagnosis to the failed parts
    of a finished job's summary (in place). A NeMo side that cannot be reached only warns."""
    if not summary.get("failures") or job.get("status") not in TERMINAL:
        return 0
    client = nemo_client(module)
    if client is None:
        return 0
    count = enrich_summary(summary, job, client)
    unreached = [f for f in summary["failures"] if (f.get("diagnosis") or {}).get("error")]
    for failure in unreached:
        module.warn("no NeMo diagnosis for %s: %s" % (failure["part"], failure["diagnosis"]["error"]))
    return count


def job_customizations(job):
    """[(NIM, NeMo customization job id)] of a flywheel job detail, except those it finished well."""
    out = []
    for nim in (job or {}).get("nims") or []:
        for cu in nim.get("customizations") or []:
            if not cu.get("nmp_uri") or (cu.get("finished_at") and not cu.get("error")):
                continue
            try:
                _base, kind, nemo_id = parse_nmp_uri(cu["nmp_uri"])
            except NemoJobError:
                continue
            if kind == "customization":
                out.append((nim.get("model_name"), nemo_id))
    return out


def release_customizations(module, job, settle=30.0):
    """Cancel on NeMo the customizations a cancelled or deleted flywheel job leaves running: the
    flywheel's own cancel calls a path NeMo answers 404, so the training job keeps its GPU.
    Returns [{model, job_id, status, cancelled, gpu_released, message}]; warns for each training
    job that may still hold a GPU. Needs nemo_base_url (the NeMo base URL the controller reaches)."""
    found = job_customizations(job)
    if not found:
        return []
    client = nemo_client(module)
    out = []
    for model, nemo_id in found:
        entry = {"model": model, "job_id": nemo_id, "status": None, "cancelled": False, "gpu_released": None}
        if client is None:
            entry["message"] = (
                "not checked: set nemo_base_url so the module can cancel %s on NeMo (the flywheel's own "
                "cancel does not reach it, so its training may still hold a GPU)" % nemo_id
            )
        elif module.check_mode:
            entry["message"] = "check mode: %s would be looked up and cancelled on NeMo if it runs" % nemo_id
        else:
            try:
                status, entry["cancelled"] = client.cancel_customization(nemo_id, settle=settle)
            except RestError as err:
                status, entry["message"] = None, "NeMo could not be asked about %s: %s" % (nemo_id, err)
            if status is None and "message" not in entry:
                entry["message"] = "NeMo does not know %s (deleted, or another NeMo)" % nemo_id
                entry["gpu_released"] = True
            elif status is not None:
                entry["status"] = status.get("status")
                entry["gpu_released"] = entry["status"] in CUST_TERMINAL
                entry["message"] = "%s %s on NeMo: %s" % (
                    nemo_id,
                    "cancelled" if entry["cancelled"] else "was already %s" % entry["status"],
                    "its GPU is released"
                    if entry["gpu_released"]
                    else "still %s, its GPU may be busy; look at the customizer" % entry["status"],
                )
        if not entry["gpu_released"]:
            module.warn("customization of %s: %s" % (model, entry["message"]))
        out.append(entry)
    return out
