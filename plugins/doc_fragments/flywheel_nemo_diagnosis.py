# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Optional NeMo diagnosis of failed evaluations/customizations inside flywheel jobs.
    DOCUMENTATION = r"""
options:
  nemo_base_url:
    description:
      - Base URL of the NeMo services (the flywheel's C(nmp_config.nemo_base_url) as the controller reaches it).
      - When set, every failed evaluation or customization of a finished job that carries an C(nmp_uri) is
        looked up there, and its failure gets the service's own words - the customizer's status log line
        (for example C(failed - The training job is pending) or C(NotEnoughResources) with the scheduler's
        message), the evaluator's status message and log tail - plus a hint, in C(error) and in C(diagnosis).
      - M(dataflywheel.blueprint.flywheel_job) with O(dataflywheel.blueprint.flywheel_job#module:state=cancelled) or
        O(dataflywheel.blueprint.flywheel_job#module:state=absent) also cancels there the customizations the
        job leaves running (the flywheel's own cancel posts to a path NeMo answers 404, so training would keep
        its GPU), and says whether each GPU was released.
      - Only the job id is taken from the C(nmp_uri) (its host is the in-cluster one). TLS settings are
        those of the flywheel API. A NeMo side that cannot be reached leaves the failure as it was and warns.
      - Falls back to E(NEMO_BASE_URL).
    type: str
  nemo_api_token:
    description:
      - Bearer token for a gateway in front of the NeMo services. Never logged.
      - Falls back to E(NEMO_API_TOKEN).
    type: str
"""
