"""The Data Flywheel API SIMULATOR against upstream's recorded answers.

Replays every exchange of ../shared/reference/upstream/flywheel-api-contract.json (requests sent to
upstream's own FastAPI app, v0.3.1) against tests/sim/flywheel_api, in the recorded order, on a
virtual clock: each job named in `job_workload` is created here and driven to the recorded phase
(a job's GET is repeated while the clock moves until the answer matches, and fails once the job
has passed that phase), then status code, content-type/location/allow and the body are compared.
Bodies must have the same keys in the same order and the same value types; values are compared
too, with the file's placeholders (`notes.placeholders`) as wildcards: `<timestamp>` (naive UTC,
millisecond precision), `<float>` / `<int>` (a non-zero number of that type; 0, 0.0 and 100.0 are
literal), `<unix_ts>`, and the `{job_id}` family substituted with the ids this replay got. Values the
recording's stand-in worker made up (scores, names, failure texts after upstream's prefixes) match
because the simulator plays the same stand-in; they are not claims about upstream.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse

import pytest

from tests import upstream
from tests.sim.flywheel_api.simulator import VirtualClock, start

UNIT = 1.0  # virtual seconds per timeline unit
STEP = 0.05  # virtual seconds between two polls of a job's phase
MAX_POLLS = 800  # a job lasts 10 units: 200 polls
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}000)?$")
TERMINAL = ("completed", "failed", "cancelled")
# What the recording's stand-in was told to do with some workloads (notes.produced_by_stand_in_worker):
# the simulator's scenarios that play the same failures.
SETUP = {
    "rec-ds-fail": {"records": 10},
    "rec-nim-fail": {"scenario": "nim_failed"},
    "rec-cust-fail": {"scenario": "customization_failed"},
    "rec-eval-fail": {"scenario": "eval_failed"},
}
BROKER_DOWN = "post_jobs_broker_unreachable"
# exchanges sent only once their job is in a given state (the recorder sent them at that moment)
SEND_WHEN = {
    "cancel_job_during_dataset_creation": lambda job: job["status"] == "running" and job["num_records"] == 0,
}


# ------------------------------------------------------------------ comparison
def substitute(value, ids: dict):
    if isinstance(value, str):
        for key, text in ids.items():
            value = value.replace("{%s}" % key, text)
        return value
    if isinstance(value, list):
        return [substitute(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, ids) for k, v in value.items()}
    return value


PLACEHOLDERS = {
    "<timestamp>": (lambda v: isinstance(v, str) and bool(TIMESTAMP.match(v)), "a naive millisecond timestamp"),
    "<float>": (lambda v: isinstance(v, float) and v != 0.0, "a non-zero float"),
    "<int>": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v != 0, "a non-zero int"),
}


def placeholder_differences(expected: str, actual, where: str) -> list[str]:
    if expected in PLACEHOLDERS:
        check, what = PLACEHOLDERS[expected]
        return [] if check(actual) else [f"{where}: {actual!r} is not {what}"]
    pattern = re.escape(expected).replace(re.escape("<unix_ts>"), r"\d{9,11}")
    ok = isinstance(actual, str) and re.fullmatch(pattern, actual)
    return [] if ok else [f"{where}: {actual!r} does not match {expected!r}"]


def container_differences(expected, actual, where: str) -> list[str]:
    """Dicts: the same keys in the same order; lists: the same length; then each value."""
    if isinstance(expected, dict):
        if list(expected) != list(actual):
            return [f"{where}: keys {list(actual)}, recorded {list(expected)}"]
        return [d for key in expected for d in differences(expected[key], actual[key], f"{where}.{key}")]
    if len(expected) != len(actual):
        return [f"{where}: {len(actual)} items, recorded {len(expected)}"]
    return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in differences(e, a, f"{where}[{i}]")]


def differences(expected, actual, where="body") -> list[str]:
    """How `actual` differs from the recorded `expected` (placeholders as wildcards)."""
    if isinstance(expected, str) and (expected in PLACEHOLDERS or "<unix_ts>" in expected):
        return placeholder_differences(expected, actual, where)
    if type(expected) is not type(actual):
        return [f"{where}: {type(actual).__name__} {actual!r}, recorded {type(expected).__name__} {expected!r}"]
    if isinstance(expected, (dict, list)):
        return container_differences(expected, actual, where)
    return [] if expected == actual else [f"{where}: {actual!r}, recorded {expected!r}"]


# ------------------------------------------------------------------ replay
class Replay:
    def __init__(self, contract: dict):
        self.contract = contract
        self.exchanges = contract["exchanges"]
        completed = next(e for e in self.exchanges if e["name"] == "get_job_completed")["body"]
        self.clock = VirtualClock()
        self.sim = start(
            unit_seconds=UNIT,
            nims=[n["model_name"] for n in completed["nims"]],
            clock=self.clock,
            cancel_delay=0.1 * UNIT,
            delete_delay=0.6 * UNIT,
        )
        judge = completed["llm_judge"]
        self.control({"judge": {"model_name": judge["model_name"], "type": judge["type"]}, "workloads": SETUP})
        parts = urllib.parse.urlsplit(self.sim.url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self.ids: dict[str, str] = {}
        self.results: dict[str, list[str]] = {}
        self.polls: dict[str, float] = {}
        listed = next(e for e in self.exchanges if e["name"] == "list_jobs_several")["body"]["jobs"]
        targeted = {e.get("job_workload") for e in self.exchanges if e["path"].endswith("/cancel")}
        # jobs the recorder cancelled off the record so they would not queue behind each other
        self.housekeeping = {
            j["workload_id"]
            for j in listed
            if j["status"] == "cancelled" and not j["datasets"] and j["workload_id"] not in targeted
        }

    def control(self, body):
        conn = http.client.HTTPConnection(*urllib.parse.urlsplit(self.sim.url).netloc.split(":"), timeout=10)
        conn.request("POST", "/_sim/config", body=json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        resp.read()
        conn.close()

    def send(self, method, path, raw=None, headers=None):
        self.conn.request(method, path, body=raw, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def placeholders(self, workload: str | None) -> dict:
        ids = {"unknown_id": "ffffffffffffffffffffffff", "invalid_id": "not-an-id", "base_url": self.sim.url}
        job_id = self.ids.get(workload) if workload is not None else None
        if job_id:
            ids.update(job_id=job_id, job_id_upper=job_id.upper(), job_id_last8=job_id[-8:])
        return ids

    def job(self, workload: str) -> dict:
        status, _headers, data = self.send("GET", f"/api/jobs/{self.ids[workload]}")
        return json.loads(data) if status == 200 else {"status": "gone", "finished_at": "gone"}

    def wait_for(self, workload: str, condition) -> None:
        for _poll in range(MAX_POLLS):
            if condition(self.job(workload)):
                return
            self.clock.t += STEP
        raise AssertionError(f"job {workload} never reached the state its next exchange needs")

    def request_of(self, ex: dict, ids: dict):
        headers = dict(ex.get("request_headers") or {})
        if "request_body_raw" in ex:
            raw = ex["request_body_raw"].encode()
        elif ex.get("request_body") is not None or "content-type" in headers:
            raw = json.dumps(ex["request_body"]).encode()
            headers.setdefault("content-type", "application/json")
        else:
            raw = None
        return substitute(ex["path"], ids), raw, headers

    def compare(self, ex: dict, status, headers, data, ids) -> list[str]:
        problems = []
        if status != ex["status"]:
            problems.append(f"status {status}, recorded {ex['status']}")
        for key, value in (ex.get("headers") or {}).items():
            if headers.get(key) != substitute(value, ids):
                problems.append(f"header {key}: {headers.get(key)!r}, recorded {substitute(value, ids)!r}")
        if ex.get("body") is None:
            text = ex.get("body_text", "")
            if data.decode() != text:
                problems.append(f"body {data[:200]!r}, recorded {text!r}")
            return problems
        try:
            body = json.loads(data)
        except ValueError:
            return problems + [f"body is not JSON: {data[:200]!r}"]
        if ex["name"] == "get_openapi":
            return problems + self.openapi_differences(ex, body)
        if ex["name"].startswith("list_jobs"):
            expected = {"jobs": [substitute(j, self.placeholders(j["workload_id"])) for j in ex["body"]["jobs"]]}
        else:
            if ids.get("job_id") == "{job_id}" and ex["body"].get("id") == "{job_id}":  # a new job's id
                new = body.get("id")
                if not (isinstance(new, str) and re.fullmatch(r"[0-9a-f]{24}", new)):
                    problems.append(f"id {new!r} is not a lower-case 24-hex ObjectId")
                ids = dict(ids, job_id=str(new))
            expected = substitute(ex["body"], ids)
        return problems + differences(expected, body)

    @staticmethod
    def openapi_differences(ex, body) -> list[str]:
        summary = ex["openapi_summary"]
        got = {
            "keys": sorted(body),
            "paths": {p: sorted(m.upper() for m in ops) for p, ops in body.get("paths", {}).items()},
            "schemas": sorted(body.get("components", {}).get("schemas", {})),
        }
        want = {"keys": sorted(ex["body"]), "paths": summary["paths"], "schemas": summary["schemas"]}
        return [f"openapi {k}: {got[k]}, recorded {want[k]}" for k in want if got[k] != want[k]]

    def before(self, ex: dict) -> None:
        """Drive the job to where the recorder was when it sent this exchange."""
        workload = ex.get("job_workload")
        if workload is None or workload not in self.ids or ex["method"] == "GET":
            return
        if ex["name"] in SEND_WHEN:
            self.wait_for(workload, SEND_WHEN[ex["name"]])
        elif ex["status"] == 404:
            self.wait_for(workload, lambda job: job["status"] == "gone")
        elif (ex["status"] == 400 and "finished" in str(ex["body"])) or (
            ex["method"] == "DELETE" and ex["status"] == 200
        ):
            self.wait_for(workload, lambda job: job["finished_at"] is not None)

    def play(self, ex: dict) -> None:
        self.before(ex)
        if ex["name"] == BROKER_DOWN:
            self.control({"broker_down": True})
        ids = self.placeholders(ex.get("job_workload"))
        path, raw, headers = self.request_of(ex, ids)
        if ex["method"] == "POST" and ex["path"] == "/api/jobs":
            ids["job_id"] = "{job_id}"  # known from the answer only
        polls = 0
        while True:
            status, got_headers, data = self.send(ex["method"], path, raw, headers)
            problems = self.compare(ex, status, got_headers, data, ids)
            if not problems or ex["method"] != "GET" or polls >= MAX_POLLS or self.passed(ex, data):
                break
            polls += 1
            self.clock.t += STEP
        self.polls[ex["name"]] = polls * STEP
        self.results[ex["name"]] = problems
        if ex["name"] == BROKER_DOWN:
            self.control({"broker_down": False})
        if ex["method"] == "POST" and ex["path"] == "/api/jobs" and ex["status"] in (200, 500):
            self.remember(ex, data)

    def passed(self, ex, data) -> bool:
        """The job went past the recorded phase (terminal while the recording is not): stop polling."""
        if not ex["path"].startswith("/api/jobs/{"):
            return False
        recorded = (ex.get("body") or {}).get("status")
        if recorded is None or recorded in TERMINAL:
            return False
        try:
            return json.loads(data).get("status") in TERMINAL
        except (ValueError, AttributeError):
            return False

    def remember(self, ex: dict, data: bytes) -> None:
        request = ex.get("request_body")
        if request is None and "request_body_raw" in ex:
            request = json.loads(ex["request_body_raw"])
        workload = ex.get("job_workload") if ex.get("job_workload") is not None else request["workload_id"]
        if ex["status"] == 200:
            try:
                self.ids[workload] = json.loads(data)["id"]
            except (ValueError, KeyError, TypeError):
                return  # a wrong answer, already reported; this job's later exchanges fail too
        else:  # the POST failed after the insert: the job is found in the list, as a client would
            _s, _h, listed = self.send("GET", "/api/jobs")
            mine = [j for j in json.loads(listed)["jobs"] if j["workload_id"] == workload]
            if not mine:
                return
            self.ids[workload] = mine[-1]["id"]
        if workload in self.housekeeping:
            self.send("POST", f"/api/jobs/{self.ids[workload]}/cancel")

    def run(self) -> Replay:
        try:
            for ex in self.exchanges:
                self.play(ex)
        finally:
            self.conn.close()
            self.sim.shutdown()
        return self


@pytest.fixture(scope="module")
def replay() -> Replay:
    return Replay(upstream.api_contract()).run()


def test_every_recorded_exchange_gets_the_recorded_answer(replay):
    assert len(replay.results) == len(replay.exchanges) == len({e["name"] for e in replay.exchanges})
    failed = {name: problems for name, problems in replay.results.items() if problems}
    report = "\n".join(f"{name}: " + "; ".join(problems[:4]) for name, problems in failed.items())
    assert not failed, f"{len(failed)} of {len(replay.results)} exchanges differ from upstream's:\n{report}"


def test_the_phases_come_in_upstream_order(replay):
    """Each phase of the recorded job is reached after the one before it and before the job ends:
    polling never went back in time, so reaching them in file order proves the order."""
    phases = [e["name"] for e in replay.exchanges if e["name"].startswith("get_job_phase_")]
    assert phases == sorted(phases, key=lambda n: replay.contract["observed"]["phase_first_seen_s"][n])
    assert all(not replay.results[name] for name in phases + ["get_job_completed"])
    assert sum(replay.polls[name] for name in phases) > 0  # the clock had to move to reach them


def test_differences_is_strict():
    """The comparison itself fails on what it must: a key, a type, a literal, a placeholder."""
    recorded = {"a": 1, "b": "<timestamp>", "c": "<float>", "d": 0.0, "e": "x-<unix_ts>"}
    good = {"a": 1, "b": "2026-12-04T11:50:25.527000", "c": 0.5, "d": 0.0, "e": "x-1764849025"}
    assert differences(recorded, good) == []
    for key, bad in (("a", 1.0), ("b", "2026-12-04T11:50:25.527Z"), ("c", 0.0), ("d", 0), ("e", "x-y")):
        assert differences(recorded, dict(good, **{key: bad})), key
    assert differences(recorded, {k: good[k] for k in reversed(list(good))})  # key order
