# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A small Elasticsearch/OpenSearch client on the collection's REST client: the calls the log
modules need, their errors in one line, and the modules' connection options."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_log_schema import (
    DEFAULT_INDEX,
    INDEX_BODY,
    LogsError,
    short,
    selection_query,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import argument_spec, rest_client
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import (
    RETRYABLE_STATUS,
    RestClient,
    parse_body,
)

AUTH_HINTS = {
    401: " (credentials missing or refused: set es_username/es_password or es_api_key)",
    403: " (the credentials lack a privilege on the index: creating it, writing, or reading)",
}


# What the loader reads of a Bulk API answer: per item (in request order) its status and error.
BULK_FILTER = {"filter_path": "errors,items.*.status,items.*.error"}


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

    def request(self, method, path, body=None, ndjson=None, query=None, ok=(200, 201), headers=None):
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
                headers=headers,
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

    def bulk(self, payload, gzip=False):
        """One Bulk API request of prepared NDJSON (optionally gzip-compressed); returns its items.
        A 429 or 5xx for the whole request is retried with backoff (bulk `create` with content ids is
        safe to repeat). The answer is cut to each item's status and error (filter_path): the engine
        serialises, and this client parses, a tenth of the full answer."""
        headers = {"Content-Encoding": "gzip"} if gzip else None
        data = self.request("POST", "/_bulk", ndjson=payload, query=BULK_FILTER, headers=headers)[1] or {}
        return data.get("items") or []

    def delete_by_query(self, index, query):
        data = self.request(
            "POST",
            "/%s/_delete_by_query" % quote(index, safe=""),
            body={"query": query},
            query={"refresh": "true", "conflicts": "proceed"},
        )[1]
        data = data or {}
        if data.get("failures"):
            raise LogsError("delete-by-query on %s reported failures: %s" % (index, short(data["failures"], 300)))
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
