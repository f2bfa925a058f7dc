#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: flywheel_logs_info
short_description: Count the records in the Data Flywheel's log index per workload and client
version_added: 0.1.0
description:
  - Returns how many log records the flywheel's index holds for each C(workload_id)/C(client_id)
    pair (one search with aggregations), optionally only for one workload and/or client.
  - A flywheel job fails when its workload/client has fewer than C(data_split_config.min_total_records)
    or C(eval_size) records; the C(flywheel_run) role uses this module to stop before starting
    such a job.
author: dataflywheel.blueprint maintainers (@dataflywheel)
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.es
  - dataflywheel.blueprint.flywheel_es
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed.
options:
  workload_id:
    description: Only records of this workload.
    type: str
  client_id:
    description: Only records of this client.
    type: str
"""

EXAMPLES = r"""
- name: Count the records of the demo's clients
  dataflywheel.blueprint.flywheel_logs_info:
    es_url: "{{ flywheel_es_url }}"
    workload_id: primary_assistant
  register: logs

- name: Show them
  ansible.builtin.debug:
    msg: "{{ item.client_id }}: {{ item.records }} records"
  loop: "{{ logs.counts }}"
"""

RETURN = r"""
exists:
  description: Whether the index exists (all counts are 0 when it does not).
  returned: always
  type: bool
index:
  description: The log index.
  returned: always
  type: str
count:
  description: Records matching O(workload_id) and O(client_id) (all records when neither is given).
  returned: always
  type: int
  sample: 300
counts:
  description: Records per workload/client pair among the selected records.
  returned: always
  type: list
  elements: dict
  sample: [{workload_id: primary_assistant, client_id: aiva-1, records: 300}]
requests:
  description: HTTP requests this run made.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_log_loader import run_logs_info
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.search_client import client_from, connection_args


def main():
    spec = dict(workload_id=dict(type="str"), client_id=dict(type="str"))
    spec.update(connection_args())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_logs_info(module, client_from(module))


if __name__ == "__main__":
    main()
