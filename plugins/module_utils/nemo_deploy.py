# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""NeMo Deployment Management (`/v1/deployment/model-deployments`) and what a NIM serves.

One job: make a model deployment exist with a given config (idempotently; DMS answers a second
POST with 500 "model deployment already exists" instead of 409, and has no update, so a changed
config is deleted and created again), wait for `status_details.status == "ready"` (stopping at
`failed` instead of waiting out the timeout as the flywheel does), wait until a NIM lists a model
id in `/v1/models`, and send one chat completion.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError

DMS_PATH = "/v1/deployment/model-deployments"
READY = "ready"
DMS_FAILED = ("failed", "cancelled")


class DeploymentError(Exception):
    def __init__(self, message, last=None):
        super(DeploymentError, self).__init__(message)
        self.last = last or {}


def _subset_equal(wanted, current):
    if isinstance(wanted, dict):
        if not isinstance(current, dict):
            return False
        return all(_subset_equal(v, current.get(k)) for k, v in wanted.items())
    return wanted == current


class DeploymentClient:
    def __init__(self, rest, sleep=time.sleep, clock=time.monotonic):
        self.rest = rest
        self.sleep = sleep
        self.clock = clock

    def get(self, namespace, name):
        try:
            _status, data = self.rest.request("GET", "%s/%s/%s" % (DMS_PATH, namespace, name))
        except RestError as err:
            if err.status == 404:
                return None
            raise
        return data

    def create(self, namespace, name, config):
        body = {"name": name, "namespace": namespace, "config": config}
        try:
            _status, data = self.rest.request("POST", DMS_PATH, body=body, retry=False)
            return data
        except RestError as err:
            # DMS's answer to a duplicate (or to a retried POST that landed) is a 500
            if err.status == 500 and "already exists" in str(err.detail):
                return self.get(namespace, name)
            raise

    def delete(self, namespace, name):
        try:
            self.rest.request("DELETE", "%s/%s/%s" % (DMS_PATH, namespace, name))
        except RestError as err:
            if err.status != 404:
                raise

    def ensure(self, namespace, name, config, check_mode=False, timeout=600):
        """Returns (changed, action, deployment) with action in none|created|recreated."""
        current = self.get(namespace, name)
        if current is not None and _subset_equal(config, current.get("config") or {}):
            return False, "none", current
        if check_mode:
            return True, "recreated" if current else "created", current or {}
        action = "created"
        if current is not None:
            self.delete(namespace, name)
            self.wait_gone(namespace, name, timeout)
            action = "recreated"
        return True, action, self.create(namespace, name, config)

    def wait_gone(self, namespace, name, timeout, sleep_cap=5.0):
        deadline = self.clock() + timeout
        delay = 0.5
        while self.get(namespace, name) is not None:
            if self.clock() >= deadline:
                raise DeploymentError("deployment %s/%s still exists %ss after DELETE" % (namespace, name, timeout))
            self.sleep(delay)
            delay = min(delay * 2, sleep_cap)

    def wait_ready(self, namespace, name, timeout, sleep_cap=30.0, progress=None):
        deadline = self.clock() + timeout
        delay = min(2.0, sleep_cap)
        while True:
            dep = self.get(namespace, name)
            if dep is None:
                raise DeploymentError("deployment %s/%s disappeared while waiting for it" % (namespace, name))
            details = dep.get("status_details") or {}
            state = details.get("status")
            if progress:
                progress(dep)
            if state == READY:
                return dep
            if state in DMS_FAILED:
                raise DeploymentError(
                    "deployment %s/%s is %s: %s" % (namespace, name, state, details.get("description") or "no details"),
                    dep,
                )
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise DeploymentError(
                    "deployment %s/%s not ready after %ss: status %s (%s)"
                    % (namespace, name, timeout, state, details.get("description") or "no details"),
                    dep,
                )
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, sleep_cap)


class NimClient:
    """The OpenAI-compatible side of a NIM (or the NIM proxy)."""

    def __init__(self, rest, sleep=time.sleep, clock=time.monotonic):
        self.rest = rest
        self.sleep = sleep
        self.clock = clock

    def models(self):
        _status, data = self.rest.request("GET", "/v1/models")
        return [m.get("id") for m in (data or {}).get("data") or []]

    def wait_served(self, model_ids, timeout, sleep_cap=30.0):
        """Wait until every id is listed; returns the list. Connection errors count as 'not yet'."""
        deadline = self.clock() + timeout
        delay = min(2.0, sleep_cap)
        last, error = [], None
        while True:
            try:
                last, error = self.models(), None
            except RestError as err:
                error = str(err)
            missing = [m for m in model_ids if m not in last]
            if not missing:
                return last
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise DeploymentError(
                    "%s not served after %ss; the NIM lists %s%s"
                    % (
                        ", ".join(missing),
                        timeout,
                        ", ".join(last) or "nothing",
                        " (last error: %s)" % error if error else "",
                    ),
                    {"models": last},
                )
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, sleep_cap)

    def chat(self, model, prompt, max_tokens=64):
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
        started = self.clock()
        _status, data = self.rest.request("POST", "/v1/chat/completions", body=body, retry=True)
        elapsed = self.clock() - started
        choices = (data or {}).get("choices") or []
        content = ((choices[0] if choices else {}).get("message") or {}).get("content")
        if not content:
            raise DeploymentError("chat completion from %s had no content: %r" % (model, data), data)
        return {"model": data.get("model"), "content": content, "usage": data.get("usage"), "seconds": elapsed}
