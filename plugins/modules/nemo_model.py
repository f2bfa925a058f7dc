#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nemo_model
short_description: Register a base model in the NeMo Entity Store idempotently
version_added: "0.1.0"
description:
  - Ensures the Entity Store namespace exists, then GETs the model and POSTs it when missing or PATCHes
    only the fields that differ. Used for NIMs deployed by the NIM operator, which the operator never
    registers, so the evaluator's lookup of C(/v1/models/<namespace>/<name>) returns 404.
  - The C(api_endpoint) is built from the NIMService's in-cluster Service
    (C(http://<nim_service>.<nim_namespace>.svc.<cluster_domain>:<port>/v1)) unless O(api_endpoint_url) is given.
author:
  - dataflywheel.blueprint maintainers (@dataflywheel)
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.entity_store
  - kubernetes.core.k8s_auth_options
options:
  namespace:
    description: Entity Store namespace of the model (e.g. C(meta)).
    type: str
    required: true
  name:
    description: Model name inside the namespace (e.g. C(llama-3.2-1b-instruct)).
    type: str
    required: true
  model_id:
    description: The id the NIM serves (defaults to C(<namespace>/<name>)).
    type: str
  base_model:
    description: Base model reference (defaults to O(model_id)).
    type: str
  nim_service:
    description: Name of the NIMService (its Service has the same name). Required unless O(api_endpoint_url) is set.
    type: str
  nim_namespace:
    description: Kubernetes namespace of the NIMService.
    type: str
  nim_port:
    description: Port of the NIMService's Service.
    type: int
    default: 8000
  cluster_domain:
    description: Cluster DNS domain.
    type: str
    default: cluster.local
  api_endpoint_url:
    description: Explicit endpoint URL; overrides the one built from O(nim_service).
    type: str
  endpoint_format:
    description: C(api_endpoint.format).
    type: str
    choices: [nim, openai]
    default: nim
  spec:
    description: Model spec; when given it needs C(num_parameters), C(context_size), C(num_virtual_tokens), C(is_chat).
    type: dict
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Register the operator-deployed base NIM
  dataflywheel.blueprint.nemo_model:
    entity_store_url: http://nemoentitystore-sample.nemo.svc.cluster.local:8000
    namespace: meta
    name: llama-3.2-1b-instruct
    nim_service: llama-3-2-1b-instruct
    nim_namespace: nim
    spec:
      num_parameters: 1000000000
      context_size: 8192
      num_virtual_tokens: 0
      is_chat: true
"""

RETURN = r"""
model:
  description: The model as the Entity Store holds it (server-managed fields removed).
  returned: success
  type: dict
  sample:
    namespace: meta
    name: llama-3.2-1b-instruct
    api_endpoint:
      url: http://llama.nim.svc.cluster.local:8000/v1
      model_id: meta/llama-3.2-1b-instruct
      format: nim
namespace_created:
  description: Whether the Entity Store namespace was (or would be) created.
  returned: success
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_client import (
    ensure_model,
    ensure_namespace,
    nim_api_endpoint,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import argument_spec, rest_client

SPEC_KEYS = ("num_parameters", "context_size", "num_virtual_tokens", "is_chat")


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            "entity_store",
            namespace=dict(type="str", required=True),
            name=dict(type="str", required=True),
            model_id=dict(type="str"),
            base_model=dict(type="str"),
            nim_service=dict(type="str"),
            nim_namespace=dict(type="str"),
            nim_port=dict(type="int", default=8000),
            cluster_domain=dict(type="str", default="cluster.local"),
            api_endpoint_url=dict(type="str"),
            endpoint_format=dict(type="str", default="nim", choices=["nim", "openai"]),
            spec=dict(type="dict"),
        ),
        required_one_of=[("nim_service", "api_endpoint_url")],
        required_together=[("nim_service", "nim_namespace")],
        supports_check_mode=True,
    )
    p = module.params
    client = rest_client(module, "entity_store")
    if p["spec"] is not None:
        missing = [k for k in SPEC_KEYS if k not in p["spec"]]
        if missing:
            module.fail_json(
                msg="spec is missing %s; the Entity Store requires all of %s when spec is given"
                % (", ".join(missing), ", ".join(SPEC_KEYS))
            )
    model_id = p["model_id"] or "%s/%s" % (p["namespace"], p["name"])
    url = p["api_endpoint_url"] or nim_api_endpoint(
        p["nim_service"], p["nim_namespace"], p["nim_port"], p["cluster_domain"]
    )
    fields = {
        "base_model": p["base_model"] or model_id,
        "api_endpoint": {"url": url, "model_id": model_id, "format": p["endpoint_format"]},
    }
    if p["spec"] is not None:
        fields["spec"] = p["spec"]
    try:
        ns_created = ensure_namespace(client, p["namespace"], module.check_mode)
        if ns_created and module.check_mode:
            changed, before, after = True, {}, dict(fields, namespace=p["namespace"], name=p["name"])
        else:
            changed, before, after = ensure_model(client, p["namespace"], p["name"], fields, module.check_mode)
    except RestError as err:
        module.fail_json(msg="nemo_model: Entity Store request failed: %s" % err, status=err.status)
    module.exit_json(
        changed=changed or ns_created,
        model=after,
        namespace_created=ns_created,
        diff={"before": before, "after": after},
    )


if __name__ == "__main__":
    main()
