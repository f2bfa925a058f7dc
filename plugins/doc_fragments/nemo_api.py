# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of the modules that talk to the NeMo microservices (v1 API).
    DOCUMENTATION = r"""
options:
  nemo_base_url:
    description:
      - Base URL that routes C(/v1/evaluation), C(/v1/customization), C(/v1/deployment) and C(/v1/models)
        to the NeMo services, without C(/v1) - the flywheel's C(nmp_config.nemo_base_url) as the controller
        reaches it (for example C(http://nemo.test) or a gateway Service).
      - Falls back to the environment variable E(NEMO_BASE_URL).
    type: str
  nemo_api_token:
    description:
      - Bearer token for a gateway in front of the services (NeMo itself has no authentication).
      - Falls back to E(NEMO_API_TOKEN). Never logged.
    type: str
  nemo_api_headers:
    description: Extra HTTP headers for every request.
    type: dict
    default: {}
  validate_certs:
    description:
      - Verify TLS certificates. Leave on; give O(ca_path) for a private CA instead.
      - Falls back to E(NEMO_VALIDATE_CERTS).
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with the CA certificate(s) that signed the server certificate.
      - Falls back to E(NEMO_CA_PATH).
    type: path
  request_timeout:
    description: Seconds to wait for one HTTP answer.
    type: int
    default: 30
  retries:
    description:
      - How many times an idempotent request is retried after a connection error, a timeout or a 5xx
        answer, with exponential backoff and jitter. Creating a job is never retried blindly.
    type: int
    default: 5
"""
