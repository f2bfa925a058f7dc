# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # What the modules that talk to the flywheel's Elasticsearch log index take besides the
    # collection's REST options (rest_api.es).
    DOCUMENTATION = r"""
options:
  es_username:
    description:
      - User for HTTP basic authentication (for example C(elastic)).
      - Falls back to E(DFW_ES_USERNAME), then E(FLYWHEEL_ES_USERNAME) (former name).
    type: str
  es_password:
    description:
      - Password for O(es_username). Never logged.
      - Falls back to E(DFW_ES_PASSWORD), then E(FLYWHEEL_ES_PASSWORD) (former name).
    type: str
  es_api_key:
    description:
      - Elasticsearch API key (the base64 C(id:api_key) value), sent as C(Authorization ApiKey).
        Wins over O(es_username)/O(es_password), which win over O(es_token). Never logged.
      - Falls back to E(DFW_ES_API_KEY), then E(FLYWHEEL_ES_API_KEY) (former name).
    type: str
  index:
    description:
      - The flywheel's log index. The flywheel reads E(ES_COLLECTION_NAME), default C(flywheel).
      - Falls back to the environment variable E(ES_COLLECTION_NAME).
    type: str
    default: flywheel
"""
