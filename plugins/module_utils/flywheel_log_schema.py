# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The flywheel's log record and index, as upstream defines them, and the check of one record.

The Data Flywheel reads production traffic from one Elasticsearch index (``flywheel`` unless
``ES_COLLECTION_NAME`` says otherwise) whose mapping is ``dynamic: strict`` with exactly five
top-level fields: ``workload_id`` and ``client_id`` (keyword), ``timestamp`` (date), ``request``
(an OpenAI chat-completion request) and ``response`` (its chat-completion answer). Upstream sets
``index.mapping.ignore_malformed``, so a bad timestamp is silently dropped by the index; a record
is checked here before anything is sent instead, naming the field.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import math
import re

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError

DEFAULT_INDEX = "flywheel"
TOP_LEVEL = ("workload_id", "client_id", "timestamp", "request", "response")

# The index exactly as the flywheel creates it when it finds none (src/lib/integration/es_client.py
# upstream), so the flywheel later finds "Index already exists" and reads it unchanged.
INDEX_BODY = {
    "settings": {
        "mapping": {"total_fields": {"limit": 1000}},
        "index": {"mapping": {"ignore_malformed": True}},
    },
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "workload_id": {"type": "keyword"},
            "client_id": {"type": "keyword"},
            "timestamp": {"type": "date"},
            "request": {"type": "object", "dynamic": False, "properties": {}},
            "response": {"type": "object", "dynamic": False, "properties": {}},
        },
    },
}
# what the flywheel's queries depend on in an index it did not create
REQUIRED_TYPES = {"workload_id": "keyword", "client_id": "keyword", "timestamp": "date"}

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$")
MAX_EPOCH_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


class LogsError(RestError):
    """A problem the user must fix (bad input, refused by the index, unreachable engine)."""

    def __init__(self, message, status=None, errors=None):
        super(LogsError, self).__init__(message, status=status)
        self.errors = errors or []


# ------------------------------------------------------------------ validation
KINDS = ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (list, "a list"), (dict, "an object"))


def _kind(value):
    if value is None:
        return "null"
    for types, name in KINDS:
        if isinstance(value, types):
            return name
    return type(value).__name__


def short(value, limit=60):
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_timestamp(value):
    """None when `value` is a timestamp the flywheel can use (epoch seconds like upstream's loader,
    or an ISO 8601 date string), else the reason."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return "must be epoch seconds or an ISO 8601 date string, not %s" % _kind(value)
    if isinstance(value, str):
        text = value.strip()
        if not ISO_DATE.match(text):
            return "%s is not an ISO 8601 date (for example 2025-06-01T12:00:00Z) or epoch seconds" % short(value)
        try:
            datetime.datetime.strptime(text[:10], "%Y-%m-%d")
        except ValueError:
            return "%s is not a valid calendar date" % short(value)
        return None
    # NaN, negative, year > 9999 (compared as numbers: an int too large for a float is no crash)
    if (isinstance(value, float) and math.isnan(value)) or value < 0 or value > MAX_EPOCH_SECONDS:
        return "%s is not epoch seconds between 0 and %d" % (short(value), MAX_EPOCH_SECONDS)
    return None


def _check_tool_calls(tool_calls, where, errors):
    if not isinstance(tool_calls, list):
        errors.append((where, "must be a list, not %s" % _kind(tool_calls)))
        return
    for i, call in enumerate(tool_calls):
        here = "%s[%d]" % (where, i)
        if not isinstance(call, dict):
            errors.append((here, "must be an object, not %s" % _kind(call)))
            continue
        if call.get("type", "function") != "function":
            errors.append((here + ".type", "must be 'function', not %s" % short(call.get("type"))))
        function = call.get("function")
        if not isinstance(function, dict):
            errors.append((here + ".function", "missing" if function is None else "must be an object"))
            continue
        if not isinstance(function.get("name"), str) or not function.get("name"):
            errors.append((here + ".function.name", "must be a non-empty string"))
        arguments = function.get("arguments")
        # OpenAI sends a JSON string; AIVA logs store an object (upstream docs/05): both are accepted
        if isinstance(arguments, str):
            try:
                json.loads(arguments)
            except ValueError:
                errors.append((here + ".function.arguments", "is a string but not JSON: %s" % short(arguments)))
        elif arguments is not None and not isinstance(arguments, dict):
            errors.append((here + ".function.arguments", "must be a JSON string or an object"))


def _check_content(message, where, errors, nullable):
    if "content" not in message:
        if not nullable:
            errors.append((where + ".content", "missing"))
        return
    content = message["content"]
    if content is None and nullable:
        return
    if isinstance(content, str):
        return
    if isinstance(content, list) and all(isinstance(part, dict) and "type" in part for part in content):
        return
    errors.append((where + ".content", "must be a string or a list of content parts, not %s" % _kind(content)))


def _check_request(request, errors):
    if not isinstance(request, dict):
        errors.append(("request", "must be an object (an OpenAI chat-completion request), not %s" % _kind(request)))
        return
    if not isinstance(request.get("model"), str) or not request.get("model"):
        errors.append(("request.model", "missing" if "model" not in request else "must be a non-empty string"))
    _check_messages(request.get("messages"), errors)
    _check_tools(request.get("tools"), errors)


def _check_messages(messages, errors):
    if not isinstance(messages, list) or not messages:
        errors.append(
            ("request.messages", "missing" if messages is None else "must be a non-empty list of chat messages")
        )
    else:
        for i, message in enumerate(messages):
            where = "request.messages[%d]" % i
            if not isinstance(message, dict):
                errors.append((where, "must be an object, not %s" % _kind(message)))
                continue
            role = message.get("role")
            if role not in ROLES:
                errors.append((where + ".role", "must be one of %s, not %s" % ("/".join(ROLES), short(role))))
            has_calls = bool(message.get("tool_calls"))
            _check_content(message, where, errors, nullable=role == "assistant" and has_calls)
            if "tool_calls" in message and message["tool_calls"] is not None:
                _check_tool_calls(message["tool_calls"], where + ".tool_calls", errors)


def _check_tools(tools, errors):
    if tools is not None:
        if not isinstance(tools, list):
            errors.append(("request.tools", "must be a list, not %s" % _kind(tools)))
        else:
            for i, tool in enumerate(tools):
                where = "request.tools[%d]" % i
                if not isinstance(tool, dict) or not isinstance(tool.get("function"), dict):
                    errors.append((where, "must be {type: function, function: {name, parameters}}"))
                elif not isinstance(tool["function"].get("name"), str) or not tool["function"]["name"]:
                    errors.append((where + ".function.name", "must be a non-empty string"))


def _check_response(response, errors):
    if not isinstance(response, dict):
        errors.append(("response", "must be an object (an OpenAI chat-completion response), not %s" % _kind(response)))
        return
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        errors.append(("response.choices", "missing" if choices is None else "must be a non-empty list"))
        return
    for i, choice in enumerate(choices):
        where = "response.choices[%d]" % i
        if not isinstance(choice, dict):
            errors.append((where, "must be an object, not %s" % _kind(choice)))
            continue
        message = choice.get("message")
        if not isinstance(message, dict):
            errors.append((where + ".message", "missing" if message is None else "must be an object"))
            continue
        if message.get("role", "assistant") != "assistant":
            errors.append((where + ".message.role", "must be 'assistant', not %s" % short(message.get("role"))))
        _check_content(message, where + ".message", errors, nullable=True)
        if message.get("tool_calls") is not None:
            _check_tool_calls(message["tool_calls"], where + ".message.tool_calls", errors)


def _check_ids(record, workload_id, client_id, errors):
    for field, override in (("workload_id", workload_id), ("client_id", client_id)):
        if override:
            continue
        value = record.get(field)
        if field not in record:
            errors.append((field, "missing (or set the %s override)" % field))
        elif not isinstance(value, str) or not value.strip():
            errors.append((field, "must be a non-empty string, not %s" % short(value)))


def validate_record(record, workload_id=None, client_id=None):
    """The problems of one log record as [(field, message)]; empty when the flywheel's strict index
    and its OpenAI-format validation will take it. Overrides stand in for missing ids."""
    if not isinstance(record, dict):
        return [("(record)", "must be a JSON object, not %s" % _kind(record))]
    errors = []
    for field in sorted(set(record) - set(TOP_LEVEL)):
        errors.append(
            (
                field,
                "unknown top-level field: the flywheel index is strict and takes only %s" % ", ".join(TOP_LEVEL),
            )
        )
    _check_ids(record, workload_id, client_id, errors)
    if "timestamp" not in record:
        errors.append(("timestamp", "missing"))
    else:
        reason = check_timestamp(record["timestamp"])
        if reason:
            errors.append(("timestamp", reason))
    if "request" not in record:
        errors.append(("request", "missing"))
    else:
        _check_request(record["request"], errors)
    if "response" not in record:
        errors.append(("response", "missing"))
    else:
        _check_response(record["response"], errors)
    return errors


def selection_query(workload_id=None, client_id=None):
    """The query the flywheel's exporter uses for a workload/client (exact keyword matches)."""
    pairs = (("workload_id", workload_id), ("client_id", client_id))
    terms = [{"term": {field: value}} for field, value in pairs if value]
    return {"bool": {"filter": terms}} if terms else {"match_all": {}}


def mapping_problems(mapping):
    """How an existing index's mapping differs from what the flywheel's queries need (never fixed
    here: an existing index is not changed)."""
    problems = []
    properties = mapping.get("properties") or {}
    for field, kind in sorted(REQUIRED_TYPES.items()):
        have = (properties.get(field) or {}).get("type")
        if have != kind:
            problems.append("%s is %s, the flywheel needs %s" % (field, have or "not mapped", kind))
    for field in ("request", "response"):
        prop = properties.get(field)
        if prop is not None and prop.get("type", "object") != "object":
            problems.append("%s is %s, the flywheel needs an object" % (field, prop.get("type")))
    return problems
