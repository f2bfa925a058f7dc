# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filter: the promotion decision for a flywheel job's results (documented in
flywheel_promotion_decision.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.promotion import PromotionError, decide


def promotion_decision(results, metric="function_name_and_args_accuracy", margin=0.05, baseline="base-eval"):
    try:
        return decide(results, metric=metric, margin=margin, baseline=baseline)
    except PromotionError as err:
        raise AnsibleFilterError("flywheel_promotion_decision: %s" % err) from None


class FilterModule(object):
    def filters(self):
        return {"flywheel_promotion_decision": promotion_decision}
