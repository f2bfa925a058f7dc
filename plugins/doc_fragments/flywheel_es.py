# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of the modules that talk to the flywheel's Elasticsearch log index.
    DOCUMENTATION = r"""
options:
  es_url:
    description:
      - Base URL of the Elasticsearch (or OpenSearch) that holds the flywheel's log index, for example
        C(http://df-elasticsearch-service.data-flywheel.svc:9200) or the address the platform exposes.
      - Falls back to the environment variables E(FLYWHEEL_ES_URL), then E(ELASTICSEARCH_URL) (the
        variable the flywheel itself reads).
    type: str
    required: true
  es_username:
    description:
      - User for HTTP basic authentication (for example C(elastic)).
      - Falls back to the environment variable E(FLYWHEEL_ES_USERNAME).
    type: str
  es_password:
    description:
      - Password for O(es_username). Never logged.
      - Falls back to the environment variable E(FLYWHEEL_ES_PASSWORD).
    type: str
  es_api_key:
    description:
      - Elasticsearch API key (the base64 C(id:api_key) value), sent as C(Authorization ApiKey).
        Wins over O(es_username)/O(es_password). Never logged.
      - Falls back to the environment variable E(FLYWHEEL_ES_API_KEY).
    type: str
  index:
    description:
      - The flywheel's log index. The flywheel reads E(ES_COLLECTION_NAME), default C(flywheel).
      - Falls back to the environment variable E(ES_COLLECTION_NAME).
    type: str
    default: flywheel
  validate_certs:
    description:
      - Verify the server's TLS certificate. Leave on; give O(ca_path) for a private CA instead.
      - Falls back to the environment variable E(FLYWHEEL_ES_VALIDATE_CERTS).
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with the CA certificate(s) that signed the Elasticsearch certificate.
      - Falls back to the environment variable E(FLYWHEEL_ES_CA_PATH).
    type: path
  request_timeout:
    description: Seconds to wait for one HTTP answer.
    type: int
    default: 60
  retries:
    description:
      - How many times a request is retried after a connection error, a timeout, 429 or a 5xx
        answer, with exponential backoff and jitter. Every request these modules make is safe to
        repeat.
    type: int
    default: 5
"""
