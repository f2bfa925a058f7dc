# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The flywheel's log index: record validation, deterministic ids, and an Elasticsearch client.

The Data Flywheel reads production traffic from one Elasticsearch index (``flywheel`` unless
``ES_COLLECTION_NAME`` says otherwise) whose mapping is ``dynamic: strict`` with exactly five
top-level fields: ``workload_id`` and ``client_id`` (keyword), ``timestamp`` (date), ``request``
(an OpenAI chat-completion request) and ``response`` (its chat-completion answer). Upstream sets
``index.mapping.ignore_malformed``, so a bad timestamp is silently dropped by the index; this
module checks every record before anything is sent instead, and names the line and the field.

Everything here is plain Python on top of ansible.module_utils.urls and is unit-tested without
Ansible: ``validate_record``, ``read_jsonl``, ``prepare``, ``doc_id`` and ``SearchClient``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import hashlib
import json
import math
import re

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import argument_spec, rest_client
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import (
    RETRYABLE_STATUS,
    RestClient,
    RestError,
    parse_body,
)

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
MAX_REPORTED_ERRORS = 1000
AUTH_HINTS = {
    401: " (credentials missing or refused: set es_username/es_password or es_api_key)",
    403: " (the credentials lack a privilege on the index: creating it, writing, or reading)",
}


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


def _short(value, limit=60):
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
            return "%s is not an ISO 8601 date (for example 2025-06-01T12:00:00Z) or epoch seconds" % _short(value)
        try:
            datetime.datetime.strptime(text[:10], "%Y-%m-%d")
        except ValueError:
            return "%s is not a valid calendar date" % _short(value)
        return None
    if math.isnan(value) or value < 0 or value > MAX_EPOCH_SECONDS:  # NaN, negative, year > 9999
        return "%s is not epoch seconds between 0 and %d" % (_short(value), MAX_EPOCH_SECONDS)
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
            errors.append((here + ".type", "must be 'function', not %s" % _short(call.get("type"))))
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
                errors.append((here + ".function.arguments", "is a string but not JSON: %s" % _short(arguments)))
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
                errors.append((where + ".role", "must be one of %s, not %s" % ("/".join(ROLES), _short(role))))
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
            errors.append((where + ".message.role", "must be 'assistant', not %s" % _short(message.get("role"))))
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
            errors.append((field, "must be a non-empty string, not %s" % _short(value)))


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


def read_jsonl(path):
    """Yield (line number, parsed value or LogsError) for each non-blank line of a JSONL file."""
    try:
        handle = open(path, "rb")
    except (IOError, OSError) as err:
        raise LogsError("cannot read path=%s: %s" % (path, err)) from None
    with handle:
        for number, raw in enumerate(handle, 1):
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                yield number, json.loads(text)
            except ValueError as err:
                yield number, LogsError("not valid JSON (%s)" % err)


def canonical(doc):
    """The record as canonical JSON (sorted keys, no spaces): what is hashed and what is sent."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def doc_id(doc, text=None):
    """A document id from the record's content: the same record always gets the same id, so
    loading a file again creates nothing. SHA-256 of the canonical JSON."""
    return hashlib.sha256((text or canonical(doc)).encode("utf-8")).hexdigest()


def prepare(entries, workload_id=None, client_id=None, max_records=None, label="line"):
    """Validate (number, record) pairs and apply the overrides. Returns (docs, errors) where docs
    is [(number, id, canonical JSON)] in input order without in-input duplicates, and errors is
    [{label: number, field, message}]. Nothing is sent when errors is not empty."""
    docs, errors, seen = [], [], set()
    taken = 0
    for number, record in entries:
        if max_records is not None and taken >= max_records:
            break
        taken += 1
        if isinstance(record, LogsError):
            errors.append({label: number, "field": "(record)", "message": str(record)})
            continue
        problems = validate_record(record, workload_id, client_id)
        if problems:
            errors.extend({label: number, "field": field, "message": message} for field, message in problems)
            continue
        doc = dict(record)
        if workload_id:
            doc["workload_id"] = workload_id
        if client_id:
            doc["client_id"] = client_id
        text = canonical(doc)
        ident = doc_id(doc, text)
        if ident in seen:
            continue
        seen.add(ident)
        docs.append((number, ident, text))
    return docs, errors


def format_errors(errors, source, limit=10):
    """One message for a list of validation errors: how many, where, the first few."""
    label = "record" if errors and "record" in errors[0] else "line"
    numbers = sorted(set(e[label] for e in errors))
    shown = "; ".join("%s %s: %s: %s" % (label, e[label], e["field"], e["message"]) for e in errors[:limit])
    more = " (and %d more)" % (len(errors) - limit) if len(errors) > limit else ""
    return "%d invalid record(s) in %s (%s %s); nothing was sent to the index. %s%s" % (
        len(numbers),
        source,
        label + "s" if len(numbers) > 1 else label,
        ", ".join(str(n) for n in numbers[:20]) + (", ..." if len(numbers) > 20 else ""),
        shown,
        more,
    )


def selection_query(workload_id=None, client_id=None):
    """The query the flywheel's exporter uses for a workload/client (exact keyword matches)."""
    pairs = (("workload_id", workload_id), ("client_id", client_id))
    terms = [{"term": {field: value}} for field, value in pairs if value]
    return {"bool": {"filter": terms}} if terms else {"match_all": {}}


# ------------------------------------------------------------------ HTTP client
class SearchClient(RestClient):
    """The few Elasticsearch REST calls the collection needs, on the collection's REST client.
    Works with Elasticsearch 7/8 and OpenSearch: basic auth or an API key, TLS verification with
    an optional CA bundle, retries with backoff on connection errors, 429 and 5xx (every call here
    is safe to repeat: bulk uses `create` with content ids)."""

    retry_status = (429,) + RETRYABLE_STATUS
    tls_hint = "Set es_ca_path (or DFW_ES_CA_PATH) to the CA that signed the Elasticsearch certificate."

    def __init__(self, base_url, username=None, password=None, api_key=None, timeout=60, **kwargs):
        super(SearchClient, self).__init__(base_url, timeout=timeout, **kwargs)
        self.username = username
        self.password = password
        self.api_key = api_key

    def _authorization(self):
        """An API key, else basic auth, else a bearer token (es_token)."""
        if self.api_key:
            return "ApiKey %s" % self.api_key
        if self.username:
            token = base64.b64encode(("%s:%s" % (self.username, self.password or "")).encode("utf-8"))
            return "Basic %s" % token.decode("ascii")
        return super(SearchClient, self)._authorization()

    def _http_error(self, method, url, status, raw, reason):
        detail = describe_error(parse_body(raw), raw, status)
        return LogsError(
            "%s %s returned HTTP %s: %s%s" % (method, url, status, detail, AUTH_HINTS.get(status, "")),
            status=status,
        )

    def _transport_error(self, method, url, reason, tls):
        if tls:
            return LogsError("TLS verification of %s failed: %s. %s" % (url, reason, self.tls_hint))
        return LogsError("%s %s failed: %s" % (method, url, reason))

    def request(self, method, path, body=None, ndjson=None, query=None, ok=(200, 201)):
        """A request with retries; returns (status, data). Statuses outside `ok` raise LogsError."""
        try:
            return super(SearchClient, self).request(
                method,
                path,
                body=body,
                query=query,
                retry=True,
                raw_body=ndjson,
                content_type="application/x-ndjson" if ndjson is not None else None,
            )
        except LogsError as err:
            if err.status in ok:
                return err.status, None
            raise

    # -------------------------------------------------------------- calls
    def info(self):
        return self.request("GET", "/")[1] or {}

    def index_exists(self, index):
        status, _data = self.request("HEAD", "/" + quote(index, safe=""), ok=(200, 404))
        return status == 200

    def create_index(self, index, body=None):
        """Create the index with the flywheel's mapping. Returns False when it already existed
        (also when another loader created it a moment ago)."""
        try:
            self.request("PUT", "/" + quote(index, safe=""), body=body or INDEX_BODY)
        except LogsError as err:
            if err.status == 400 and "already_exists" in str(err):
                return False
            raise
        return True

    def mapping(self, index):
        data = self.request("GET", "/%s/_mapping" % quote(index, safe=""))[1] or {}
        for value in data.values():  # keyed by the concrete index name (an alias resolves)
            return (value or {}).get("mappings") or {}
        return {}

    def refresh(self, index):
        self.request("POST", "/%s/_refresh" % quote(index, safe=""))

    def count(self, index, query=None):
        data = self.request("POST", "/%s/_count" % quote(index, safe=""), body={"query": query or {"match_all": {}}})[1]
        return int((data or {}).get("count", 0))

    def existing_ids(self, index, ids):
        """Which of these document ids the index already has (one _mget)."""
        if not ids:
            return set()
        data = self.request(
            "POST", "/%s/_mget" % quote(index, safe=""), body={"ids": list(ids)}, query={"_source": "false"}
        )[1]
        return set(d["_id"] for d in (data or {}).get("docs", []) if d.get("found"))

    def bulk_create(self, index, docs, batch_size=500, on_batch=None):
        """Send [(number, id, canonical JSON or dict)] with the Bulk API as `create` actions, `batch_size` per
        request. An id already present answers 409 and counts as existing (nothing changes).
        Returns {created, existing, batches, failed: [{number, id, status, error}]}."""
        stats = {"created": 0, "existing": 0, "batches": 0, "failed": []}
        for start in range(0, len(docs), batch_size):
            batch = docs[start : start + batch_size]
            lines = []
            for _number, ident, doc in batch:
                lines.append(json.dumps({"create": {"_index": index, "_id": ident}}))
                lines.append(doc if isinstance(doc, str) else canonical(doc))
            payload = ("\n".join(lines) + "\n").encode("utf-8")
            data = self.request("POST", "/_bulk", ndjson=payload)[1] or {}
            stats["batches"] += 1
            items = data.get("items") or []
            if len(items) != len(batch):
                raise LogsError("the Bulk API answered %d items for %d documents" % (len(items), len(batch)))
            for (number, ident, _doc), item in zip(batch, items):
                result = item.get("create") or item.get("index") or {}
                status = result.get("status", 0)
                if status in (200, 201):
                    stats["created"] += 1
                elif status == 409:
                    stats["existing"] += 1
                else:
                    stats["failed"].append(
                        {"number": number, "id": ident, "status": status, "error": describe_error(result, b"", status)}
                    )
            if on_batch:
                on_batch(stats)
        return stats

    def delete_by_query(self, index, query):
        data = self.request(
            "POST",
            "/%s/_delete_by_query" % quote(index, safe=""),
            body={"query": query},
            query={"refresh": "true", "conflicts": "proceed"},
        )[1]
        data = data or {}
        if data.get("failures"):
            raise LogsError("delete-by-query on %s reported failures: %s" % (index, _short(data["failures"], 300)))
        return int(data.get("deleted", 0))

    def counts(self, index, workload_id=None, client_id=None, size=1000):
        """Records per (workload_id, client_id) as [{workload_id, client_id, records}], sorted."""
        body = {
            "size": 0,
            "track_total_hits": True,
            "query": selection_query(workload_id, client_id),
            "aggs": {
                "workloads": {
                    "terms": {"field": "workload_id", "size": size},
                    "aggs": {"clients": {"terms": {"field": "client_id", "size": size}}},
                }
            },
        }
        data = self.request("POST", "/%s/_search" % quote(index, safe=""), body=body)[1] or {}
        rows = []
        for bucket in data.get("aggregations", {}).get("workloads", {}).get("buckets", []):
            for sub in bucket.get("clients", {}).get("buckets", []):
                rows.append({"workload_id": bucket["key"], "client_id": sub["key"], "records": sub["doc_count"]})
        total = data.get("hits", {}).get("total", 0)
        total = total.get("value", 0) if isinstance(total, dict) else int(total or 0)
        rows.sort(key=lambda r: (r["workload_id"], r["client_id"]))
        return total, rows


def load_docs(client, index, docs, batch_size=500, index_is_new=False, check_mode=False, refresh=True):
    """Load prepared docs [(number, id, canonical JSON)] into `index`. Ids an existing index
    already has are looked up first (ids only, one _mget per batch) and not sent again, so a
    rerun costs a few small requests; the rest goes through the Bulk API as `create` (a record
    that appeared meanwhile answers 409 and counts as existing). In check mode nothing is
    written and `created` is what would be. Returns {created, existing, batches, failed}."""
    known = set()
    if not index_is_new:
        for start in range(0, len(docs), batch_size):
            known |= client.existing_ids(index, [ident for _n, ident, _t in docs[start : start + batch_size]])
    todo = [d for d in docs if d[1] not in known]
    if check_mode:
        return {"created": len(todo), "existing": len(known), "batches": 0, "failed": []}
    stats = client.bulk_create(index, todo, batch_size=batch_size)
    stats["existing"] += len(known)
    if stats["created"] and refresh:
        client.refresh(index)
    return stats


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


def describe_error(parsed, raw=b"", status=None):
    """Elasticsearch's error body ({error: {type, reason, caused_by}}) as one short line."""
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            text = "%s: %s" % (error.get("type"), error.get("reason"))
            cause = error.get("caused_by")
            if isinstance(cause, dict) and cause.get("reason"):
                text += " (caused by %s: %s)" % (cause.get("type"), cause.get("reason"))
            return text
        if isinstance(error, str):
            return error
        if "detail" in parsed:
            return str(parsed["detail"])[:300]
    if raw:
        return raw.decode("utf-8", "replace")[:300]
    return "HTTP %s" % status


# ------------------------------------------------------------------ module glue
def connection_args(**extra):
    """The argument_spec of the modules that talk to the log index (doc fragments rest_api.es and
    flywheel_es), with the module's own `extra` options."""
    return argument_spec(
        "es",
        es_username=dict(type="str", fallback=(env_fallback, ["DFW_ES_USERNAME", "FLYWHEEL_ES_USERNAME"])),
        es_password=dict(type="str", no_log=True, fallback=(env_fallback, ["DFW_ES_PASSWORD", "FLYWHEEL_ES_PASSWORD"])),
        es_api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["DFW_ES_API_KEY", "FLYWHEEL_ES_API_KEY"])),
        index=dict(type="str", default=DEFAULT_INDEX, fallback=(env_fallback, ["ES_COLLECTION_NAME"])),
        **extra,
    )


INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


def client_from(module):
    p = module.params
    if not INDEX_NAME.match(p["index"] or "") or len(p["index"]) > 255:
        module.fail_json(
            msg="index=%r is not a valid index name (lowercase letters, digits, _ . + -; not starting "
            "with _ - +); the flywheel's default is flywheel" % p["index"]
        )
    if p["es_password"] and not p["es_username"]:
        module.fail_json(msg="es_password is set but es_username is not; set both (or es_api_key)")
    return rest_client(
        module,
        "es",
        client_class=SearchClient,
        username=p["es_username"],
        password=p["es_password"],
        api_key=p["es_api_key"],
    )
