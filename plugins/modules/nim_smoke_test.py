#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nim_smoke_test
short_description: Wait until a NIM serves a model, then send it one chat completion
version_added: 0.1.0
description:
  - Polls the NIM's (or NIM proxy's) C(GET /v1/models) until O(model) is listed - a LoRA adapter loaded
    through C(NIM_PEFT_SOURCE) appears there only after the NIM's next refresh - then sends one
    C(POST /v1/chat/completions) and returns the answer.
  - Read-only - never reports a change.
author: dataflywheel.blueprint maintainers (@dataflywheel)
attributes:
  check_mode:
    support: full
    description: Runs in check mode too (nothing is changed).
  diff_mode:
    support: none
    description: Nothing is changed.
extends_documentation_fragment:
  - dataflywheel.blueprint.rest_api.nim
  - kubernetes.core.k8s_auth_options
options:
  model:
    description: Model id to wait for and to ask, for example C(dfwbp/customized-meta-llama-3.2-1b-instruct@cust-...).
    type: str
    required: true
  prompt:
    description: The user message of the smoke test. Set to an empty string to only wait for the model.
    type: str
    default: Reply with one short sentence to confirm you are serving requests.
  max_tokens:
    description: Longest answer.
    type: int
    default: 64
  wait_timeout:
    description: Seconds to wait for the model to be listed.
    type: int
    default: 900
  wait_sleep:
    description: Longest pause between two polls.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: The promoted adapter answers
  dataflywheel.blueprint.nim_smoke_test:
    nim_url: http://nim.test
    model: dfwbp/customized-meta-llama-3.2-1b-instruct@cust-9NAvCSuV18nJi3M9u3AdB1
  register: smoke
"""

RETURN = r"""
models:
  description: Model ids the NIM listed.
  returned: success
  type: list
  elements: str
answer:
  description: The assistant's reply (empty when O(prompt) is empty).
  returned: success
  type: str
model:
  description: The model id the completion came from.
  returned: success
  type: str
seconds:
  description: Seconds the chat completion took.
  returned: when a prompt was sent
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.nemo_deploy import DeploymentError, NimClient
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import argument_spec, rest_client


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            "nim",
            model=dict(type="str", required=True),
            prompt=dict(type="str", default="Reply with one short sentence to confirm you are serving requests."),
            max_tokens=dict(type="int", default=64, no_log=False),
            wait_timeout=dict(type="int", default=900),
            wait_sleep=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    p = module.params
    nim = NimClient(rest_client(module, "nim"))
    try:
        models = nim.wait_served([p["model"]], p["wait_timeout"], p["wait_sleep"])
        result = dict(changed=False, models=models, answer="", model=p["model"])
        if p["prompt"]:
            reply = nim.chat(p["model"], p["prompt"], p["max_tokens"])
            result.update(answer=reply["content"], model=reply["model"], seconds=round(reply["seconds"], 3))
    except DeploymentError as err:
        module.fail_json(msg="nim_smoke_test: %s" % err, models=err.last.get("models", []))
    except RestError as err:
        module.fail_json(msg="nim_smoke_test: the chat completion for %s failed: %s" % (p["model"], err))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
