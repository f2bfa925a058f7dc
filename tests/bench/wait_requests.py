"""Benchmark: how many API requests does waiting for flywheel jobs cost? (`make bench`)

Runs the real FlywheelClient.wait against the Data Flywheel API simulator over loopback, with
the simulator's timeline and the client's sleeps on one virtual clock, so hours of job time take
a second. Reports, with the default backoff cap of 30 s:
  * one job of length T: requests made, and how late completion was noticed
    (target: at most 10 + T/30 requests, noticed within 30 s);
  * 20 jobs waited together: requests per poll (target: 1, whatever the number of jobs);
  * the flywheel_run role (ansible-playbook, real time) starting and waiting for one job of 124 s:
    every request it sends to the API, its progress lines (target: one a minute) and how late it
    noticed completion, plus the CPU seconds ansible spent (`--role-seconds 0` skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "collections"), str(Path(__file__).resolve().parents[2])]

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import FlywheelClient  # noqa: E402
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient  # noqa: E402
from tests.sim.flywheel_api.simulator import VirtualClock, start  # noqa: E402


def one_job(length: float) -> tuple[int, float]:
    clock = VirtualClock()
    unit = length / 10  # 2 NIMs: 10 units
    sim = start(unit_seconds=unit, clock=clock)
    try:
        client = FlywheelClient(RestClient(sim.url), sleep=clock.sleep, clock=clock)
        job_id = client.create_job("bench", "one")[0]
        before = client.rest.requests_made
        client.wait([job_id], timeout=length * 10, sleep_cap=30)
        return client.rest.requests_made - before, clock.t - length
    finally:
        sim.shutdown()


def many_jobs(count: int, length: float) -> tuple[int, int]:
    clock = VirtualClock()
    sim = start(unit_seconds=length / 10, clock=clock)
    try:
        client = FlywheelClient(RestClient(sim.url), sleep=clock.sleep, clock=clock)
        ids = [client.create_job(f"bench-{i}", "many")[0] for i in range(count)]
        polls = []
        before = client.rest.requests_made
        client.wait(ids, timeout=length * count * 10, sleep_cap=30, progress=lambda latest: polls.append(1))
        return client.rest.requests_made - before, len(polls)
    finally:
        sim.shutdown()


def role_wait(length: float) -> dict:
    """The flywheel_run role, real time, one job of `length` seconds (2 NIMs: 10 units)."""
    root = Path(__file__).resolve().parents[2]
    sim = start(unit_seconds=length / 10)
    work = Path(tempfile.mkdtemp(prefix="dfw-bench-wait-"))
    playbook = work / "run.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: dataflywheel.blueprint.flywheel_run\n"
    )
    variables = {
        "flywheel_run_api_url": sim.url,
        "flywheel_run_jobs": [{"workload_id": "bench", "client_id": "role"}],
        "flywheel_run_artifacts_dir": str(work / "reports"),
        "flywheel_run_progress_interval": 60,
        "flywheel_run_wait_sleep": 30,
    }
    env = {**os.environ, "ANSIBLE_CONFIG": str(root / "ansible.cfg"), "ANSIBLE_LOCALHOST_WARNING": "false"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-e", json.dumps(variables)],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            check=False,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with urllib.request.urlopen(sim.url + "/_sim/requests", timeout=10) as resp:  # noqa: S310 - loopback
            log = json.loads(resp.read())["requests"]
    finally:
        sim.shutdown()
    if proc.returncode != 0:
        raise SystemExit(f"the role failed:\n{proc.stdout[-3000:]}")
    posted = next(t for t, key in log if key == "POST /api/jobs")
    stamps = [int(x) for x in re.findall(r"\[(\d+)s\] bench role", proc.stdout)]
    return {
        "requests": len(log),
        "wait_requests": len([1 for t, _key in log if t > posted]),
        "noticed": log[-1][0] - (posted + length),
        "progress": stamps,
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role-seconds", type=float, default=124, help="job length for the role run (0: skip it)")
    args = parser.parse_args()
    print(f"[bench] load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    print("one job of length T (backoff cap 30 s):")
    print(f"  {'T (s)':>8} {'requests':>9} {'target':>7} {'noticed after (s)':>18}")
    for length in (75, 615, 3625, 14410):
        requests, late = one_job(length)
        target = 10 + length / 30
        flag = "ok" if requests <= target and late <= 30 else "MISSED"
        print(f"  {length:>8} {requests:>9} {target:>7.0f} {late:>18.1f}  {flag}")
    print("jobs waited together (each 600 s, run one at a time by the API):")
    for count in (1, 5, 20):
        requests, polls = many_jobs(count, 600)
        print(f"  {count:>3} jobs: {requests} requests in {polls} polls = {requests / polls:.2f} per poll")
    if args.role_seconds:
        length = args.role_seconds
        role = role_wait(length)
        target = 10 + length / 30
        gaps = [b - a for a, b in zip(role["progress"], role["progress"][1:])]
        ok = role["requests"] <= target and role["noticed"] <= 30 and all(g <= 75 for g in gaps)
        print(f"the flywheel_run role, one job of {length:.0f} s (real time, progress every 60 s, backoff cap 30 s):")
        print(
            f"  {role['requests']} requests in all ({role['wait_requests']} after the POST), target {target:.0f}; "
            f"completion noticed after {role['noticed']:.1f} s; progress lines at {role['progress']} s"
        )
        print(f"  ansible-playbook: {role['wall']:.1f} s wall, {role['cpu']:.1f} CPU s  {'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
