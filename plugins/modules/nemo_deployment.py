#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nemo_deployment
short_description: A NIM deployment through NeMo Deployment Management, idempotently, waiting until ready
version_added: 0.1.0
description:
  - Makes a model deployment (C(/v1/deployment/model-deployments/{namespace}/{name})) exist with the given
    config, or removes it.
  - Idempotent - an existing deployment whose config already contains every given field is left alone
    (C(changed=false)). Deployment Management has no update and answers a second POST with HTTP 500
    "model deployment already exists", so a deployment with a different config is deleted and created again.
  - With O(wait=true) waits until C(status_details.status) is C(ready) and stops early, with the
    service's description, when it turns C(failed).
  - To serve LoRA adapters from the Entity Store, deploy the base model with O(additional_envs)
    C(NIM_PEFT_SOURCE) set to the Entity Store URL.
author: dataflywheel.blueprint maintainers (@dataflywheel)
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.nemo
  - dataflywheel.blueprint.rest_api.wait
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Check mode never POSTs or DELETEs.
  diff_mode:
    support: full
    description: Shows the config before and after.
options:
  state:
    description: V(present) or V(absent).
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Deployment name.
    type: str
    required: true
  namespace:
    description: Deployment namespace (the flywheel's C(nmp_namespace), for example C(dfwbp)).
    type: str
    required: true
  model:
    description: Model the NIM serves, for example C(meta/llama-3.2-1b-instruct). Required with O(state=present).
    type: str
  image_name:
    description: NIM image; defaults to C(nvcr.io/nim/<model>).
    type: str
  image_tag:
    description: NIM image tag.
    type: str
    default: latest
  pvc_size:
    description: Size of the model cache PVC.
    type: str
    default: 25Gi
  gpu:
    description: GPUs for the NIM.
    type: int
    default: 1
  additional_envs:
    description: Extra environment of the NIM (for example C(NIM_PEFT_SOURCE), C(NIM_PEFT_REFRESH_INTERVAL)).
    type: dict
    default: {}
  wait:
    description: Wait until the deployment is C(ready) (or gone, with O(state=absent)).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Serve the base model with LoRA adapters from the Entity Store
  dataflywheel.blueprint.nemo_deployment:
    nemo_url: http://nemo.test
    name: flywheel-promoted-llama-3-2-1b-instruct
    namespace: dfwbp
    model: meta/llama-3.2-1b-instruct
    image_tag: "1.8.3"
    additional_envs:
      NIM_PEFT_SOURCE: http://nemo-entity-store.nemo.svc:8000
      NIM_PEFT_REFRESH_INTERVAL: "30"
"""

RETURN = r"""
deployment:
  description: The deployment as Deployment Management last returned it; empty when absent or in check mode.
  returned: success
  type: dict
operation:
  description: C(none), C(created), C(recreated) or C(deleted).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_deploy import (
    DeploymentClient,
    DeploymentError,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_module import nemo_client
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import WAIT_ARG_SPEC, argument_spec


def wanted_config(p):
    envs = dict((str(k), str(v)) for k, v in (p["additional_envs"] or {}).items())
    return {
        "model": p["model"],
        "nim_deployment": {
            "image_name": p["image_name"] or "nvcr.io/nim/%s" % p["model"],
            "image_tag": p["image_tag"],
            "pvc_size": p["pvc_size"],
            "gpu": p["gpu"],
            "additional_envs": envs,
        },
    }


def main():
    spec = argument_spec(
        "nemo",
        state=dict(type="str", choices=["present", "absent"], default="present"),
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        model=dict(type="str"),
        image_name=dict(type="str"),
        image_tag=dict(type="str", default="latest"),
        pvc_size=dict(type="str", default="25Gi"),
        gpu=dict(type="int", default=1),
        additional_envs=dict(type="dict", default={}),
        **{**WAIT_ARG_SPEC, "wait": dict(type="bool", default=True)},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, required_if=[("state", "present", ("model",))])
    p = module.params
    if p["gpu"] < 1:
        module.fail_json(msg="gpu=%s must be at least 1" % p["gpu"])
    client = nemo_client(module, None, DeploymentClient)
    ns, name = p["namespace"], p["name"]
    try:
        if p["state"] == "absent":
            current = client.get(ns, name)
            if current is None or module.check_mode:
                module.exit_json(changed=current is not None, operation="deleted" if current else "none", deployment={})
            client.delete(ns, name)
            if p["wait"]:
                client.wait_gone(ns, name, p["wait_timeout"], min(5.0, p["wait_sleep"]))
            module.exit_json(changed=True, operation="deleted", deployment={})
        config = wanted_config(p)
        before = client.get(ns, name)
        changed, action, dep = client.ensure(ns, name, config, module.check_mode, p["wait_timeout"])
        if p["wait"] and not module.check_mode:
            dep = client.wait_ready(ns, name, p["wait_timeout"], p["wait_sleep"])
    except DeploymentError as err:
        module.fail_json(msg="nemo_deployment: %s" % err, deployment=err.last)
    except RestError as err:
        module.fail_json(msg="nemo_deployment: %s" % err)
    module.exit_json(
        changed=changed,
        operation=action,
        deployment=dep if not module.check_mode else (before or {}),
        diff={"before": (before or {}).get("config", {}), "after": config},
    )


if __name__ == "__main__":
    main()
