#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: flywheel_logs
short_description: Load production prompt/response logs into the Data Flywheel's log index
version_added: 0.1.0
description:
  - Bulk-loads chat-completion log records (a JSONL file or a list) into the Elasticsearch index
    the Data Flywheel reads its training and evaluation data from, through the Bulk API in
    batches of at most O(batch_size) records and O(batch_bytes) bytes, O(parallel_batches) of them
    in flight at once. A record the engine refuses with 429 (its write queue is full) is sent again
    after a growing pause, not counted as failed.
  - Every record is checked before anything is written (the module only reads the index's mapping
    first), against the index's strict mapping (only
    C(workload_id), C(client_id), C(timestamp), C(request), C(response) at the top level) and the
    OpenAI chat-completion shape (request C(model) and C(messages); response C(choices[].message),
    tool calls with a function name and JSON arguments), and as JSON the engine parses (no C(NaN)
    or C(Infinity)). Any invalid record fails the task with the line (or list position) and field
    of each problem, and the index is left unchanged (not created either).
  - Idempotent. Each record's document id is derived from its content, so loading the same file
    again creates nothing and reports C(changed=false). What counts as the same record depends on
    the index (the module reads its mapping first).
  - An index this module creates records its id scheme in its mapping's C(_meta)
    (C(dataflywheel.blueprint.document_ids=source-sha256)). Into such an index a file's line is sent
    as it is, and its id is the SHA-256 of the line's bytes (without surrounding whitespace). The
    same bytes are the same record; the same record written with other whitespace or key order is
    another record. A line must then be UTF-8 and have no key twice in one object (the engine
    refuses both). With O(workload_id) or O(client_id) set, or with O(records), the document is the
    record (overrides applied) as compact JSON in its own key order, and its id the SHA-256 of that
    (a key written twice in one object keeps its last value, as in the earlier scheme).
  - An index without that marker (created by the flywheel, by hand, or by an earlier version of this
    module) keeps the earlier scheme, so reloading a file into it adds no duplicates. Each record is
    sent as canonical JSON (sorted keys, no spaces, overrides applied) and its id is the SHA-256 of
    that, whatever the formatting of the line. Reading and checking then cost about half as much again.
  - Creates the index with the flywheel's own settings and mapping (plus that C(_meta)) when it does
    not exist. An existing index is never changed; the module fails if its mapping lacks what the
    flywheel's queries need.
  - O(state=absent) deletes the records of a workload and/or client (delete-by-query).
author: dataflywheel.blueprint maintainers (@dataflywheel)
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.es
  - dataflywheel.blueprint.flywheel_es
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Validates everything and reports how many records would be created or deleted; writes nothing.
  diff_mode:
    support: none
    description: Records are not diffed.
options:
  state:
    description:
      - V(present) loads the records. V(absent) deletes every record of O(workload_id) and/or
        O(client_id) (at least one of them is required).
    type: str
    choices: [present, absent]
    default: present
  path:
    description:
      - JSONL file, one record per line, on the host the module runs on. The C(flywheel_clusters)
        hosts of this collection use a local connection, so that is the Ansible controller.
      - Mutually exclusive with O(records).
    type: path
  records:
    description: Records to load, each a mapping with the five top-level fields. Mutually exclusive with O(path).
    type: list
    elements: raw
  workload_id:
    description:
      - With O(state=present), set this workload_id on every record (records may then omit it);
        with O(state=absent), the workload whose records are deleted.
    type: str
  client_id:
    description:
      - With O(state=present), set this client_id on every record (the seeds' demo loads one file as
        C(aiva-1), C(aiva-2) and C(aiva-3)); with O(state=absent), the client whose records are deleted.
    type: str
  max_records:
    description: Load only the first this many records of the file or list (checked and counted the same way).
    type: int
  batch_size:
    description: Records per Bulk API request, at most.
    type: int
    default: 500
  batch_bytes:
    description:
      - Bytes per Bulk API request, at most.
      - The engine refuses requests above its C(http.max_content_length), 100 MB by default.
    type: int
    default: 8388608
  parallel_batches:
    description: Bulk API requests in flight at once (the engine indexes one batch while the next is sent).
    type: int
    default: 2
  compress:
    description:
      - Send the Bulk API requests gzip-compressed (header C(Content-Encoding) C(gzip)). Saves most of the bytes on a
        network; on the same host it only costs CPU.
    type: bool
    default: false
  refresh:
    description: Refresh the index after loading so counts and the flywheel see the records at once.
    type: bool
    default: true
notes:
  - A record that appears twice in the same input (same id) is loaded once. Records that differ only in
    their C(timestamp) are different documents; the flywheel itself de-duplicates by
    request messages and response choices when it builds datasets.
  - A file of 2,000 lines or more is read and checked by two processes at once.
seealso:
  - module: dataflywheel.blueprint.flywheel_logs_info
"""

EXAMPLES = r"""
- name: Load the demo's log file three times, as the seeds do (300/500/1000 records)
  dataflywheel.blueprint.flywheel_logs:
    es_url: "{{ flywheel_es_url }}"
    path: /data/aiva_primary_assistant_dataset.jsonl
    workload_id: primary_assistant
    client_id: "{{ item.client }}"
    max_records: "{{ item.records }}"
  loop:
    - {client: aiva-1, records: 300}
    - {client: aiva-2, records: 500}
    - {client: aiva-3, records: 1000}

- name: Load records given inline, with basic auth and a private CA
  dataflywheel.blueprint.flywheel_logs:
    es_url: https://elasticsearch.example.com:9200
    es_username: elastic
    es_password: "{{ vault_elastic_password }}"
    ca_path: /etc/pki/flywheel-ca.pem
    records:
      - workload_id: primary_assistant
        client_id: dev
        timestamp: 1717000000
        request:
          model: meta/llama-3.1-70b-instruct
          messages: [{role: user, content: "Where is my order 4411?"}]
        response:
          choices: [{index: 0, message: {role: assistant, content: "It shipped yesterday."}, finish_reason: stop}]

- name: Remove a client's records
  dataflywheel.blueprint.flywheel_logs:
    es_url: "{{ flywheel_es_url }}"
    workload_id: primary_assistant
    client_id: aiva-1
    state: absent
"""

RETURN = r"""
index:
  description: The log index.
  returned: always
  type: str
  sample: flywheel
index_created:
  description: Whether this run created the index (with the flywheel's mapping).
  returned: always
  type: bool
records:
  description: Records read and validated (after O(max_records); in-input duplicates counted once).
  returned: when O(state=present)
  type: int
created:
  description: Records written by this run (in check mode, that would be written).
  returned: when O(state=present)
  type: int
existing:
  description: Records that were already in the index (same id), left as they are.
  returned: when O(state=present)
  type: int
deleted:
  description: Records deleted (in check mode, that would be deleted).
  returned: when O(state=absent)
  type: int
batches:
  description: Bulk API requests sent (records already in the index are found by id first and not sent).
  returned: when O(state=present)
  type: int
retried:
  description: Records the engine refused with 429 (busy) and that were sent again.
  returned: when O(state=present)
  type: int
errors:
  description: The validation problems, each with C(line) (file) or C(record) (list position), C(field) and C(message).
  returned: on validation failure
  type: list
  elements: dict
requests:
  description: HTTP requests this run made.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_log_loader import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_WORKERS,
    run_logs,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.search_client import client_from, connection_args


def main():
    spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        path=dict(type="path"),
        records=dict(type="list", elements="raw"),
        workload_id=dict(type="str"),
        client_id=dict(type="str"),
        max_records=dict(type="int"),
        batch_size=dict(type="int", default=DEFAULT_BATCH_SIZE),
        batch_bytes=dict(type="int", default=DEFAULT_BATCH_BYTES),
        parallel_batches=dict(type="int", default=DEFAULT_WORKERS),
        compress=dict(type="bool", default=False),
        refresh=dict(type="bool", default=True),
    )
    spec.update(connection_args())
    module = AnsibleModule(
        argument_spec=spec,
        mutually_exclusive=[("path", "records")],
        required_if=[("state", "present", ("path", "records"), True)],
        supports_check_mode=True,
    )
    run_logs(module, client_from(module))


if __name__ == "__main__":
    main()
