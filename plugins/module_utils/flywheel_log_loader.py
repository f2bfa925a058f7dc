# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Loading checked log records into the flywheel's index fast, and what the log modules do.

The Bulk API path: documents go as `create` actions with content ids (flywheel_log_reader: the
index's id scheme; a record already there answers 409 and counts as existing), in batches cut by
count and by bytes, a few batches in flight at once (the engine indexes one while the next is
sent), optionally gzip-compressed (worth it over
a network, not on loopback). A document the engine refuses with 429 (its write queue is full) is
sent again after a pause that grows, and counts as failed only when it is still refused after the
retries. An index that exists is asked first which ids it has (one small `_mget` per batch), so a
rerun sends nothing again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import json
import random
import threading
import time

try:
    from concurrent.futures import ThreadPoolExecutor
except ImportError:  # pragma: no cover - Python 2 has no concurrent.futures
    ThreadPoolExecutor = None

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_log_reader import (
    MAX_REPORTED_ERRORS,
    SCHEME_SOURCE,
    format_errors,
    index_body,
    prepare,
    prepare_file,
    scheme_of,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_log_schema import (
    LogsError,
    mapping_problems,
    selection_query,
)
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import backoff_delays
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.search_client import describe_error

DEFAULT_BATCH_SIZE = 500
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024  # well under the engine's http.max_content_length (100 MB)
DEFAULT_WORKERS = 2


class BulkLoader:
    def __init__(
        self,
        client,
        index,
        batch_size=DEFAULT_BATCH_SIZE,
        batch_bytes=DEFAULT_BATCH_BYTES,
        workers=DEFAULT_WORKERS,
        compress=False,
        retries=5,
        sleep=time.sleep,
        rng=None,
    ):
        self.client = client
        self.index = index
        self.batch_size = max(1, int(batch_size))
        self.batch_bytes = max(1, int(batch_bytes))
        self.workers = max(1, int(workers)) if ThreadPoolExecutor else 1
        self.compress = compress
        self.retries = retries
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.lock = threading.Lock()
        self.action = ('{"create":{"_index":%s,"_id":"' % json.dumps(index)).encode("utf-8")

    def batches(self, docs):
        """[(number, id, text)] in runs of at most batch_size documents and batch_bytes bytes."""
        batch, size = [], 0
        for number, ident, text in docs:
            body = text.encode("utf-8") if not isinstance(text, bytes) else text
            cost = len(body) + len(self.action) + len(ident) + 5
            if batch and (len(batch) >= self.batch_size or size + cost > self.batch_bytes):
                yield batch
                batch, size = [], 0
            batch.append((number, ident, body))
            size += cost
        if batch:
            yield batch

    def payload(self, batch):
        lines = []
        for _number, ident, body in batch:
            lines.append(self.action + ident.encode("ascii") + b'"}}')
            lines.append(body)
        data = b"\n".join(lines) + b"\n"
        return gzip.compress(data, 1) if self.compress else data

    def send(self, batch):
        """One batch, with per-document 429s sent again after a growing pause. Returns its stats."""
        stats = {"created": 0, "existing": 0, "batches": 0, "retried": 0, "failed": []}
        delays = backoff_delays(self.retries, 0.5, 10.0, self.rng)
        while batch:
            items = self.client.bulk(self.payload(batch), gzip=self.compress)
            stats["batches"] += 1
            if len(items) != len(batch):
                raise LogsError("the Bulk API answered %d items for %d documents" % (len(items), len(batch)))
            again = []
            for doc, item in zip(batch, items):
                result = item.get("create") or item.get("index") or {}
                status = result.get("status", 0)
                if status in (200, 201):
                    stats["created"] += 1
                elif status == 409:
                    stats["existing"] += 1
                elif status == 429:
                    again.append((doc, result))
                else:
                    stats["failed"].append(self.failure(doc, result, status))
            delay = next(delays, None) if again else None
            if again and delay is None:
                stats["failed"] += [self.failure(doc, result, 429, self.retries) for doc, result in again]
                again = []
            if again:
                stats["retried"] += len(again)
                self.sleep(delay)
            batch = [doc for doc, _result in again]
        return stats

    @staticmethod
    def failure(doc, result, status, retries=None):
        error = describe_error(result, b"", status)
        if retries is not None:
            error += " (still refused after %d retries with backoff)" % retries
        return {"number": doc[0], "id": doc[1], "status": status, "error": error}

    def existing(self, docs):
        """Ids the index already has, asked per batch of ids."""
        known = set()
        for start in range(0, len(docs), self.batch_size):
            known |= self.client.existing_ids(
                self.index, [ident for _n, ident, _t in docs[start : start + self.batch_size]]
            )
        return known

    def load(self, docs, index_is_new=False, check_mode=False, refresh=True):
        """Load prepared docs [(number, id, source bytes)]. In check mode nothing is written and
        `created` is what would be. Returns {created, existing, batches, retried, failed}."""
        known = set() if index_is_new else self.existing(docs)
        todo = [d for d in docs if d[1] not in known]
        total = {"created": 0, "existing": len(known), "batches": 0, "retried": 0, "failed": []}
        if check_mode:
            total["created"] = len(todo)
            return total
        batches = self.batches(todo)
        if self.workers > 1:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                results = list(pool.map(self.send, batches))
        else:
            results = [self.send(batch) for batch in batches]
        for stats in results:
            for key in ("created", "existing", "batches", "retried"):
                total[key] += stats[key]
            total["failed"] += stats["failed"]
        if total["created"] and refresh:
            self.client.refresh(self.index)
        return total


def load_docs(
    client, index, docs, batch_size=DEFAULT_BATCH_SIZE, index_is_new=False, check_mode=False, refresh=True, **kw
):
    """BulkLoader(...).load(...) in one call."""
    return BulkLoader(client, index, batch_size=batch_size, **kw).load(docs, index_is_new, check_mode, refresh)


# ------------------------------------------------------------------ the flywheel_logs module
def inspect_index(module, client, index):
    """The existing index's mapping, None when there is no index; fails when the index cannot
    serve the flywheel (it is never changed here). Reads only."""
    if not client.index_exists(index):
        return None
    mapping = client.mapping(index)
    problems = mapping_problems(mapping)
    if problems:
        module.fail_json(
            msg="index %s exists with a mapping the flywheel cannot use (%s); it is never changed "
            "by this module: delete or reindex it, or set index to another name" % (index, "; ".join(problems)),
            index=index,
            requests=client.requests_made,
        )
    return mapping


def read_input(module, scheme):
    """(label, source, docs) of the module's input with the index's id scheme; fails, before
    anything is sent, when a record is invalid."""
    p = module.params
    if p["path"]:
        label, source = "line", p["path"]
        docs, errors = prepare_file(p["path"], p["workload_id"], p["client_id"], p["max_records"], scheme=scheme)
    else:
        label, source = "record", "records"
        entries = enumerate(p["records"], 1)
        docs, errors = prepare(entries, p["workload_id"], p["client_id"], p["max_records"], label, scheme)
    if errors:
        module.fail_json(msg=format_errors(errors, source), errors=errors[:MAX_REPORTED_ERRORS], index=p["index"])
    return label, docs


def present(module, client):
    p = module.params
    for name in ("batch_size", "batch_bytes", "parallel_batches"):
        if p[name] < 1:
            module.fail_json(msg="%s=%s must be at least 1" % (name, p[name]))
    if p["max_records"] is not None and p["max_records"] < 0:
        module.fail_json(msg="max_records=%s must be 0 or more" % p["max_records"])
    index = p["index"]
    # the ids depend on the index: one this module creates says its scheme, one without says none
    mapping = inspect_index(module, client, index)
    scheme = SCHEME_SOURCE if mapping is None else scheme_of(mapping)
    label, docs = read_input(module, scheme)
    created_index = False
    if mapping is None:
        created_index = module.check_mode or client.create_index(index, index_body(SCHEME_SOURCE))
        if not created_index:  # another loader created it after it was looked at: its scheme counts
            mapping = inspect_index(module, client, index) or {}
            if scheme_of(mapping) != scheme:
                scheme = scheme_of(mapping)
                label, docs = read_input(module, scheme)
    result = dict(index=index, index_created=created_index, records=len(docs), batches=0)
    loader = BulkLoader(
        client,
        index,
        batch_size=p["batch_size"],
        batch_bytes=p["batch_bytes"],
        workers=p["parallel_batches"],
        compress=p["compress"],
    )
    stats = loader.load(docs, created_index, module.check_mode, p["refresh"])
    result.update(
        created=stats["created"], existing=stats["existing"], batches=stats["batches"], retried=stats["retried"]
    )
    result["changed"] = created_index or stats["created"] > 0
    if stats["failed"]:
        first = stats["failed"][:10]
        module.fail_json(
            msg="%d of %d record(s) were refused by index %s (%d written, %d already there): %s"
            % (
                len(stats["failed"]),
                len(docs),
                index,
                stats["created"],
                stats["existing"],
                "; ".join("%s %s: %s" % (label, f["number"], f["error"]) for f in first),
            ),
            failed=stats["failed"][:MAX_REPORTED_ERRORS],
            requests=client.requests_made,
            **result,
        )
    return result


def absent(module, client):
    p = module.params
    if not p["workload_id"] and not p["client_id"]:
        module.fail_json(msg="state=absent needs workload_id and/or client_id (whose records to delete)")
    index = p["index"]
    result = dict(index=index, index_created=False, deleted=0)
    if not client.index_exists(index):
        result["changed"] = False
        return result
    query = selection_query(p["workload_id"], p["client_id"])
    if module.check_mode:
        result["deleted"] = client.count(index, query)
    else:
        result["deleted"] = client.delete_by_query(index, query)
    result["changed"] = result["deleted"] > 0
    return result


def run_logs(module, client):
    try:
        result = present(module, client) if module.params["state"] == "present" else absent(module, client)
    except LogsError as err:
        module.fail_json(msg=str(err), requests=client.requests_made)
    result["requests"] = client.requests_made
    module.exit_json(**result)


def run_logs_info(module, client):
    p = module.params
    result = dict(changed=False, index=p["index"], exists=False, count=0, counts=[])
    try:
        if client.index_exists(p["index"]):
            total, rows = client.counts(p["index"], p["workload_id"], p["client_id"])
            result.update(exists=True, count=total, counts=rows)
    except LogsError as err:
        module.fail_json(msg=str(err), requests=client.requests_made)
    result["requests"] = client.requests_made
    module.exit_json(**result)
