# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Reading log records (a JSONL file or a list) into documents ready for the index.

Every record is checked (flywheel_log_schema) before anything is sent. A document's id comes from
its content, so loading the same records again creates nothing. Two id schemes exist:

* ``source-sha256`` (indexes this module creates; recorded in the index mapping's ``_meta``): the
  document is sent as it is, the JSONL line itself (or, with overrides or list input, the record
  re-encoded as compact JSON), and its id is the SHA-256 of those bytes. Same bytes, same record;
  the same record written with other whitespace or key order is another record.
* ``canonical-json-sha256`` (an index without the marker: made by the flywheel, by hand, or by an
  earlier version of this module): the record is re-encoded as canonical JSON (sorted keys, no
  spaces), sent so and hashed, so its earlier loads are found again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json
import os

try:
    import multiprocessing
except ImportError:  # pragma: no cover
    multiprocessing = None

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_log_schema import (
    INDEX_BODY,
    LogsError,
    validate_record,
)

MAX_REPORTED_ERRORS = 1000
# A file of more records than this is read and checked by two processes at once (a core each);
# parsing and checking, not sending, is most of a bulk load's time.
PARALLEL_FROM = 2000

SCHEME_SOURCE = "source-sha256"
SCHEME_CANONICAL = "canonical-json-sha256"
SCHEMES = (SCHEME_SOURCE, SCHEME_CANONICAL)
META_KEY = "dataflywheel.blueprint"  # the index mapping's _meta: {META_KEY: {"document_ids": scheme}}

CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def index_meta(scheme=SCHEME_SOURCE):
    """The mapping `_meta` an index created by this module carries: its document id scheme."""
    return {META_KEY: {"document_ids": scheme}}


def index_body(scheme=SCHEME_SOURCE):
    """The flywheel's index (settings and mapping, as upstream creates it) with the id scheme in `_meta`."""
    body = copy.deepcopy(INDEX_BODY)
    body["mappings"]["_meta"] = index_meta(scheme)
    return body


def scheme_of(mapping):
    """The id scheme of an existing index from its mapping: the recorded one, else canonical."""
    recorded = ((mapping or {}).get("_meta") or {}).get(META_KEY) or {}
    scheme = recorded.get("document_ids", SCHEME_CANONICAL) if isinstance(recorded, dict) else SCHEME_CANONICAL
    if scheme not in SCHEMES:
        raise LogsError(
            "the index records document ids of scheme %r in its mapping's _meta, which this version of the "
            "collection does not know (it knows %s); load it with the version that created it"
            % (scheme, ", ".join(SCHEMES))
        )
    return scheme


# ------------------------------------------------------------------ parsing
def _not_json_number(name):
    raise ValueError("%s is not a JSON number (the index refuses it)" % name)


def _unique_keys(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _value in pairs:
            if key in seen:
                raise ValueError("duplicate key %s in one object (the index refuses it)" % json.dumps(key))
            seen.add(key)
    return obj


BOM = "\ufeff"
# NaN/Infinity parse in Python but the index refuses them; a line is refused here instead.
LENIENT = json.JSONDecoder(parse_constant=_not_json_number)
# A line sent as it is must also be one the index parses: no key twice in an object.
STRICT = json.JSONDecoder(parse_constant=_not_json_number, object_pairs_hook=_unique_keys)


def read_lines(path, max_records=None):
    """[(line number, bytes)] of the non-blank lines of a file (the first max_records of them)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as err:
        raise LogsError("cannot read path=%s: %s" % (path, err)) from None
    out = []
    for number, line in enumerate(data.split(b"\n"), 1):
        raw = line.strip()
        if raw:
            if max_records is not None and len(out) >= max_records:
                break
            out.append((number, raw))
    return out


def parse(lines):
    """Yield (line number, parsed value or LogsError) for [(line number, bytes)]."""
    decode = LENIENT.decode
    for number, raw in lines:
        try:
            text = raw.decode("utf-8", "replace")
            if text.startswith(BOM):
                raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig)")
            yield number, decode(text)
        except ValueError as err:
            yield number, LogsError("not valid JSON (%s)" % err)


def read_jsonl(path):
    """Yield (line number, parsed value or LogsError) for each non-blank line of a JSONL file."""
    return parse(read_lines(path))


def canonical(doc):
    """The record as canonical JSON (sorted keys, no spaces): what the canonical scheme hashes and sends."""
    return CANONICAL.encode(doc)


def doc_id(doc, text=None):
    """The canonical scheme's document id: SHA-256 of the record's canonical JSON."""
    return hashlib.sha256((text or canonical(doc)).encode("utf-8")).hexdigest()


def source_id(source):
    """The source scheme's document id: SHA-256 of the document's bytes as sent."""
    return hashlib.sha256(source).hexdigest()


def _with_overrides(record, workload_id, client_id):
    if not (workload_id or client_id):
        return record
    doc = dict(record)
    if workload_id:
        doc["workload_id"] = workload_id
    if client_id:
        doc["client_id"] = client_id
    return doc


def _encoded(doc, encoder):
    """(bytes, None) or (None, the reason the index could not take them)."""
    try:
        return encoder.encode(doc).encode("utf-8"), None
    except ValueError as err:  # NaN/Infinity, or a lone surrogate that has no UTF-8
        return None, "cannot be sent as JSON: %s" % err


def _check(number, record, workload_id, client_id, label, errors):
    if isinstance(record, LogsError):
        errors.append({label: number, "field": "(record)", "message": str(record)})
        return False
    problems = validate_record(record, workload_id, client_id)
    if problems:
        errors.extend({label: number, "field": field, "message": message} for field, message in problems)
        return False
    return True


def prepare(entries, workload_id=None, client_id=None, max_records=None, label="line", scheme=SCHEME_CANONICAL):
    """Validate (number, record) pairs and apply the overrides. Returns (docs, errors) where docs
    is [(number, id, source bytes)] in input order without in-input duplicates, and errors is
    [{label: number, field, message}]. Nothing is sent when errors is not empty."""
    encoder = CANONICAL if scheme == SCHEME_CANONICAL else COMPACT
    docs, errors, seen = [], [], set()
    taken = 0
    for number, record in entries:
        if max_records is not None and taken >= max_records:
            break
        taken += 1
        if not _check(number, record, workload_id, client_id, label, errors):
            continue
        source, reason = _encoded(_with_overrides(record, workload_id, client_id), encoder)
        if reason:
            errors.append({label: number, "field": "(record)", "message": reason})
            continue
        ident = source_id(source)
        if ident not in seen:
            seen.add(ident)
            docs.append((number, ident, source))
    return docs, errors


def _check_lines(lines, workload_id, client_id, scheme):
    """Check file lines [(number, bytes)]. Returns (found, errors): found is [(position, id, source)]
    where source None means the line itself is the document."""
    found, errors = [], []
    canonical_ids = scheme == SCHEME_CANONICAL
    encoder = CANONICAL if canonical_ids else COMPACT
    as_is = not (canonical_ids or workload_id or client_id)
    # A line sent as it is must be what the index parses: UTF-8, no key twice in an object. A record
    # that is re-encoded is read as before: bytes that are not UTF-8 become U+FFFD, a repeated key
    # keeps its last value.
    decode = (STRICT if as_is else LENIENT).decode
    unicode_errors = "strict" if as_is else "replace"
    for position, (number, raw) in enumerate(lines):
        try:
            text = raw.decode("utf-8", unicode_errors)
            if text.startswith(BOM):
                raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig)")
            record = decode(text)
        except ValueError as err:  # also a line that is not UTF-8 (UnicodeDecodeError)
            record = LogsError("not valid JSON (%s)" % err)
        if not _check(number, record, workload_id, client_id, "line", errors):
            continue
        if as_is:
            found.append((position, source_id(raw), None))
            continue
        source, reason = _encoded(_with_overrides(record, workload_id, client_id), encoder)
        if reason:
            errors.append({"line": number, "field": "(record)", "message": reason})
        else:
            found.append((position, source_id(source), source))
    return found, errors


# The lines a forked checker reads: set before the fork, so each worker gets only (start, end) and
# nothing but its results (ids, and documents only when they are not the lines) goes through a pipe.
_FORKED_LINES = []


def _check_chunk(task):
    start, end, workload_id, client_id, scheme = task
    found, errors = _check_lines(_FORKED_LINES[start:end], workload_id, client_id, scheme)
    return [(start + position, ident, source) for position, ident, source in found], errors


def prepare_file(path, workload_id=None, client_id=None, max_records=None, processes=2, scheme=SCHEME_CANONICAL):
    """prepare() for a JSONL file: (docs, errors), docs [(line number, id, source bytes)]. A large
    file is split in contiguous parts checked by `processes` processes at once (this one and forked
    ones). The
    result is the same: documents in file order, a record repeated anywhere in the file loaded once
    (its first line), every error."""
    lines = read_lines(path, max_records)
    processes = min(processes, os.cpu_count() or 1)
    parts = None
    if processes > 1 and len(lines) >= PARALLEL_FROM and multiprocessing is not None:
        size = -(-len(lines) // processes)
        tasks = [(i, i + size, workload_id, client_id, scheme) for i in range(0, len(lines), size)]
        _FORKED_LINES[:] = lines
        try:
            # this process checks the first part while forked ones check the others
            with multiprocessing.get_context("fork").Pool(processes - 1) as pool:
                others = pool.map_async(_check_chunk, tasks[1:])
                parts = [_check_chunk(tasks[0])] + others.get()
        except (OSError, ValueError, ImportError):  # no fork here (or no /dev/shm): one process does it
            parts = None
        finally:
            del _FORKED_LINES[:]
    if parts is None:
        parts = [_check_lines(lines, workload_id, client_id, scheme)]
    docs, errors, seen = [], [], set()
    for found, part_errors in parts:
        errors.extend(part_errors)
        for position, ident, source in found:
            if ident not in seen:
                seen.add(ident)
                number, raw = lines[position]
                docs.append((number, ident, raw if source is None else source))
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
