"""Benchmark: how many API requests does waiting for flywheel jobs cost? (`make bench`)

Runs the real FlywheelClient.wait against the Data Flywheel API simulator over loopback, with
the simulator's timeline and the client's sleeps on one virtual clock, so hours of job time take
a second. Reports, with the default backoff cap of 30 s:
  * one job of length T: list requests made, and how late completion was noticed
    (target: at most 10 + T/30 requests, noticed within 30 s);
  * 20 jobs waited together: requests per poll (target: 1, whatever the number of jobs).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "collections"), str(Path(__file__).resolve().parents[2])]

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import FlywheelClient  # noqa: E402
from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestClient  # noqa: E402
from tests.sim.flywheel_api.simulator import start  # noqa: E402


class VirtualClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def one_job(length: float) -> tuple[int, float]:
    clock = VirtualClock()
    unit = length / 10  # 2 NIMs: 10 units
    sim = start(unit_seconds=unit, clock=clock)
    try:
        client = FlywheelClient(RestClient(sim.url), sleep=clock.sleep, clock=clock)
        job_id, _attempts = client.create_job("bench", "one")
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


def main() -> None:
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


if __name__ == "__main__":
    main()
