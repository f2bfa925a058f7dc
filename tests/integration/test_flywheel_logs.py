"""flywheel_logs and flywheel_logs_info against a REAL search engine (OpenSearch, tests/sim/search_engine)."""

from __future__ import annotations

import copy
import hashlib
import json
import urllib.error
import urllib.request
import uuid

import pytest

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_log_reader as reader
from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_log_schema as schema
from tests.integration.flywheel_sim import run_module
from tests.sim.sample_logs import generate, write


def es(engine, method: str, path: str, body=None, ndjson: bytes | None = None):
    data, ctype = None, None
    if ndjson is not None:
        data, ctype = ndjson, "application/x-ndjson"
    elif body is not None:
        data, ctype = json.dumps(body).encode(), "application/json"
    req = urllib.request.Request(engine.url + path, data=data, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback engine
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def count(engine, index: str, **terms) -> int:
    status, _body = es(engine, "HEAD", f"/{index}")
    if status == 404:
        return -1  # no index
    es(engine, "POST", f"/{index}/_refresh")
    query = {"bool": {"filter": [{"term": {k: v}} for k, v in terms.items()]}} if terms else {"match_all": {}}
    return es(engine, "POST", f"/{index}/_count", {"query": query})[1]["count"]


@pytest.fixture
def index() -> str:
    return f"flywheel-t-{uuid.uuid4().hex[:8]}"


def logs(engine, index, **args):
    return run_module("flywheel_logs", {"es_url": engine.url, "index": index, **args})


def test_loading_the_same_1000_records_twice_changes_nothing(search_engine, index, tmp_path):
    path = write(tmp_path / "aiva.jsonl", 1000)
    first = logs(search_engine, index, path=str(path))
    assert first.get("failed") is not True, first
    assert first["changed"] is True and first["index_created"] is True
    assert (first["created"], first["existing"], first["batches"]) == (1000, 0, 2)
    assert count(search_engine, index) == 1000

    again_check = run_module(
        "flywheel_logs", {"es_url": search_engine.url, "index": index, "path": str(path)}, check=True
    )
    assert again_check["changed"] is False and again_check["created"] == 0 and again_check["existing"] == 1000

    second = logs(search_engine, index, path=str(path))
    assert second["changed"] is False, second
    assert (second["created"], second["existing"], second["index_created"]) == (0, 1000, False)
    assert count(search_engine, index) == 1000


def test_index_is_created_with_the_flywheels_strict_mapping(search_engine, index):
    records = list(generate(3, client_id="c1"))
    result = logs(search_engine, index, records=records)
    assert result["changed"] is True and result["created"] == 3
    mapping = es(search_engine, "GET", f"/{index}/_mapping")[1][index]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert {k: v.get("type", "object") for k, v in mapping["properties"].items()} == {
        "workload_id": "keyword",
        "client_id": "keyword",
        "timestamp": "date",
        "request": "object",
        "response": "object",
    }
    assert mapping["properties"]["request"]["dynamic"] == "false"
    settings = es(search_engine, "GET", f"/{index}/_settings")[1][index]["settings"]["index"]
    assert settings["mapping"]["ignore_malformed"] == "true"
    # the engine itself enforces the strict mapping: an extra top-level field is refused
    doc = dict(records[0], extra="x")
    body = (json.dumps({"create": {"_index": index, "_id": "x1"}}) + "\n" + json.dumps(doc) + "\n").encode()
    answer = es(search_engine, "POST", "/_bulk", ndjson=body)[1]
    assert answer["errors"] is True
    assert answer["items"][0]["create"]["error"]["type"] == "strict_dynamic_mapping_exception"


def bad_lines(records: list[dict]) -> tuple[list[str], dict[int, str]]:
    """Valid JSONL with invalid records at known lines; returns (lines, {line: field})."""
    lines = [json.dumps(r) for r in records]
    broken = {}

    def put(line: int, record: dict, field: str) -> None:
        lines[line - 1] = json.dumps(record)
        broken[line] = field

    r = copy.deepcopy(records[2])
    del r["client_id"]
    put(3, r, "client_id")  # missing field
    r = copy.deepcopy(records[4])
    r["user_feedback"] = "thumbs up"
    put(5, r, "user_feedback")  # extra top-level field
    r = copy.deepcopy(records[6])
    r["request"]["messages"] = "What is my order status?"
    put(7, r, "request.messages")  # malformed request
    r = copy.deepcopy(records[8])
    r["response"] = {"id": "x", "object": "chat.completion"}
    put(9, r, "response.choices")  # malformed response
    r = copy.deepcopy(records[10])
    r["timestamp"] = "yesterday at noon"
    put(11, r, "timestamp")  # bad timestamp
    r = copy.deepcopy(records[12])
    r["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{order_id: 7"
    put(13, r, "response.choices[0].message.tool_calls[0].function.arguments")
    lines[14] = "{not json"
    broken[15] = "(record)"
    # a key twice in one object: Python's parser keeps the last, the index refuses the document
    lines[16] = lines[16].replace('"role": "user"', '"role": "user", "role": "user"', 1)
    broken[17] = "(record)"
    return lines, broken


def test_invalid_records_are_rejected_before_anything_is_sent(search_engine, index, tmp_path):
    records = list(generate(20))
    # the index exists with 20 good records; a bad file must leave it exactly as it is
    assert logs(search_engine, index, records=records)["created"] == 20
    lines, broken = bad_lines(list(generate(20, seed=99)))
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = logs(search_engine, index, path=str(path))
    assert result.get("failed") is True
    assert result["msg"].startswith("8 invalid record(s) in %s (lines 3, 5, 7, 9, 11, 13, 15, 17)" % path)
    assert "nothing was sent" in result["msg"]
    found = {(e["line"], e["field"]) for e in result["errors"]}
    for line, field in broken.items():
        assert (line, field) in found, (line, field, result["errors"])
    assert "line 11: timestamp:" in result["msg"] and "yesterday at noon" in result["msg"]
    assert count(search_engine, index) == 20  # unchanged: the 12 good lines were not sent either


def test_a_new_index_records_its_id_scheme_and_keeps_each_line_as_written(search_engine, index, tmp_path):
    records = list(generate(5))
    lines = [json.dumps(r) for r in records]  # with spaces after , and :
    path = tmp_path / "spaced.jsonl"
    path.write_text("\n".join(lines) + "\n")
    first = logs(search_engine, index, path=str(path))
    assert (first["index_created"], first["created"]) == (True, 5), first
    meta = es(search_engine, "GET", f"/{index}/_mapping")[1][index]["mappings"]["_meta"]
    assert meta == {"dataflywheel.blueprint": {"document_ids": "source-sha256"}}
    ident = hashlib.sha256(lines[1].encode()).hexdigest()
    request = urllib.request.Request(f"{search_engine.url}/{index}/_source/{ident}")
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - loopback engine
        assert resp.read() == lines[1].encode(), "the stored document is the line, byte for byte"
    # the same file again: nothing new; the same records re-formatted: new documents (same bytes = same record)
    again = logs(search_engine, index, path=str(path))
    assert (again["changed"], again["created"], again["existing"]) == (False, 0, 5)
    compact = tmp_path / "compact.jsonl"
    compact.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records[:2]))
    assert logs(search_engine, index, path=str(compact))["created"] == 2
    assert count(search_engine, index) == 7


def test_an_index_loaded_with_canonical_ids_gets_no_duplicates(search_engine, index, tmp_path):
    """An index without the marker (the flywheel's own, or one loaded by an earlier version of this module,
    which gave every record the SHA-256 of its canonical JSON as id) keeps that scheme."""
    records = list(generate(30, client_id="old"))
    assert es(search_engine, "PUT", f"/{index}", schema.INDEX_BODY)[0] == 200
    canonical = [json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for r in records[:20]]
    body = "".join(
        json.dumps({"create": {"_index": index, "_id": hashlib.sha256(doc.encode()).hexdigest()}}) + "\n" + doc + "\n"
        for doc in canonical
    )
    assert es(search_engine, "POST", "/_bulk?refresh=true", ndjson=body.encode())[1]["errors"] is False
    path = write(tmp_path / "aiva.jsonl", 30, client_id="old")
    result = logs(search_engine, index, path=str(path))
    assert (result["created"], result["existing"], result["index_created"]) == (10, 20, False), result
    assert count(search_engine, index) == 30
    ids = [reader.doc_id(r) for r in records]
    found = es(search_engine, "POST", f"/{index}/_mget", {"ids": ids})[1]["docs"]
    assert all(doc["found"] for doc in found), "the 10 new records got canonical ids too"
    assert "_meta" not in es(search_engine, "GET", f"/{index}/_mapping")[1][index]["mappings"]
    assert logs(search_engine, index, path=str(path))["created"] == 0


def test_invalid_file_does_not_create_the_index(search_engine, index, tmp_path):
    record = next(generate(1))
    record["timestamp"] = True
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record) + "\n")
    result = logs(search_engine, index, path=str(path))
    assert result.get("failed") is True and "line 1: timestamp: must be epoch seconds" in result["msg"]
    assert count(search_engine, index) == -1  # no index was created


def test_list_input_names_the_position(search_engine, index):
    records = list(generate(3))
    records[1]["request"]["messages"][1]["role"] = "customer"
    result = logs(search_engine, index, records=records)
    assert result.get("failed") is True
    assert "record 2: request.messages[1].role: must be one of" in result["msg"]
    assert result["errors"][0]["record"] == 2


def test_overrides_split_one_file_into_the_demos_clients(search_engine, index, tmp_path):
    path = write(tmp_path / "aiva.jsonl", 1000)
    for client, n in (("aiva-1", 300), ("aiva-2", 500), ("aiva-3", 1000)):
        result = logs(
            search_engine,
            index,
            path=str(path),
            workload_id="primary_assistant",
            client_id=client,
            max_records=n,
            batch_size=250,
        )
        assert result["created"] == n and result["batches"] == -(-n // 250)
    info = run_module("flywheel_logs_info", {"es_url": search_engine.url, "index": index})
    assert info["changed"] is False and info["count"] == 1800
    assert info["counts"] == [
        {"workload_id": "primary_assistant", "client_id": "aiva-1", "records": 300},
        {"workload_id": "primary_assistant", "client_id": "aiva-2", "records": 500},
        {"workload_id": "primary_assistant", "client_id": "aiva-3", "records": 1000},
    ]
    one = run_module("flywheel_logs_info", {"es_url": search_engine.url, "index": index, "client_id": "aiva-2"})
    assert one["count"] == 500 and [c["client_id"] for c in one["counts"]] == ["aiva-2"]


def test_state_absent_removes_one_clients_records(search_engine, index):
    logs(search_engine, index, records=list(generate(30)), client_id="keep")
    logs(search_engine, index, records=list(generate(40)), client_id="drop")
    check = run_module(
        "flywheel_logs",
        {"es_url": search_engine.url, "index": index, "client_id": "drop", "state": "absent"},
        check=True,
    )
    assert check["changed"] is True and check["deleted"] == 40
    assert count(search_engine, index, client_id="drop") == 40  # check mode deleted nothing
    gone = logs(search_engine, index, client_id="drop", state="absent")
    assert gone["changed"] is True and gone["deleted"] == 40
    assert count(search_engine, index, client_id="drop") == 0 and count(search_engine, index, client_id="keep") == 30
    again = logs(search_engine, index, client_id="drop", state="absent")
    assert again["changed"] is False and again["deleted"] == 0
    refused = logs(search_engine, index, state="absent")
    assert refused.get("failed") is True and "workload_id and/or client_id" in refused["msg"]


def test_an_existing_index_is_never_changed(search_engine, index):
    # an index someone else made with a mapping the flywheel cannot query (client_id as text)
    status, _body = es(
        search_engine,
        "PUT",
        f"/{index}",
        {"mappings": {"properties": {"client_id": {"type": "text"}, "workload_id": {"type": "keyword"}}}},
    )
    assert status == 200
    before = es(search_engine, "GET", f"/{index}/_mapping")[1]
    result = logs(search_engine, index, records=list(generate(2)))
    assert result.get("failed") is True
    assert "client_id is text, the flywheel needs keyword" in result["msg"]
    assert "timestamp is not mapped" in result["msg"]
    assert es(search_engine, "GET", f"/{index}/_mapping")[1] == before
    assert count(search_engine, index) == 0


def test_bad_connection_settings_are_refused_by_name(search_engine, index, tmp_path):
    result = run_module("flywheel_logs", {"es_url": "localhost:9200", "records": []})
    assert result.get("failed") is True and "es_url='localhost:9200' must start with http" in result["msg"]
    result = logs(search_engine, "Flywheel Logs", records=[])
    assert result.get("failed") is True and "index='Flywheel Logs' is not a valid index name" in result["msg"]
    result = logs(search_engine, index, records=[], batch_size=0)
    assert result.get("failed") is True and "batch_size=0" in result["msg"]
    result = logs(search_engine, index, path=str(tmp_path / "missing.jsonl"))
    assert result.get("failed") is True and "cannot read path=" in result["msg"]


def test_env_fallback_for_the_url(search_engine, index):
    result = run_module("flywheel_logs_info", {"index": index}, env={"FLYWHEEL_ES_URL": search_engine.url})
    assert result.get("failed") is not True, result
    assert result["exists"] is False and result["count"] == 0
