# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the flywheel job modules share: a client on the flywheel_* options, and the NeMo side of a
flywheel job (diagnosing its failed parts, cancelling its customizations)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import TERMINAL, FlywheelClient
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_jobs import (
    CUST_TERMINAL,
    NemoJobError,
    NemoJobsClient,
    enrich_summary,
    parse_nmp_uri,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import (
    SERVICES,
    check_url,
    rest_client,
)


def client_from(module):
    """The flywheel API client; a bad nemo_url fails here too, before anything is sent."""
    if module.params.get("nemo_url"):
        check_url(module, "nemo_url", module.params["nemo_url"], SERVICES["nemo"]["example"])
    return FlywheelClient(rest_client(module, "flywheel"))


def nemo_client(module):
    """A NeMo jobs client for nemo_url, or None when it is not set."""
    p = module.params
    if not p.get("nemo_url"):
        return None
    return NemoJobsClient(rest_client(module, "nemo", tls_from="flywheel", retries=min(p["retries"], 2)))


def diagnose_failures(module, job, summary):
    """With nemo_url set, add the evaluator's/customizer's own diagnosis to the failed parts
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
    job that may still hold a GPU. Needs nemo_url (the NeMo base URL the controller reaches)."""
    found = job_customizations(job)
    if not found:
        return []
    client = nemo_client(module)
    out = []
    for model, nemo_id in found:
        entry = {"model": model, "job_id": nemo_id, "status": None, "cancelled": False, "gpu_released": None}
        if client is None:
            entry["message"] = (
                "not checked: set nemo_url so the module can cancel %s on NeMo (the flywheel's own "
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
