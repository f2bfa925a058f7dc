# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options of the modules that talk to the Data Flywheel API.
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the Data Flywheel API, without C(/api), for example C(http://df-api.data-flywheel.svc:8000)
        or the Route/Ingress/VirtualService host the platform exposes.
      - Falls back to the environment variable E(FLYWHEEL_API_URL).
    type: str
    required: true
  api_token:
    description:
      - Bearer token sent as C(Authorization) header. Upstream has no authentication; gateways in
        front of it often add some.
      - Falls back to the environment variable E(FLYWHEEL_API_TOKEN). Never logged.
    type: str
  api_headers:
    description: Extra HTTP headers for every request (for example a gateway's API-key header).
    type: dict
    default: {}
  validate_certs:
    description:
      - Verify the server's TLS certificate. Leave on; give O(ca_path) for a private CA instead.
      - Falls back to the environment variable E(FLYWHEEL_API_VALIDATE_CERTS).
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with the CA certificate(s) that signed the API's certificate.
      - Falls back to the environment variable E(FLYWHEEL_API_CA_PATH).
    type: path
  request_timeout:
    description: Seconds to wait for one HTTP answer.
    type: int
    default: 30
  retries:
    description:
      - How many times a request is retried after a connection error, a timeout or a 5xx answer,
        with exponential backoff and jitter. Starting a job is never blindly retried (see the module).
    type: int
    default: 5
"""
