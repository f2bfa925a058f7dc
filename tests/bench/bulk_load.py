"""Benchmark: loading 10,000 log records in bulk vs one request per record vs the engine's ceiling
(`make bench`).

All three write into the same REAL search engine (OpenSearch from tests/sim/search_engine, started
here unless FLYWHEEL_ES_URL names one), each into a fresh index with the flywheel's mapping, with
the same records (tests/sim/sample_logs.py), measured side by side in one run:
  * per record: what the upstream loader does (`es.index(...)` per document, then a refresh), one
    `POST /<index>/_doc` per record over ONE kept-alive HTTP connection (its best case);
  * bulk: the collection's loader, the flywheel_logs module's code path (read the file, check every
    record, content ids, then BulkLoader: batches by count and bytes, batches in flight at once,
    429s retried), one refresh;
  * ceiling: a minimal client sending the same prepared NDJSON (built before the clock starts, the
    same batches) to `_bulk` over kept-alive connections, one and two at a time, and a refresh: what
    the engine can ingest; the better of the two is the ceiling.
Each line gives wall seconds, records/s and the CPU seconds spent by the client (this process) and
by the engine (its /proc counters): on a shared machine the CPU figures are the steadier ones.
The load average is printed first, and the bulk path's share of the ceiling's rate, end to end and
counting the sending alone, against the target of 70%. Exits non-zero when bulk is less than 10x
faster (wall) than one request per record.

    .venv/bin/python tests/bench/bulk_load.py [--records 10000] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "collections"), str(ROOT)]

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_log_reader as reader  # noqa: E402
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_log_loader import BulkLoader  # noqa: E402
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.search_client import SearchClient  # noqa: E402
from tests.sim.sample_logs import write  # noqa: E402
from tests.sim.search_engine.engine import SearchEngine  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall time, this process's CPU time and the engine's CPU time of one measured step."""

    def __init__(self, engine_pid: int | None):
        self.engine_pid = engine_pid

    def engine_cpu(self) -> float:
        if not self.engine_pid:
            return float("nan")
        fields = Path(f"/proc/{self.engine_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICKS

    def __enter__(self):
        self.t0, self.c0, self.e0 = time.perf_counter(), time.process_time(), self.engine_cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0
        self.engine = self.engine_cpu() - self.e0


def connection(url: str) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)


def create_index(url: str, index: str) -> None:
    SearchClient(url).create_index(index)


def per_record_load(url: str, index: str, path: Path, meter: Meter) -> dict:
    """One index request per document, like upstream's load_data_to_elasticsearch."""
    create_index(url, index)
    conn = connection(url)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    requests = 0
    with meter, open(path, encoding="utf-8") as handle:
        for line in handle:
            conn.request("POST", f"/{index}/_doc", body=line.strip().encode(), headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            requests += 1
            if resp.status not in (200, 201):
                raise SystemExit(f"per-record load failed: {resp.status} {body[:300]!r}")
        conn.request("POST", f"/{index}/_refresh", headers=headers)
        conn.getresponse().read()
    conn.close()
    return {"requests": requests + 1, "count": SearchClient(url).count(index)}


def bulk_load(url: str, index: str, path: Path, args, meter: Meter) -> dict:
    """The flywheel_logs module's path: read and check everything, then load."""
    client = SearchClient(url)
    with meter:
        started = time.perf_counter()
        docs, errors = reader.prepare_file(str(path), processes=args.processes)
        assert not errors, errors[:3]
        checked = time.perf_counter()
        created = client.create_index(index)
        indexed = time.perf_counter()
        loader = BulkLoader(client, index, args.batch_size, args.batch_bytes, args.parallel, args.compress)
        stats = loader.load(docs, index_is_new=created)
    stats.update(
        validation=checked - started,
        index_creation=indexed - checked,
        requests=client.requests_made,
        count=client.count(index),
    )
    return stats


def prepared_payloads(url: str, index: str, path: Path, args) -> list[bytes]:
    docs, _errors = reader.prepare(reader.read_jsonl(str(path)))
    loader = BulkLoader(SearchClient(url), index, args.batch_size, args.batch_bytes)
    return [loader.payload(batch) for batch in loader.batches(docs)]


def raw_bulk(url: str, index: str, payloads: list[bytes], parallel: int, meter: Meter) -> dict:
    """A minimal client: the prepared NDJSON to _bulk, `parallel` connections at once, then a refresh."""
    create_index(url, index)
    headers = {"Content-Type": "application/x-ndjson"}
    todo = list(payloads)
    lock = threading.Lock()

    def worker():
        conn = connection(url)
        while True:
            with lock:
                if not todo:
                    break
                body = todo.pop(0)
            conn.request("POST", "/_bulk", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200 or b'"errors":true' in data[:200]:
                raise SystemExit(f"raw bulk failed: {resp.status} {data[:300]!r}")
        conn.close()

    with meter:
        threads = [threading.Thread(target=worker) for _worker in range(parallel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        conn = connection(url)
        conn.request("POST", f"/{index}/_refresh")
        conn.getresponse().read()
    return {"count": SearchClient(url).count(index)}


def line(label: str, records: int, meter: Meter, extra: str = "") -> str:
    return (
        f"{label:<34} {meter.wall:7.2f} s {records / meter.wall:8.0f} rec/s   cpu: client {meter.cpu:6.2f} s, "
        f"engine {meter.engine:6.2f} s{extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-bytes", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--compress", action="store_true")
    parser.add_argument("--processes", type=int, default=2, help="processes reading and checking the file")
    args = parser.parse_args()
    print(
        f"[bench] load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
        f"{os.cpu_count()} CPUs"
    )
    work = Path(tempfile.mkdtemp(prefix="dfw-bench-bulk-"))
    path = write(work / "logs.jsonl", args.records, client_id="bench")
    engine, pid = None, None
    url = os.environ.get("FLYWHEEL_ES_URL")
    if not url:
        engine = SearchEngine(work / "engine")
        print("[bench] starting the search engine (OpenSearch, real) ...", flush=True)
        url = engine.start()
        pid = engine.proc.pid
    try:
        version = SearchClient(url).info().get("version", {})
        print(f"[bench] engine: {version.get('distribution', 'elasticsearch')} {version.get('number')} at {url}")
        print(
            f"[bench] {args.records} records, {path.stat().st_size / 1e6:.1f} MB of JSONL; bulk batches of "
            f"{args.batch_size} records / {args.batch_bytes // 1024 // 1024} MiB, {args.parallel} in flight"
            f"{', gzip' if args.compress else ''}"
        )
        stamp = int(time.time())
        # warm the JVM once (index creation, bulk, per-record) so no way pays for it
        bulk_load(url, f"bench-warmup-{stamp}", path, args, Meter(pid))
        payloads = {n: prepared_payloads(url, f"bench-raw{n}-{stamp}", path, args) for n in (1, 2)}
        one, bulk, raw1, raw2, rerun = (Meter(pid) for _meter in range(5))
        single = per_record_load(url, f"bench-single-{stamp}", path, one)
        loaded = bulk_load(url, f"bench-bulk-{stamp}", path, args, bulk)
        got1 = raw_bulk(url, f"bench-raw1-{stamp}", payloads[1], 1, raw1)
        got = raw_bulk(url, f"bench-raw2-{stamp}", payloads[2], 2, raw2)
        again = bulk_load(url, f"bench-bulk-{stamp}", path, args, rerun)
        counts = (single["count"], loaded["count"], got1["count"], got["count"])
        assert counts == (args.records,) * 4, counts
        assert again["created"] == 0 and again["existing"] == args.records
        ceiling = min(raw1, raw2, key=lambda m: m.wall)
        sending = bulk.wall - loaded["validation"] - loaded["index_creation"]
        print(line("one request per record", args.records, one, f", {single['requests']} requests"))
        print(line("bulk (the module's path)", args.records, bulk, f", {loaded['requests']} requests"))
        print(
            f"  of which reading + checking {loaded['validation']:.2f} s "
            f"({loaded['validation'] / args.records * 1e6:.0f} us per record), creating the index "
            f"{loaded['index_creation']:.2f} s, sending {sending:.2f} s"
        )
        print(line("ceiling: raw _bulk, 1 connection", args.records, raw1))
        print(line("ceiling: raw _bulk, 2 connections", args.records, raw2))
        print(line("no-op reload (bulk)", args.records, rerun, f", created 0, existing {again['existing']}"))
        ratio = one.wall / bulk.wall
        cpu_ratio = (one.cpu + one.engine) / (bulk.cpu + bulk.engine)
        print(
            f"bulk vs one request per record: {ratio:.1f}x faster (wall), {cpu_ratio:.1f}x less CPU (client + engine)"
        )
        end_to_end, sending_only = ceiling.wall / bulk.wall, ceiling.wall / sending
        print(
            f"bulk vs the engine's ceiling: {100 * end_to_end:.0f}% of the raw rate end to end, "
            f"{100 * sending_only:.0f}% counting the sending alone"
        )
        print(
            f"ceiling target (bulk at least 70% of the engine's rate): end to end "
            f"{'met' if end_to_end >= 0.7 else 'NOT met'}, sending alone {'met' if sending_only >= 0.7 else 'NOT met'} "
            f"(every record is read and checked before the first is sent: bad input writes nothing)"
        )
        verdict = "meets" if ratio >= 10 else "MISSES"
        print(f"ratio: bulk is {ratio:.1f}x faster ({verdict} the target of 10x)")
        if ratio < 10:
            sys.exit(1)
    finally:
        if engine:
            engine.stop()


if __name__ == "__main__":
    main()
