"""Benchmark: loading 10,000 log records in bulk vs one request per record vs the engine's ceiling
(`make bench`).

All three write into the same REAL search engine (OpenSearch from tests/sim/search_engine, started
here unless FLYWHEEL_ES_URL names one), each into a fresh index with the flywheel's mapping, with
the same records (tests/sim/sample_logs.py), measured side by side in one run:
  * per record: what the upstream loader does (`es.index(...)` per document, then a refresh), one
    `POST /<index>/_doc` per record over ONE kept-alive HTTP connection (its best case);
  * bulk: the collection's loader, the flywheel_logs module's code path (look at the index, read the
    file and check every record, content ids of the index's scheme, create the index, then
    BulkLoader: batches by count and bytes, batches in flight at once, 429s retried), one refresh;
  * ceiling: a minimal client sending the same prepared NDJSON (built before the clock starts, the
    same batches) to `_bulk` over kept-alive connections, one and two at a time, and a refresh: what
    the engine can ingest; the better of the two is the ceiling.
Bulk and ceiling alternate, each into a fresh index, --rounds times; the best of each is compared
(every run is printed), the median bulk run against one request per record.
Each line gives wall seconds, records/s and the CPU seconds spent by the client (this process and
the checker processes it forks) and by the engine (its /proc counters): on a shared machine the CPU
figures are the steadier ones.
The load average is printed first, and the bulk path's share of the ceiling's rate, end to end and
counting the sending alone, against the target of 70%. Exits non-zero when bulk is less than 10x
faster (wall) than one request per record.

    .venv/bin/python tests/bench/bulk_load.py [--records 10000] [--batch-size 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
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

    @staticmethod
    def client_cpu() -> float:
        """This process's CPU time and that of its ended children (the forked checkers)."""
        times = os.times()
        return time.process_time() + times.children_user + times.children_system

    def __enter__(self):
        self.t0, self.c0, self.e0 = time.perf_counter(), self.client_cpu(), self.engine_cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.cpu = self.client_cpu() - self.c0
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
    """The flywheel_logs module's path: look at the index (its id scheme), read and check everything,
    create the index when there is none, then load."""
    client = SearchClient(url)
    with meter:
        started = time.perf_counter()
        mapping = client.mapping(index) if client.index_exists(index) else None
        scheme = reader.SCHEME_SOURCE if mapping is None else reader.scheme_of(mapping)
        docs, errors = reader.prepare_file(str(path), processes=args.processes, scheme=scheme)
        assert not errors, errors[:3]
        checked = time.perf_counter()
        created = mapping is None and client.create_index(index, reader.index_body(scheme))
        indexed = time.perf_counter()
        loader = BulkLoader(client, index, args.batch_size, args.batch_bytes, args.parallel, args.compress)
        stats = loader.load(docs, index_is_new=created)
    stats.update(
        validation=checked - started,
        index_creation=indexed - checked,
        requests=client.requests_made,
        count=client.count(index),
        scheme=scheme,
    )
    return stats


def prepared_payloads(url: str, index: str, docs: list, args) -> list[bytes]:
    """The module's Bulk API requests for `docs` into `index` (built before the clock starts)."""
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


def drop(url: str, index: str) -> None:
    """Delete a measured index, so the engine carries no more data into the next measurement than needed."""
    SearchClient(url).request("DELETE", f"/{index}")


def spread(walls) -> str:
    walls = sorted(walls)
    return ", ".join(f"{w:.2f}" for w in walls) + f" s (spread {walls[-1] - walls[0]:.2f} s)"


def line(label: str, records: int, meter: Meter, extra: str = "") -> str:
    return (
        f"{label:<44} {meter.wall:7.2f} s {records / meter.wall:8.0f} rec/s   cpu: client {meter.cpu:6.2f} s, "
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
    parser.add_argument("--rounds", type=int, default=3, help="bulk and ceiling runs, alternating")
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
        docs, _errors = reader.prepare_file(str(path), processes=1, scheme=reader.SCHEME_SOURCE)
        one = Meter(pid)
        single = per_record_load(url, f"bench-single-{stamp}", path, one)
        assert single["count"] == args.records, single
        drop(url, f"bench-single-{stamp}")
        # bulk and the ceiling alternate, each into a fresh index, `rounds` times: the machine is shared and
        # the engine merges segments in the background, so one of each side by side can mislead
        bulks, raws = [], {1: [], 2: []}
        for n in range(args.rounds):
            for side in ("bulk", "raw") if n % 2 == 0 else ("raw", "bulk"):
                if side == "bulk":
                    meter = Meter(pid)
                    loaded = bulk_load(url, f"bench-bulk{n}-{stamp}", path, args, meter)
                    assert loaded["count"] == args.records and loaded["created"] == args.records, loaded
                    bulks.append((meter, loaded))
                    if n < args.rounds - 1:
                        drop(url, f"bench-bulk{n}-{stamp}")
                    continue
                for connections in (1, 2):
                    meter = Meter(pid)
                    index = f"bench-raw{connections}-{n}-{stamp}"
                    payloads = prepared_payloads(url, index, docs, args)
                    got = raw_bulk(url, index, payloads, connections, meter)
                    assert got["count"] == args.records, got
                    raws[connections].append(meter)
                    drop(url, index)
        rerun = Meter(pid)
        again = bulk_load(url, f"bench-bulk{args.rounds - 1}-{stamp}", path, args, rerun)
        assert again["created"] == 0 and again["existing"] == args.records
        bulk, loaded = min(bulks, key=lambda pair: pair[0].wall)
        median_bulk = sorted(m.wall for m, _l in bulks)[len(bulks) // 2]
        raw1, raw2 = (min(raws[c], key=lambda m: m.wall) for c in (1, 2))
        ceiling = min(raw1, raw2, key=lambda m: m.wall)
        sending = bulk.wall - loaded["validation"] - loaded["index_creation"]
        print(line("one request per record", args.records, one, f", {single['requests']} requests"))
        print(
            line(
                f"bulk (the module's path), best of {args.rounds}",
                args.records,
                bulk,
                f", {loaded['requests']} requests",
            )
        )
        print(f"  all runs: {spread(m.wall for m, _l in bulks)}")
        print(
            f"  of which looking at the index, reading + checking {loaded['validation']:.2f} s "
            f"({loaded['validation'] / args.records * 1e6:.0f} us per record, wall), creating the index "
            f"{loaded['index_creation']:.2f} s, sending {sending:.2f} s; client CPU "
            f"{bulk.cpu / args.records * 1e6:.0f} us per record all included; document ids: {loaded['scheme']}"
        )
        print(line(f"ceiling: raw _bulk, 1 connection, best of {args.rounds}", args.records, raw1))
        print(f"  all runs: {spread(m.wall for m in raws[1])}")
        print(line(f"ceiling: raw _bulk, 2 connections, best of {args.rounds}", args.records, raw2))
        print(f"  all runs: {spread(m.wall for m in raws[2])}")
        print(line("no-op reload (bulk)", args.records, rerun, f", created 0, existing {again['existing']}"))
        ratio = one.wall / median_bulk
        cpu_ratio = (one.cpu + one.engine) / (bulk.cpu + bulk.engine)
        print(
            f"bulk vs one request per record: {ratio:.1f}x faster (wall, the median bulk run), "
            f"{cpu_ratio:.1f}x less CPU (client + engine)"
        )
        end_to_end, sending_only = ceiling.wall / bulk.wall, ceiling.wall / sending
        print(
            f"bulk vs the engine's ceiling (best against best): {100 * end_to_end:.0f}% of the raw rate end to end, "
            f"{100 * sending_only:.0f}% counting the sending alone"
        )
        print(
            f"ceiling target (bulk at least 70% of the engine's rate): end to end "
            f"{'met' if end_to_end >= 0.7 else 'NOT met'}, sending alone {'met' if sending_only >= 0.7 else 'NOT met'} "
            f"(every record is read and checked before the first is sent: bad input writes nothing)"
        )
        print(
            f"[bench] load average at the end {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
            f"{os.getloadavg()[2]:.2f}"
        )
        verdict = "meets" if ratio >= 10 else "MISSES"
        print(f"ratio: bulk is {ratio:.1f}x faster ({verdict} the target of 10x)")
        if ratio < 10:
            sys.exit(1)
    finally:
        if engine:
            engine.stop()
        shutil.rmtree(work, ignore_errors=True)  # the file and the engine's data: tens of MB per run


if __name__ == "__main__":
    main()
