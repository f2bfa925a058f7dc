#!/usr/bin/env python3
"""Start/stop the services the local inventory uses: the service SIMULATORS (not the real
services) and the REAL search engine that holds the flywheel's log index.

    services.py up      start the search engine (OpenSearch, tests/sim/search_engine) and the Data
                        Flywheel API simulator (loopback), write the demo's log file, package the
                        FIXTURE charts (stand-ins for NVIDIA's NGC charts), print `export
                        FLYWHEEL_API_URL=... FLYWHEEL_ES_URL=... FLYWHEEL_DEMO_LOGS=... FLYWHEEL_FIXTURE_CHARTS=...`
    services.py down    stop them

The demo is the seeds' walkthrough: workload primary_assistant for clients aiva-1, aiva-2 and
aiva-3 with 300, 500 and 1000 records, so scores improve with more data. The records are loaded
by the run stage (flywheel_logs) from FLYWHEEL_DEMO_LOGS into the search engine, and the API
simulator counts each job's records there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: make `tests.sim...` importable
CACHE = Path(
    os.environ.get("DFW_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dataflywheel-blueprint"
)
# next to the clusters of this checkout when DFW_CLUSTERS_DIR keeps parallel checkouts apart
STATE = Path(os.environ["DFW_CLUSTERS_DIR"]) / "services" if os.environ.get("DFW_CLUSTERS_DIR") else CACHE / "services"
DEMO = {
    "unit_seconds": 0.5,
    "workloads": {
        "primary_assistant/aiva-1": {"records": 300},
        "primary_assistant/aiva-2": {"records": 500},
        "primary_assistant/aiva-3": {"records": 1000},
    },
}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def configure(url: str) -> None:
    """(Re)apply the demo's workloads; the simulator answers within a few tries after start."""
    body = json.dumps(DEMO).encode()
    req = urllib.request.Request(url + "/_sim/config", data=body, headers={"Content-Type": "application/json"})
    for attempt in range(50):
        try:
            urllib.request.urlopen(req, timeout=5).read()  # noqa: S310 - loopback simulator
            return
        except OSError:
            if attempt == 49:
                raise
            time.sleep(0.1)


def search_engine() -> str:
    """The demo's search engine (started once, kept running like the simulator); its URL."""
    from tests.sim.search_engine import engine  # noqa: PLC0415 - only up/down need the JVM launcher

    return engine.up("demo")


def demo_logs() -> Path:
    """One file of 1000 records; the run stage loads it as aiva-1/2/3 (first 300/500/1000)."""
    from tests.sim.sample_logs import write  # noqa: PLC0415

    path = STATE / "demo-logs" / "aiva_primary_assistant.jsonl"
    if not path.exists():
        write(path, 1000, workload_id="primary_assistant", client_id="aiva")
    return path


def fixture_charts() -> Path:
    """The FIXTURE charts (tests/fixtures/charts, shaped like NVIDIA's charts, which live behind NGC)
    packaged with real helm (needs helm on PATH: `cluster.py env`); once per content of the charts."""
    source = ROOT / "tests" / "fixtures" / "charts"
    digest = hashlib.sha256()
    for path in sorted(source.rglob("*")):
        # `helm dependency build` writes the subchart .tgz and Chart.lock into the source tree
        if path.is_file() and path.suffix != ".tgz" and path.name != "Chart.lock":
            digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    out = STATE / f"fixture-charts-{digest.hexdigest()[:12]}"
    if not (out / "index.yaml").exists():
        subprocess.run(  # noqa: S603 - our own packaging script
            [sys.executable, str(ROOT / "tests" / "fixtures" / "package_charts.py"), str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return out


def up() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    print(f"export FLYWHEEL_FIXTURE_CHARTS={fixture_charts()}")
    es_url = search_engine()
    print(f"export FLYWHEEL_ES_URL={es_url}")
    print(f"export FLYWHEEL_DEMO_LOGS={demo_logs()}")
    state_file = STATE / "flywheel-api.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if alive(state["pid"]) and state.get("es_url") == es_url:
            configure(state["url"])
            print(f"export FLYWHEEL_API_URL={state['url']}")
            return
        if alive(state["pid"]):  # started for another search engine
            os.kill(state["pid"], signal.SIGTERM)
    log = open(STATE / "flywheel-api.log", "w")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(  # noqa: S603 - our own simulator
        [
            sys.executable,
            "-u",
            "-m",
            "tests.sim.flywheel_api.simulator",
            "--port",
            "0",
            "--unit-seconds",
            str(DEMO["unit_seconds"]),
            "--es-url",
            es_url,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline().strip()  # "... listening on http://127.0.0.1:PORT"
    url = line.rsplit(" ", 1)[-1]
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit(f"the Data Flywheel API simulator did not start: {line!r}; see {STATE}/flywheel-api.log")
    configure(url)
    state_file.write_text(json.dumps({"pid": proc.pid, "url": url, "es_url": es_url}))
    print(f"export FLYWHEEL_API_URL={url}")
    print(f"[services] Data Flywheel API SIMULATOR on {url} (pid {proc.pid})", file=sys.stderr)


def down() -> None:
    from tests.sim.search_engine import engine  # noqa: PLC0415

    engine.down("demo")
    state_file = STATE / "flywheel-api.json"
    if not state_file.exists():
        return
    pid = json.loads(state_file.read_text())["pid"]
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
    state_file.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"])
    args = parser.parse_args()
    up() if args.action == "up" else down()


if __name__ == "__main__":
    main()
