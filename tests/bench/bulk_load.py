"""Benchmark: loading 10,000 log records in bulk vs one request per record (`make bench`).

Both ways write into the same REAL search engine (OpenSearch from tests/sim/search_engine,
started here unless FLYWHEEL_ES_URL names one), each into a fresh index with the flywheel's
mapping, with the same records (tests/sim/sample_logs.py):
  * bulk: the collection's loader, the same code path as the flywheel_logs module (module_utils
    flywheel_logs: read, validate, content ids, Bulk API `create` in batches of 500, one refresh);
  * per record: what the upstream loader does (`es.index(...)` per document, then a refresh),
    one `POST /<index>/_doc` per record over ONE kept-alive HTTP connection (the best case for
    that way: the Python Elasticsearch client pools connections too).
Reports records/s for each and the ratio (target: bulk at least 10 times faster), then reloads
the file with the bulk loader and reports how long a no-op rerun takes.

    .venv/bin/python tests/bench/bulk_load.py [--records 10000] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "collections"), str(ROOT)]

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_logs as fl  # noqa: E402
from tests.sim.sample_logs import write  # noqa: E402
from tests.sim.search_engine.engine import SearchEngine  # noqa: E402


def bulk_load(url: str, index: str, path: Path, batch_size: int) -> dict:
    client = fl.SearchClient(url)
    started = time.perf_counter()
    docs, errors = fl.prepare(fl.read_jsonl(str(path)))
    assert not errors, errors[:3]
    validated = time.perf_counter()
    created = client.create_index(index)
    stats = fl.load_docs(client, index, docs, batch_size, index_is_new=created)
    stats["seconds"] = time.perf_counter() - started
    stats["validation"] = validated - started
    stats["requests"] = client.requests_made
    stats["count"] = client.count(index)
    return stats


def per_record_load(url: str, index: str, path: Path) -> dict:
    """One index request per document, like upstream's load_data_to_elasticsearch."""
    fl.SearchClient(url).create_index(index)
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    started = time.perf_counter()
    requests = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            conn.request("POST", f"/{index}/_doc", body=line.strip().encode(), headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            requests += 1
            if resp.status not in (200, 201):
                raise SystemExit(f"per-record load failed: {resp.status} {body[:300]!r}")
    conn.request("POST", f"/{index}/_refresh", headers=headers)
    conn.getresponse().read()
    seconds = time.perf_counter() - started
    conn.close()
    return {"seconds": seconds, "requests": requests + 1, "count": fl.SearchClient(url).count(index)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dfw-bench-bulk-"))
    path = write(work / "logs.jsonl", args.records, client_id="bench")
    engine = None
    url = os.environ.get("FLYWHEEL_ES_URL")
    if not url:
        engine = SearchEngine(work / "engine")
        print("[bench] starting the search engine (OpenSearch, real) ...", flush=True)
        url = engine.start()
    try:
        info = fl.SearchClient(url).info()
        version = info.get("version", {})
        print(f"[bench] engine: {version.get('distribution', 'elasticsearch')} {version.get('number')} at {url}")
        print(f"[bench] {args.records} records, {path.stat().st_size / 1e6:.1f} MB of JSONL")
        stamp = int(time.time())
        # warm the JVM once (index creation, first bulk) so neither way pays for it
        bulk_load(url, f"bench-warmup-{stamp}", path, args.batch_size)
        one = per_record_load(url, f"bench-single-{stamp}", path)
        bulk = bulk_load(url, f"bench-bulk-{stamp}", path, args.batch_size)
        rerun = bulk_load(url, f"bench-bulk-{stamp}", path, args.batch_size)
        assert one["count"] == bulk["count"] == args.records, (one["count"], bulk["count"])
        assert rerun["created"] == 0 and rerun["existing"] == args.records and rerun["count"] == args.records
        ratio = one["seconds"] / bulk["seconds"]
        print(
            f"one request per record: {one['seconds']:7.2f} s  {args.records / one['seconds']:8.0f} records/s  "
            f"{one['requests']} requests"
        )
        print(
            f"bulk (batch {args.batch_size}):      {bulk['seconds']:7.2f} s  "
            f"{args.records / bulk['seconds']:8.0f} records/s  {bulk['requests']} requests (incl. validation)"
        )
        sending = bulk["seconds"] - bulk["validation"]
        print(
            f"  of which reading+validating {bulk['validation']:.2f} s, sending {sending:.2f} s "
            f"(sending alone: {one['seconds'] / sending:.1f}x faster than one request per record)"
        )
        print(f"no-op reload (bulk):    {rerun['seconds']:7.2f} s  created 0, existing {rerun['existing']}")
        verdict = "meets" if ratio >= 10 else "MISSES"
        print(f"ratio: bulk is {ratio:.1f}x faster ({verdict} the target of 10x)")
        if ratio < 10:
            sys.exit(1)
    finally:
        if engine:
            engine.stop()


if __name__ == "__main__":
    main()
