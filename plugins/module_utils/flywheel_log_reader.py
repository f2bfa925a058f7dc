# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Reading log records (a JSONL file or a list) into documents ready for the index.

Every record is checked (flywheel_log_schema) before anything is sent; the document id comes from
the record's content (SHA-256 of its canonical JSON), so loading the same records again creates
nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

try:
    import multiprocessing
except ImportError:  # pragma: no cover
    multiprocessing = None

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_log_schema import (
    LogsError,
    validate_record,
)

MAX_REPORTED_ERRORS = 1000
# A file of more records than this is read and checked by two processes at once (a core each);
# parsing and checking, not sending, is most of a bulk load's time.
PARALLEL_FROM = 2000
CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def read_lines(path, max_records=None):
    """[(line number, bytes)] of the non-blank lines of a file (the first max_records of them)."""
    try:
        handle = open(path, "rb")
    except (IOError, OSError) as err:
        raise LogsError("cannot read path=%s: %s" % (path, err)) from None
    out = []
    with handle:
        for number, line in enumerate(handle, 1):
            raw = line.strip()
            if raw:
                if max_records is not None and len(out) >= max_records:
                    break
                out.append((number, raw))
    return out


def parse(lines):
    """Yield (line number, parsed value or LogsError) for [(line number, bytes)]."""
    for number, raw in lines:
        try:
            yield number, json.loads(raw.decode("utf-8", "replace"))
        except ValueError as err:
            yield number, LogsError("not valid JSON (%s)" % err)


def read_jsonl(path):
    """Yield (line number, parsed value or LogsError) for each non-blank line of a JSONL file."""
    return parse(read_lines(path))


def canonical(doc):
    """The record as canonical JSON (sorted keys, no spaces): what is hashed and what is sent."""
    return CANONICAL.encode(doc)


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
        doc = record
        if workload_id or client_id:
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


# The lines a forked checker reads: set before the fork, so each worker gets only (start, end) and
# nothing but its results goes through a pipe.
_FORKED_LINES = []


def _prepare_chunk(task):
    start, end, workload_id, client_id, label = task
    return prepare(parse(_FORKED_LINES[start:end]), workload_id, client_id, None, label)


def prepare_file(path, workload_id=None, client_id=None, max_records=None, processes=2):
    """prepare() for a JSONL file; a large one is split in contiguous parts checked by
    `processes` worker processes (forked) at once. The result is the same: documents in file order,
    a record repeated anywhere in the file loaded once (its first line), every error."""
    lines = read_lines(path, max_records)
    processes = min(processes, os.cpu_count() or 1)
    if processes < 2 or len(lines) < PARALLEL_FROM or multiprocessing is None:
        return prepare(parse(lines), workload_id, client_id, None, "line")
    size = -(-len(lines) // processes)
    tasks = [(i, i + size, workload_id, client_id, "line") for i in range(0, len(lines), size)]
    _FORKED_LINES[:] = lines
    try:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            parts = pool.map(_prepare_chunk, tasks)
    except (OSError, ValueError, ImportError):  # no fork here (or no /dev/shm): one process does it
        return prepare(parse(lines), workload_id, client_id, None, "line")
    finally:
        del _FORKED_LINES[:]
    docs, errors, seen = [], [], set()
    for part_docs, part_errors in parts:
        errors.extend(part_errors)
        for doc in part_docs:
            if doc[1] not in seen:
                seen.add(doc[1])
                docs.append(doc)
    return docs, errors
