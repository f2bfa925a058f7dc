# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Idempotent NeMo Entity Store registration (namespaces, models) on top of rest.RestClient."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError

SERVER_FIELDS = ("created_at", "updated_at", "schema_version", "id")


def nim_api_endpoint(service, namespace, port=8000, cluster_domain="cluster.local", path="/v1"):
    """The in-cluster URL of a NIMService (the operator's Service has the CR's name and port 8000)."""
    return "http://%s.%s.svc.%s:%s%s" % (service, namespace, cluster_domain, port, path)


def _subset_differs(wanted, current):
    """Fields of ``wanted`` whose values differ from ``current`` (nested dicts compared as subsets)."""
    out = {}
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, dict) and isinstance(have, dict):
            if _subset_differs(value, have):
                out[key] = value
        elif have != value:
            out[key] = value
    return out


def ensure_namespace(client, namespace, check_mode=False):
    """Return True when the namespace was (or would be) created."""
    try:
        client.request("GET", "/v1/namespaces/%s" % namespace)
        return False
    except RestError as err:
        if err.status != 404:
            raise
    if check_mode:
        return True
    try:
        client.request("POST", "/v1/namespaces", body={"id": namespace}, retry=True)
    except RestError as err:
        if err.status != 409:  # 409: created by someone else (or a retried POST that landed)
            raise
    return True


def ensure_model(client, namespace, name, fields, check_mode=False):
    """GET the model, then POST it or PATCH the differing fields.

    Returns (changed, before, after) with server-managed fields removed for the diff.
    """
    path = "/v1/models/%s/%s" % (namespace, name)
    try:
        _status, current = client.request("GET", path)
    except RestError as err:
        if err.status != 404:
            raise
        current = None
    clean = dict((k, v) for k, v in (current or {}).items() if k not in SERVER_FIELDS)
    if current is None:
        body = dict(fields, namespace=namespace, name=name)
        if check_mode:
            return True, {}, body
        try:
            _status, created = client.request("POST", "/v1/models", body=body, retry=True)
        except RestError as err:
            if err.status != 409:
                raise
            _status, created = client.request("GET", path)
        return True, {}, dict((k, v) for k, v in created.items() if k not in SERVER_FIELDS)
    patch = _subset_differs(fields, clean)
    if not patch:
        return False, clean, clean
    after = dict(clean, **patch)
    if check_mode:
        return True, clean, after
    _status, updated = client.request("PATCH", path, body=patch)
    return True, clean, dict((k, v) for k, v in updated.items() if k not in SERVER_FIELDS)
