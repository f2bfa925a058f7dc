# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the flywheel modules share: a client on the flywheel_* options, and the NeMo diagnosis."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import TERMINAL, FlywheelClient
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_jobs import NemoJobsClient, enrich_summary
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


def diagnose_failures(module, job, summary):
    """With nemo_url set, add the evaluator's/customizer's own diagnosis to the failed parts
    of a finished job's summary (in place). A NeMo side that cannot be reached only warns."""
    p = module.params
    if not p.get("nemo_url") or not summary.get("failures") or job.get("status") not in TERMINAL:
        return 0
    rest = rest_client(module, "nemo", tls_from="flywheel", retries=min(p["retries"], 2))
    count = enrich_summary(summary, job, NemoJobsClient(rest))
    unreached = [f for f in summary["failures"] if (f.get("diagnosis") or {}).get("error")]
    for failure in unreached:
        module.warn("no NeMo diagnosis for %s: %s" % (failure["part"], failure["diagnosis"]["error"]))
    return count
