#!/usr/bin/env python3
"""Start/stop the tests' search engine: a REAL OpenSearch node on 127.0.0.1 (not a simulator).

    engine.py build            build it from Maven Central if not cached (tests/sim/search_engine/build.sh)
    engine.py up [--name N]    start it in the background, print `export FLYWHEEL_ES_URL=http://127.0.0.1:PORT`
    engine.py down [--name N]  stop it
    engine.py status           list running engines

It serves the Elasticsearch REST APIs the collection uses (index creation with a strict mapping,
_bulk, _count, _delete_by_query, _search). Tests start their own with `SearchEngine(home).start()`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(
    os.environ.get("DFW_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dataflywheel-blueprint"
)


def version() -> str:
    for line in (HERE.parent / "versions.env").read_text().splitlines():
        if line.startswith("OPENSEARCH_VERSION="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("OPENSEARCH_VERSION is missing from tests/sim/versions.env")


def dist_dir() -> Path:
    return CACHE / "search-engine" / f"opensearch-{version()}"


def built() -> bool:
    return (dist_dir() / ".complete").exists()


def build() -> None:
    """Build from the registries if not cached (about a minute cold, nothing warm)."""
    if not built():
        subprocess.run(["bash", str(HERE / "build.sh")], check=True)  # noqa: S603,S607 - our own script


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class SearchEngine:
    """One OpenSearch node in its own JVM, data under `home`, HTTP on a free loopback port."""

    def __init__(self, home: Path, heap: str = "512m") -> None:
        self.home = Path(home)
        self.heap = heap
        self.proc: subprocess.Popen | None = None
        self.url = ""

    @property
    def log_path(self) -> Path:
        return self.home / "engine.log"

    def command(self) -> list[str]:
        dist = dist_dir()
        classpath = f"{dist / 'search-engine.jar'}{os.pathsep}{dist / 'lib' / '*'}"
        return [
            "java",
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",  # one GC thread: the machine may have 2 cores shared with others
            "-Djava.awt.headless=true",
            "-Dlog4j2.formatMsgNoLookups=true",
            "-cp",
            classpath,
            "dfw.searchengine.Main",
            "--home",
            str(self.home / "node"),
            "--http-port",
            "0",
            "--ready-file",
            str(self.home / "url"),
        ]

    def start(self, timeout: float = 180, detach: bool = False) -> str:
        build()
        self.home.mkdir(parents=True, exist_ok=True)
        ready = self.home / "url"
        ready.unlink(missing_ok=True)
        log = open(self.log_path, "w")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(  # noqa: S603 - our own launcher
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the search engine exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the search engine did not listen within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)
        self.url = ready.read_text().strip()
        self.wait_green(deadline)
        return self.url

    def wait_green(self, deadline: float) -> None:
        """Cluster health yellow or green (a single node: yellow is normal for replicated indices)."""
        while True:
            try:
                with urllib.request.urlopen(self.url + "/_cluster/health", timeout=5) as resp:  # noqa: S310
                    if json.load(resp)["status"] in ("green", "yellow"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the search engine is not healthy:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def state_dir(name: str) -> Path:
    return CACHE / "search-engine" / "run" / name


def up(name: str) -> str:
    """Start engine `name` in the background unless it runs; its URL."""
    state = state_dir(name)
    state_file = state / "engine.json"
    if state_file.exists():
        info = json.loads(state_file.read_text())
        if alive(info["pid"]):
            return info["url"]
    engine = SearchEngine(state)
    started = time.monotonic()
    url = engine.start(detach=True)
    state_file.write_text(json.dumps({"pid": engine.proc.pid, "url": url}))
    print(
        f"[search-engine] OpenSearch {version()} (real) on {url}, pid {engine.proc.pid}, "
        f"ready in {time.monotonic() - started:.0f} s; log {engine.log_path}",
        file=sys.stderr,
    )
    return url


def down(name: str) -> None:
    state_file = state_dir(name) / "engine.json"
    if not state_file.exists():
        return
    pid = json.loads(state_file.read_text())["pid"]
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(150):
            if not alive(pid):
                break
            time.sleep(0.2)
    state_file.unlink()


def status() -> None:
    run = CACHE / "search-engine" / "run"
    for state_file in sorted(run.glob("*/engine.json")) if run.exists() else []:
        info = json.loads(state_file.read_text())
        print(f"{state_file.parent.name}\t{info['url']}\t{'running' if alive(info['pid']) else 'stopped'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["build", "up", "down", "status"])
    parser.add_argument("--name", default="demo", help="which engine (state under the cache's search-engine/run/NAME)")
    args = parser.parse_args()
    if args.action == "build":
        build()
    elif args.action == "up":
        print(f"export FLYWHEEL_ES_URL={up(args.name)}")
    elif args.action == "down":
        down(args.name)
    else:
        status()


if __name__ == "__main__":
    main()
