"""flywheel_logs module_utils without Ansible: record validation, ids, errors, the HTTP client."""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_log_reader as reader
from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_log_schema as schema
from ansible_collections.dataflywheel.blueprint.plugins.module_utils import search_client as search
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_log_loader import BulkLoader
from tests.sim.sample_logs import generate


def good() -> dict:
    return copy.deepcopy(next(generate(1)))


# ------------------------------------------------------------------ validation
def test_generated_records_are_valid_tool_calling_records():
    records = list(generate(500, seed=3))
    assert all(schema.validate_record(r) == [] for r in records)
    users = [r["request"]["messages"][-1]["content"] for r in records]
    assert len(set(users)) == 500, "user queries are unique (the flywheel drops repeated ones)"
    assert all(r["response"]["choices"][0]["message"]["tool_calls"] for r in records)
    assert list(generate(5, seed=3)) == records[:5], "deterministic for a seed"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda r: r.pop("workload_id"), "workload_id", "missing"),
        (lambda r: r.update(client_id=""), "client_id", "non-empty string"),
        (lambda r: r.update(feedback=1), "feedback", "unknown top-level field"),
        (lambda r: r.update(timestamp="last tuesday"), "timestamp", "not an ISO 8601 date"),
        (lambda r: r.update(timestamp=-5), "timestamp", "between 0 and"),
        (lambda r: r.update(timestamp=True), "timestamp", "not a boolean"),
        (lambda r: r.update(timestamp="2025-02-30T10:00:00Z"), "timestamp", "not a valid calendar date"),
        (lambda r: r.pop("timestamp"), "timestamp", "missing"),
        (lambda r: r.update(request=[]), "request", "must be an object"),
        (lambda r: r["request"].pop("model"), "request.model", "missing"),
        (lambda r: r["request"].update(messages=[]), "request.messages", "non-empty list"),
        (lambda r: r["request"]["messages"][1].update(role="bot"), "request.messages[1].role", "must be one of"),
        (lambda r: r["request"]["messages"][1].pop("content"), "request.messages[1].content", "missing"),
        (lambda r: r["request"]["messages"][1].update(content=7), "request.messages[1].content", "not a number"),
        (lambda r: r["request"].update(tools={}), "request.tools", "must be a list"),
        (lambda r: r["request"]["tools"][0]["function"].pop("name"), "request.tools[0].function.name", "non-empty"),
        (lambda r: r.update(response="ok"), "response", "must be an object"),
        (lambda r: r["response"].update(choices=[]), "response.choices", "non-empty list"),
        (lambda r: r["response"]["choices"][0].pop("message"), "response.choices[0].message", "missing"),
        (
            lambda r: r["response"]["choices"][0]["message"].update(role="user"),
            "response.choices[0].message.role",
            "must be 'assistant'",
        ),
        (
            lambda r: r["response"]["choices"][0]["message"]["tool_calls"][0]["function"].update(arguments="{x"),
            "response.choices[0].message.tool_calls[0].function.arguments",
            "not JSON",
        ),
        (
            lambda r: r["response"]["choices"][0]["message"]["tool_calls"][0].update(type="retrieval"),
            "response.choices[0].message.tool_calls[0].type",
            "must be 'function'",
        ),
    ],
)
def test_each_problem_names_its_field(change, field, words):
    record = good()
    change(record)
    problems = schema.validate_record(record)
    assert any(f == field and words in m for f, m in problems), problems


def _paths(value, path=()):
    """Every (container, key) path inside a record."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path + (key,)
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield path + (i,)
            yield from _paths(item, path + (i,))


REPLACEMENTS = [
    None,
    "",
    " ",
    "x",
    "assistant",
    "function",
    0,
    -1,
    1.5,
    10**400,
    float("nan"),
    True,
    [],
    [{}],
    [{"type": "text"}],
    {},
    {"name": ""},
    {"name": "f"},
    "{not json",
    '{"a": 1}',
    "2025-02-30",
    "2025-06-01T12:00:00Z",
    253402300800,
]


def test_validation_answers_every_mutated_record_with_named_problems():
    """Every record mutated at any depth (a value replaced, a key removed or an unknown one added, with and
    without overrides; exhaustive single changes, then a fixed-seed fuzz) gets a list of (field, message)
    pairs, no crash, and both outcomes occur."""
    import random  # noqa: PLC0415

    rng = random.Random(18)
    bases = [good()]
    bases.append(copy.deepcopy(bases[0]))
    bases[1]["request"]["messages"].append(
        {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "f"}}]}
    )
    bases[1]["response"]["choices"][0]["message"]["content"] = [{"type": "text", "text": "hi"}]
    outcomes = set()

    def agree(record, overrides):
        problems = schema.validate_record(record, **overrides)
        assert isinstance(problems, list), (record, overrides)
        assert all(isinstance(f, str) and isinstance(m, str) and m for f, m in problems), (record, overrides, problems)
        outcomes.add(problems == [])

    for base in bases:  # every single replacement and removal, exhaustively
        for path in _paths(base):
            for value in [*REPLACEMENTS, "removed"]:
                record = copy.deepcopy(base)
                parent = record
                for key in path[:-1]:
                    parent = parent[key]
                if value == "removed":
                    if not isinstance(parent, dict):
                        continue
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = copy.deepcopy(value)
                agree(record, {})
                agree(record, {"workload_id": "w", "client_id": "c"})
    for n in range(3000):  # and random combinations
        record = copy.deepcopy(bases[n % 2])
        for _change in range(rng.choice((1, 1, 2))):
            path = rng.choice(list(_paths(record)))
            parent = record
            for key in path[:-1]:
                parent = parent[key]
            action = rng.random()
            if action < 0.15 and isinstance(parent, dict):
                del parent[path[-1]]
            elif action < 0.2 and isinstance(parent, dict):
                parent["unknown"] = 1
            else:
                parent[path[-1]] = copy.deepcopy(rng.choice(REPLACEMENTS))
        agree(
            record, rng.choice(({}, {"workload_id": "w"}, {"client_id": "c"}, {"workload_id": "w", "client_id": "c"}))
        )
    assert outcomes == {True, False}


def test_a_huge_integer_timestamp_is_a_problem_not_a_crash():
    record = good()
    record["timestamp"] = 10**400
    assert [f for f, _m in schema.validate_record(record)] == ["timestamp"]


@pytest.mark.parametrize(
    "value", [0, 1717000000, 1717000000.5, "2025-06-01", "2025-06-01T12:00:00Z", "2025-06-01 12:00:00+02:00"]
)
def test_timestamps_the_flywheel_accepts(value):
    assert schema.check_timestamp(value) is None


def test_object_arguments_and_plain_answers_are_accepted():
    record = good()
    call = record["response"]["choices"][0]["message"]["tool_calls"][0]
    call["function"]["arguments"] = {"order_id": 4411}  # AIVA logs store objects (upstream docs/05)
    assert schema.validate_record(record) == []
    record["response"]["choices"][0]["message"] = {"role": "assistant", "content": "Hello!"}
    assert schema.validate_record(record) == []


def test_overrides_stand_in_for_missing_ids():
    record = good()
    del record["workload_id"], record["client_id"]
    assert schema.validate_record(record, workload_id="w", client_id="c") == []
    assert [f for f, _m in schema.validate_record(record)] == ["workload_id", "client_id"]


# ------------------------------------------------------------------ ids and preparation
def test_doc_id_depends_on_content_only():
    a, b = good(), good()
    b = dict(reversed(list(b.items())))  # same content, other key order
    assert reader.doc_id(a) == reader.doc_id(b)
    b["client_id"] = "aiva-2"
    assert reader.doc_id(a) != reader.doc_id(b)


def test_prepare_applies_overrides_limits_and_drops_in_input_duplicates():
    records = list(generate(5))
    entries = list(enumerate(records + [records[0]], 1))
    docs, errors = reader.prepare(entries, client_id="aiva-9")
    assert errors == [] and len(docs) == 5
    assert all(json.loads(text)["client_id"] == "aiva-9" for _n, _i, text in docs)
    assert all(ident == reader.doc_id(json.loads(text)) for _n, ident, text in docs)
    assert records[0]["client_id"] == "aiva-1", "the input is not changed"
    docs, _errors = reader.prepare(entries, max_records=2)
    assert [n for n, _i, _d in docs] == [1, 2]


def test_read_jsonl_reports_bad_json_with_its_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(good()) + "\n\n{broken\n")
    docs, errors = reader.prepare(reader.read_jsonl(str(path)))
    assert len(docs) == 1 and errors[0]["line"] == 3 and "not valid JSON" in errors[0]["message"]
    message = reader.format_errors(errors, str(path))
    assert message.startswith("1 invalid record(s) in %s (line 3); nothing was sent" % path)


@pytest.mark.parametrize("scheme", [reader.SCHEME_CANONICAL, reader.SCHEME_SOURCE])
def test_a_large_file_is_checked_by_two_processes_with_the_same_result(tmp_path, monkeypatch, scheme):
    records = list(generate(30, seed=5))
    lines = [json.dumps(r) for r in records]
    lines[20] = lines[3]  # a duplicate in the other half: loaded once, at its first line
    bad = copy.deepcopy(records[25])
    del bad["response"]
    lines[25] = json.dumps(bad)
    lines.insert(10, "")
    path = tmp_path / "logs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(reader, "PARALLEL_FROM", 4)
    for overrides in ({"client_id": "c"}, {}):
        one = reader.prepare_file(str(path), processes=1, scheme=scheme, **overrides)
        two = reader.prepare_file(str(path), processes=2, scheme=scheme, **overrides)
        assert one == two
        docs, errors = two
        assert len(docs) == 28 and [e["line"] for e in errors] == [27]
        assert [d[0] for d in docs][:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]  # line 11 is blank
    assert len(reader.prepare_file(str(path), max_records=12, processes=2, scheme=scheme)[0]) == 12


# ------------------------------------------------------------------ document id schemes
def _lines_file(tmp_path, lines):
    path = tmp_path / "logs.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_source_ids_are_the_sha256_of_the_line_sent_as_it_is(tmp_path):
    records = list(generate(3))
    lines = [json.dumps(r).encode() for r in records]  # with spaces: sent as written, not re-encoded
    lines.append(json.dumps(records[0], separators=(",", ":")).encode())  # the same record, other bytes
    lines.append(lines[1])  # the same bytes again: loaded once
    path = _lines_file(tmp_path, [b"  " + lines[0] + b"\r", *lines[1:]])
    docs, errors = reader.prepare_file(str(path), scheme=reader.SCHEME_SOURCE)
    assert errors == []
    assert [(n, source) for n, _i, source in docs] == [(1, lines[0]), (2, lines[1]), (3, lines[2]), (4, lines[3])]
    assert all(ident == hashlib.sha256(source).hexdigest() for _n, ident, source in docs)
    assert docs[0][1] != docs[3][1], "same record, other whitespace: another document"
    assert reader.prepare_file(str(path), scheme=reader.SCHEME_SOURCE) == (docs, errors), "stable across reruns"


def test_canonical_ids_are_unchanged_for_indexes_without_the_marker(tmp_path):
    records = list(generate(3))
    path = _lines_file(tmp_path, [json.dumps(r).encode() for r in records])
    docs, errors = reader.prepare_file(str(path), scheme=reader.SCHEME_CANONICAL)
    assert errors == [] and len(docs) == 3
    for (_n, ident, source), record in zip(docs, records):
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert (ident, source) == (hashlib.sha256(canonical).hexdigest(), canonical)
    assert reader.prepare_file(str(path), scheme=reader.SCHEME_CANONICAL) == (docs, errors)
    assert [d[1] for d in docs] == [reader.doc_id(r) for r in records]


def test_with_overrides_or_a_list_the_source_is_the_record_as_compact_json(tmp_path):
    record = good()
    path = _lines_file(tmp_path, [json.dumps(record).encode()])
    docs, _errors = reader.prepare_file(str(path), client_id="aiva-9", scheme=reader.SCHEME_SOURCE)
    expected = json.dumps(dict(record, client_id="aiva-9"), separators=(",", ":"), ensure_ascii=False).encode()
    assert docs == [(1, hashlib.sha256(expected).hexdigest(), expected)]
    assert reader.prepare([(1, record)], client_id="aiva-9", scheme=reader.SCHEME_SOURCE)[0] == docs


def test_a_line_sent_as_it_is_must_be_one_the_index_parses(tmp_path):
    good_line = json.dumps(good()).encode()
    nested_twice = good_line.replace(b'"model": "meta/llama-3.1-70b-instruct"', b'"model": "a", "model": "b"', 1)
    path = _lines_file(
        tmp_path,
        [
            good_line,
            nested_twice,  # the index refuses a key twice in one object
            good_line.replace(b'"temperature": 0.2', b'"temperature": NaN'),  # and NaN/Infinity
            good_line.replace(b"Jetson", b"J\xe9tson"),  # and bytes that are not UTF-8
        ],
    )
    docs, errors = reader.prepare_file(str(path), scheme=reader.SCHEME_SOURCE)
    assert [d[0] for d in docs] == [1]
    assert [(e["line"], e["field"]) for e in errors] == [(2, "(record)"), (3, "(record)"), (4, "(record)")]
    assert 'duplicate key "model"' in errors[0]["message"]
    assert "NaN is not a JSON number" in errors[1]["message"]
    assert "utf-8" in errors[2]["message"]
    # a record that is re-encoded (canonical scheme, or overrides) is read as before: a repeated key keeps its
    # last value, bytes that are not UTF-8 become U+FFFD; NaN is refused there too
    for scheme, overrides in ((reader.SCHEME_CANONICAL, {}), (reader.SCHEME_SOURCE, {"client_id": "c"})):
        docs, errors = reader.prepare_file(str(path), scheme=scheme, **overrides)
        assert [d[0] for d in docs] == [1, 2, 4] and [e["line"] for e in errors] == [3]
        assert json.loads(docs[1][2])["request"]["model"] == "b"


def test_the_index_records_its_id_scheme():
    body = reader.index_body()
    assert body["mappings"]["_meta"] == {"dataflywheel.blueprint": {"document_ids": "source-sha256"}}
    assert {k: v for k, v in body["mappings"].items() if k != "_meta"} == schema.INDEX_BODY["mappings"]
    assert body["settings"] == schema.INDEX_BODY["settings"]
    assert reader.scheme_of(body["mappings"]) == reader.SCHEME_SOURCE
    assert reader.scheme_of(schema.INDEX_BODY["mappings"]) == reader.SCHEME_CANONICAL  # no marker: as before
    assert reader.scheme_of({"_meta": {"owner": "someone"}}) == reader.SCHEME_CANONICAL
    with pytest.raises(schema.LogsError, match="scheme 'sha512-v9'.*does not know"):
        reader.scheme_of({"_meta": {"dataflywheel.blueprint": {"document_ids": "sha512-v9"}}})


def test_format_errors_caps_the_message():
    errors = [{"line": n, "field": "timestamp", "message": "bad"} for n in range(1, 40)]
    message = reader.format_errors(errors, "f.jsonl")
    assert message.startswith("39 invalid record(s) in f.jsonl (lines 1, 2,") and "(and 29 more)" in message


def test_mapping_problems():
    assert schema.mapping_problems(schema.INDEX_BODY["mappings"]) == []
    problems = schema.mapping_problems({"properties": {"client_id": {"type": "text"}, "request": {"type": "keyword"}}})
    assert "client_id is text, the flywheel needs keyword" in problems
    assert "request is keyword, the flywheel needs an object" in problems
    assert "workload_id is not mapped, the flywheel needs keyword" in problems


def test_selection_query():
    assert schema.selection_query() == {"match_all": {}}
    assert schema.selection_query(client_id="c") == {"bool": {"filter": [{"term": {"client_id": "c"}}]}}


# ------------------------------------------------------------------ HTTP client
class Recorder(BaseHTTPRequestHandler):
    """Answers like Elasticsearch for a few paths and records each request's method, path and headers."""

    def log_message(self, *args):  # quiet
        pass

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        script = self.server.script
        status, payload = script.pop(0) if script else (200, {"count": 3})
        raw = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    do_GET = do_POST = do_PUT = do_HEAD = answer  # noqa: N815


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen, server.script = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def client(server, **kw):
    return search.SearchClient("http://127.0.0.1:%d" % server.server_address[1], sleep=lambda s: None, **kw)


def test_basic_auth_and_api_key_headers(recorder):
    assert client(recorder, username="elastic", password="s3cret-pw").count("flywheel") == 3
    auth = recorder.seen[-1][2]["Authorization"]
    assert auth == "Basic " + base64.b64encode(b"elastic:s3cret-pw").decode()
    client(recorder, username="elastic", password="pw", api_key="a2V5OnNlY3JldA==").count("flywheel")
    assert recorder.seen[-1][2]["Authorization"] == "ApiKey a2V5OnNlY3JldA=="
    client(recorder).count("flywheel")
    assert "Authorization" not in recorder.seen[-1][2]


def test_retries_429_and_5xx_then_succeeds(recorder):
    recorder.script[:] = [(429, {"error": "busy"}), (503, {"error": "down"}), (200, {"count": 9})]
    c = client(recorder, retries=3)
    assert c.count("flywheel") == 9 and c.requests_made == 3


def test_errors_carry_elasticsearchs_reason_and_no_credentials(recorder):
    recorder.script[:] = [
        (401, {"error": {"type": "security_exception", "reason": "missing authentication credentials"}})
    ]
    with pytest.raises(schema.LogsError) as err:
        client(recorder, username="elastic", password="s3cret-pw").count("flywheel")
    assert err.value.status == 401 and "security_exception: missing authentication credentials" in str(err.value)
    assert "set es_username/es_password or es_api_key" in str(err.value)
    assert "s3cret-pw" not in str(err.value)


def loader(server, **kw):
    return BulkLoader(client(server), "flywheel", workers=1, sleep=lambda s: None, **kw)


def test_bulk_create_counts_created_existing_and_refused(recorder):
    docs = [(n, "id%d" % n, json.dumps({"n": n})) for n in range(1, 6)]
    recorder.script[:] = [
        (
            200,
            {
                "errors": True,
                "items": [{"create": {"status": 201}}, {"create": {"status": 409}}, {"create": {"status": 201}}],
            },
        ),
        (
            200,
            {
                "errors": True,
                "items": [
                    {"create": {"status": 201}},
                    {"create": {"status": 400, "error": {"type": "strict_dynamic_mapping_exception", "reason": "x"}}},
                ],
            },
        ),
    ]
    stats = loader(recorder, batch_size=3).load(docs, index_is_new=True, refresh=False)
    assert (stats["created"], stats["existing"], stats["batches"]) == (3, 1, 2)
    assert stats["failed"] == [
        {"number": 5, "id": "id5", "status": 400, "error": "strict_dynamic_mapping_exception: x"}
    ]
    method, path, headers, body = recorder.seen[0]
    assert (method, headers["Content-Type"]) == ("POST", "application/x-ndjson")
    assert path == "/_bulk?filter_path=errors%2Citems.%2A.status%2Citems.%2A.error"  # the answer cut to what is read
    lines = body.decode().splitlines()
    assert json.loads(lines[0]) == {"create": {"_index": "flywheel", "_id": "id1"}} and len(lines) == 6
    assert json.loads(lines[1]) == {"n": 1}


def test_a_busy_engines_429_is_retried_not_failed(recorder):
    docs = [(n, "id%d" % n, json.dumps({"n": n})) for n in range(1, 4)]
    busy = {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}
    recorder.script[:] = [
        (200, {"errors": True, "items": [{"create": {"status": 201}}, {"create": busy}, {"create": busy}]}),
        (200, {"errors": True, "items": [{"create": {"status": 201}}, {"create": busy}]}),
        (200, {"errors": False, "items": [{"create": {"status": 201}}]}),
    ]
    stats = loader(recorder).load(docs, index_is_new=True, refresh=False)
    assert (stats["created"], stats["failed"], stats["retried"], stats["batches"]) == (3, [], 3, 3)
    assert [len(seen[3].decode().splitlines()) for seen in recorder.seen] == [6, 4, 2]  # only the refused again


def test_a_429_that_never_ends_is_a_failure_after_the_retries(recorder):
    busy = {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}
    recorder.script[:] = [(200, {"errors": True, "items": [{"create": busy}]})] * 3
    stats = loader(recorder, retries=2).load([(7, "id7", "{}")], index_is_new=True, refresh=False)
    assert stats["created"] == 0 and stats["failed"][0]["number"] == 7 and stats["batches"] == 3
    assert "still refused after 2 retries" in stats["failed"][0]["error"]


def test_batches_are_cut_by_bytes_too_and_can_be_compressed(recorder):
    docs = [(n, "id%d" % n, json.dumps({"pad": "x" * 900})) for n in range(1, 6)]
    recorder.script[:] = [(200, {"items": [{"create": {"status": 201}}] * 2})] * 2 + [
        (200, {"items": [{"create": {"status": 201}}]})
    ]
    stats = loader(recorder, batch_bytes=2500, compress=True).load(docs, index_is_new=True, refresh=False)
    assert stats["created"] == 5 and stats["batches"] == 3
    _method, _path, headers, body = recorder.seen[0]
    assert headers["Content-Encoding"] == "gzip"
    assert len(gzip.decompress(body).decode().splitlines()) == 4


def test_create_index_tolerates_a_concurrent_creation(recorder):
    recorder.script[:] = [
        (400, {"error": {"type": "resource_already_exists_exception", "reason": "index [flywheel] already exists"}})
    ]
    assert client(recorder).create_index("flywheel") is False
    method, path, _headers, body = recorder.seen[0]
    assert (method, path) == ("PUT", "/flywheel") and json.loads(body) == schema.INDEX_BODY


def test_unreachable_engine_is_one_clear_error():
    c = search.SearchClient("http://127.0.0.1:9", retries=1, sleep=lambda s: None)
    with pytest.raises(schema.LogsError) as err:
        c.count("flywheel")
    assert "POST http://127.0.0.1:9/flywheel/_count failed" in str(err.value)


# ------------------------------------------------------------------ the module: which ids an index gets
def _run_logs(ansible_module, server, **args):
    return ansible_module("flywheel_logs", {"es_url": "http://127.0.0.1:%d" % server.server_address[1], **args})


def _bulk_ids(seen):
    ids = []
    for method, path, _headers, body in seen:
        if method == "POST" and path.startswith("/_bulk"):
            lines = body.decode().splitlines()
            ids += [json.loads(action)["create"]["_id"] for action in lines[::2]]
    return ids


def _created(n):
    return (200, {"errors": False, "items": [{"create": {"status": 201}}] * n})


def test_an_index_this_module_creates_gets_the_marker_and_source_ids(ansible_module, recorder, tmp_path):
    lines = [json.dumps(r).encode() for r in generate(3)]
    path = _lines_file(tmp_path, lines)
    recorder.script[:] = [(404, None), (200, {"acknowledged": True}), _created(3)]
    result = _run_logs(ansible_module, recorder, path=str(path))
    assert result.get("failed") is not True, result
    assert (result["index_created"], result["created"]) == (True, 3)
    method, where, _headers, body = recorder.seen[1]
    assert (method, where) == ("PUT", "/flywheel") and json.loads(body) == reader.index_body(reader.SCHEME_SOURCE)
    assert _bulk_ids(recorder.seen) == [hashlib.sha256(line).hexdigest() for line in lines]
    assert recorder.seen[2][3].decode().splitlines()[1::2] == [line.decode() for line in lines]  # sent as written


@pytest.mark.parametrize("concurrent", [False, True], ids=["existing", "created-meanwhile"])
def test_an_index_without_the_marker_keeps_canonical_ids(ansible_module, recorder, tmp_path, concurrent):
    records = list(generate(3))
    path = _lines_file(tmp_path, [json.dumps(r).encode() for r in records])
    old_index = (200, {"flywheel": {"mappings": schema.INDEX_BODY["mappings"]}})  # made by the flywheel or by hand
    exists = (
        400,
        {"error": {"type": "resource_already_exists_exception", "reason": "index [flywheel] already exists"}},
    )
    recorder.script[:] = ([(404, None), exists] if concurrent else []) + [
        (200, None),
        old_index,
        (200, {"docs": [{"_id": reader.doc_id(records[0]), "found": True}]}),
        _created(2),
    ]
    result = _run_logs(ansible_module, recorder, path=str(path))
    assert result.get("failed") is not True, result
    assert (result["index_created"], result["created"], result["existing"]) == (False, 2, 1)
    assert _bulk_ids(recorder.seen) == [reader.doc_id(r) for r in records[1:]]
    assert [m for m, *_rest in recorder.seen].count("PUT") == (1 if concurrent else 0)


def test_a_bad_line_sends_nothing_not_even_the_index(ansible_module, recorder, tmp_path):
    lines = [json.dumps(r).encode() for r in generate(3)]
    lines[2] = lines[2].replace(b'"role": "user"', b'"role": "user", "role": "user"')
    path = _lines_file(tmp_path, lines)
    recorder.script[:] = [(404, None)]
    result = _run_logs(ansible_module, recorder, path=str(path))
    assert result.get("failed") is True and "line 3: (record): not valid JSON (duplicate key" in result["msg"]
    assert "nothing was sent" in result["msg"]
    assert [(m, p) for m, p, _h, _b in recorder.seen] == [("HEAD", "/flywheel")]  # looked, wrote nothing
