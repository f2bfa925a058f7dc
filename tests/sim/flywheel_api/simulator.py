"""Data Flywheel API SIMULATOR (not the real service): upstream's `/api/jobs` API with its quirks.

Checked against the answers recorded from upstream's own API (v0.3.1, `flywheel-api-contract.json`
in ../shared/reference/upstream) by tests/unit/test_flywheel_api_contract.py, which replays every
recorded exchange here. What it reproduces of upstream's API layer:
  * routes: GET/POST /api/jobs, GET/DELETE /api/jobs/{id}, POST /api/jobs/{id}/cancel, /openapi.json;
    other paths 404 {"detail": "Not Found"}, a wrong method 405 with `allow`, a trailing slash a
    307 to the slashless URL (absolute, from the Host header);
  * the 422 bodies FastAPI/pydantic build (lax coercion: numeric strings pass; only val_ratio has
    bounds; unknown fields are ignored; JSON is parsed for no content-type, application/json and
    application/*+json only);
  * POST answers `queued` but stores `pending`; ids are 24-hex ObjectIds in either case (400
    "Invalid job_id format" otherwise; answers carry the lower-case id); 404 "Job not found" (GET)
    vs "Job with ID <id> not found" (cancel, delete); cancel and delete look only at finished_at:
    400 "Cannot cancel a job that has already finished." / "Cannot delete a running job. Please
    cancel the job first."; cancel and delete act in the background (a cancel shows after
    `cancel_delay`, the workflow's records a `cancel_delay` later; a deleted job reads normally for
    `delete_delay`, then 404);
  * the workflow's phase order (notes.upstream_workflow_phase_order): initialize (judge record,
    one NIM record each, `pending`), datasets (upstream's data_validator rules and wording),
    judge wait (local judge created -> pending -> ready), then each NIM in turn: deploy, base-eval
    + icl-eval + customization -> customized-eval, shutdown; then a finalize step with every NIM
    completed while the job still runs; jobs run strictly one at a time. Per-NIM, evaluation and
    customization failures leave the job `completed`; a cancelled run's unfinished parts carry
    "Flywheel run <id> was cancelled";
  * the task broker down (`broker_down`): POST stores the job and answers 500 text/plain
    "Internal Server Error", and no worker ever runs the orphan (recorded); cancel and delete then
    answer 500 with upstream's "Failed to ..." detail (upstream code, not recorded).
What is the simulator's own (like the recording's stand-in worker): timing, scores, NIM and
dataset names, NeMo job ids, the failure texts after upstream's prefixes.

Time is real: one timeline unit lasts `unit_seconds`. A job of n NIMs takes 2 + 4n units once it
is the one running: datasets 0.5, judge 0.5, 4 per NIM, finalize 1. Settings per workload or per
"workload/client" (`/_sim/config`): records (drives the data checks and scores), workload type
(tool_calling | generic), scenario (ok | job_failed | nim_failed | eval_failed |
customization_failed | customization_pending | worker_restart). `customization_pending` is seed
000: the first NIM's customization ends with "Error starting customization: Job cust-... failed:
The training job is pending". nmp_uri fields point at `nemo_base_url` (default http://nemo.test)
with the ids customization_id()/evaluation_id() give, so a test can create the matching jobs in the
NeMo platform simulator.

With `--es-url` (a real Elasticsearch/OpenSearch holding the flywheel's log index) the records of a
job are counted there when it is created, as the flywheel reads them.

    python -m tests.sim.flywheel_api.simulator --port 8000 [--unit-seconds 1] [--tls-cert c --tls-key k]
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.message
import json
import math
import random
import re
import threading
import time
import urllib.error
import urllib.request

from tests.sim.common.httpsim import SimHandler, serve

NAME = "data-flywheel-api"
DEFAULT_NIMS = ["meta/llama-3.2-1b-instruct", "meta/llama-3.2-3b-instruct"]
DEFAULT_JUDGE = {"model_name": "meta/llama-3.3-70b-instruct", "type": "local"}
SCENARIOS = (
    "ok",
    "job_failed",
    "nim_failed",
    "eval_failed",
    "customization_failed",
    "customization_pending",
    "worker_restart",
)
# upstream's config/config.yaml data_split_config (used when a job sends none) and the pydantic
# DataSplitConfig defaults (fill the keys a job's override leaves out)
CONFIG_SPLIT = {
    "eval_size": 100,
    "val_ratio": 0.1,
    "min_total_records": 50,
    "random_seed": None,
    "limit": 1000,
    "parse_function_arguments": True,
}
MODEL_SPLIT = dict(CONFIG_SPLIT, eval_size=20, limit=10000)
SPLIT_FIELDS = tuple(CONFIG_SPLIT)
BROKER_ERROR = "Error 111 connecting to df-redis-service:6379. Connection refused."

# timeline, in units from the moment the worker starts a job
DATASETS_END = 0.5
JUDGE_PENDING, JUDGE_READY = 0.6, 1.0
NIM_SLOT = 4.0  # per NIM, starting at 1 + 4 i
DEPLOYED, EVAL_MOVING, EVALS_DONE = 1.0, 1.2, 2.0
CUSTOMIZED, CEVAL_MOVING, CEVAL_DONE, SHUTDOWN = 2.5, 2.6, 3.25, 3.5


def customization_id(job_id: str, nim_index: int) -> str:
    """The NeMo customization job id a simulated flywheel job's NIM refers to in its nmp_uri."""
    return f"cust-{job_id[-8:]}-{nim_index}"


def evaluation_id(job_id: str, nim_index: int, eval_type: str) -> str:
    return f"eval-{job_id[-8:]}-{nim_index}-{eval_type}"


# ------------------------------------------------------------------ request validation (FastAPI/pydantic)
def _err(kind, loc, msg, value, ctx=None):
    out = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx is not None:
        out["ctx"] = ctx
    return out


def _int(value, loc, nullable=False):
    if value is None and nullable:
        return None, None
    if isinstance(value, bool):
        return int(value), None
    if isinstance(value, int):
        return value, None
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None, _err("finite_number", loc, "Input should be a finite number", value)
        if value.is_integer():
            return int(value), None
        return None, _err(
            "int_from_float", loc, "Input should be a valid integer, got a number with a fractional part", value
        )
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d(_?\d)*(\.0*)?", text):
            return int(text.partition(".")[0]), None
        return None, _err(
            "int_parsing", loc, "Input should be a valid integer, unable to parse string as an integer", value
        )
    return None, _err("int_type", loc, "Input should be a valid integer", value)


def _float(value, loc):
    if isinstance(value, (bool, int, float)):
        return float(value), None
    if isinstance(value, str):
        try:
            return float(value), None
        except ValueError:
            pass
        return None, _err(
            "float_parsing", loc, "Input should be a valid number, unable to parse string as a number", value
        )
    return None, _err("float_type", loc, "Input should be a valid number", value)


TRUE_WORDS = ("1", "on", "t", "true", "y", "yes")
FALSE_WORDS = ("0", "off", "f", "false", "n", "no")


def _bool(value, loc):
    if isinstance(value, bool):
        return value, None
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value), None
    if isinstance(value, str) and value.lower() in TRUE_WORDS + FALSE_WORDS:
        return value.lower() in TRUE_WORDS, None
    if isinstance(value, (int, str)):
        return None, _err("bool_parsing", loc, "Input should be a valid boolean, unable to interpret input", value)
    return None, _err("bool_type", loc, "Input should be a valid boolean", value)


def validate_split(value, loc):
    """DataSplitConfig as pydantic validates it: (dict with every field, errors)."""
    if not isinstance(value, dict):
        return None, [
            _err(
                "model_attributes_type",
                loc,
                "Input should be a valid dictionary or object to extract fields from",
                value,
            )
        ]
    clean, errors = dict(MODEL_SPLIT), []
    for name in SPLIT_FIELDS:
        if name not in value:
            continue
        here, raw = loc + [name], value[name]
        if name == "val_ratio":
            got, error = _float(raw, here)  # pydantic checks lt before ge (so NaN fails "less than 1")
            if error is None and not got < 1:
                error = _err("less_than", here, "Input should be less than 1", raw, {"lt": 1.0})
            elif error is None and not got >= 0:
                error = _err("greater_than_equal", here, "Input should be greater than or equal to 0", raw, {"ge": 0.0})
        elif name == "parse_function_arguments":
            got, error = _bool(raw, here)
        else:
            got, error = _int(raw, here, nullable=name == "random_seed")
        if error:
            errors.append(error)
        else:
            clean[name] = got
    return clean, errors


def validate_job_request(body, missing=False):
    """JobRequest: (clean dict, errors) the way FastAPI answers 422."""
    if missing:
        return None, [_err("missing", ["body"], "Field required", None)]
    if not isinstance(body, dict):
        return None, [
            _err(
                "model_attributes_type",
                ["body"],
                "Input should be a valid dictionary or object to extract fields from",
                body,
            )
        ]
    clean, errors = {}, []
    for field in ("workload_id", "client_id"):
        if field not in body:
            errors.append(_err("missing", ["body", field], "Field required", body))
        elif not isinstance(body[field], str):
            errors.append(_err("string_type", ["body", field], "Input should be a valid string", body[field]))
        else:
            clean[field] = body[field]
    split = body.get("data_split_config")
    clean["data_split_config"] = None
    if split is not None:
        clean["data_split_config"], split_errors = validate_split(split, ["body", "data_split_config"])
        errors += split_errors
    return clean, errors


def data_problem(records: int, split: dict) -> str | None:
    """upstream's DataValidator.validate_records_count, in its own words."""
    minimum, eval_size, limit = split["min_total_records"], split["eval_size"], split["limit"]
    if records < minimum:
        return (
            "Not enough records found for the given workload. "
            f"A minimum of {minimum} records is required, but only {records} were found."
        )
    if eval_size > records:
        return (
            "eval_size cannot be larger than the total number of records. "
            f"eval_size is {eval_size}, but only {records} records were found."
        )
    if limit < minimum:
        return (
            "limit cannot be less than the minimum number of records. "
            f"limit is {limit}, but the minimum number of records is {minimum}."
        )
    return None


# ------------------------------------------------------------------ state and timeline
class VirtualClock:
    """A clock that moves only when something sleeps on it: give it to the simulator (`clock=`) and to the
    client (`clock=`, `sleep=clock.sleep`) and hours of job time pass in a second."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class State:
    def __init__(
        self,
        unit_seconds: float = 1.0,
        nims: list[str] | None = None,
        cancel_delay: float | None = None,
        delete_delay: float | None = None,
        clock=time.monotonic,
        es_url: str | None = None,
        es_index: str = "flywheel",
        seed: int = 0,
    ):
        self.lock = threading.Lock()
        self.es_url = es_url.rstrip("/") if es_url else None
        self.es_index = es_index
        self.unit = unit_seconds
        self.nims = list(nims or DEFAULT_NIMS)
        self.judge = dict(DEFAULT_JUDGE)
        # seconds, like upstream's Celery task latency (default: the first unit; a later pace
        # change does not stretch them)
        self.cancel_delay = unit_seconds if cancel_delay is None else cancel_delay
        self.delete_delay = unit_seconds if delete_delay is None else delete_delay
        self.workloads: dict[str, dict] = {}
        # where nmp_uri fields point (the flywheel's nmp_config.nemo_base_url, datastore_base_url)
        self.nemo_base_url = "http://nemo.test"
        self.datastore_base_url = "http://data-store.test"
        self.namespace = "dfwbp"
        self.broker_down = False
        self.jobs: list[dict] = []  # in creation order; deleted ones stay, hidden (the past keeps its times)
        self.counter = 0
        self.id_middle = "%010x" % random.Random(seed).getrandbits(40)
        self.clock = clock  # injectable: benchmarks and the contract replay run on a virtual clock
        self.mono0 = clock()
        self.wall0 = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)

    # ---------------------------------------------------------------- time
    def now(self) -> float:
        return self.clock() - self.mono0

    def wall(self, t: float) -> dt.datetime:
        return self.wall0 + dt.timedelta(milliseconds=round(t * 1000))

    def iso(self, t: float | None) -> str | None:
        """Naive UTC with millisecond precision, as upstream (BSON dates) serialises them."""
        return None if t is None else self.wall(t).isoformat()

    def workload(self, job: dict) -> dict:
        """Settings for a job: keyed "<workload_id>/<client_id>" or "<workload_id>" in /_sim/config."""
        base = {"records": 1000, "type": "tool_calling", "scenario": "ok"}
        base.update(self.workloads.get(job["workload_id"], {}))
        base.update(self.workloads.get(f"{job['workload_id']}/{job['client_id']}", {}))
        if job.get("records") is not None:  # counted in the log index (--es-url)
            base["records"] = job["records"]
        return base

    def count_records(self, workload_id: str, client_id: str) -> int:
        """Records of a workload/client in the real log index, matched the way the flywheel does."""
        query = {
            "query": {"bool": {"must": [{"match": {"client_id": client_id}}, {"match": {"workload_id": workload_id}}]}}
        }
        req = urllib.request.Request(
            f"{self.es_url}/{self.es_index}/_count",
            data=json.dumps(query).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback engine
                return int(json.load(resp)["count"])
        except urllib.error.HTTPError as err:
            if err.code == 404:  # no index yet
                return 0
            raise

    def new_id(self) -> str:
        """An ObjectId: creation second, a per-process value, a counter (lower-case hex)."""
        self.counter += 1
        return "%08x%s%06x" % (int(self.wall(self.now()).timestamp()) & 0xFFFFFFFF, self.id_middle, self.counter)

    def find(self, job_id: str) -> dict | None:
        job_id = job_id.lower()
        return next((j for j in self.jobs if j["id"] == job_id and not self.gone(j)), None)

    def gone(self, job: dict) -> bool:
        return job.get("delete_at") is not None and job["delete_at"] <= self.now()

    # ---------------------------------------------------------------- schedule
    def schedule(self) -> None:
        """Give every queued job its start and end on the single worker, in creation order.
        Times are recomputed from the current unit, so a changed pace applies to queued jobs."""
        free_at = 0.0
        cancel_delay = self.cancel_delay
        for job in self.jobs:
            wl = self.workload(job)
            job["split"] = job["data_split_config"] or dict(CONFIG_SPLIT)
            asked = job.get("cancel_asked")
            job["cancel_at"] = None if asked is None else asked + cancel_delay
            job.update(start=None, end=None, outcome=None, error=None, notice=None, fail_at=None)
            if not job["queued"]:  # orphan: no task was ever queued for it
                if job["cancel_at"] is not None:
                    job.update(end=job["cancel_at"], outcome="cancelled", error="Job cancelled by user")
                continue
            start = max(job["created"], free_at)
            if job["cancel_at"] is not None and job["cancel_at"] <= start:  # cancelled while still pending
                job.update(end=job["cancel_at"], outcome="cancelled", error="Job cancelled by user")
                continue
            units, outcome, error = 2 + NIM_SLOT * len(self.nims), "completed", None
            problem = self.dataset_problem(job, wl)
            if problem:
                units, outcome, error = DATASETS_END, "failed", "Error creating datasets: " + problem
                job["fail_at"] = DATASETS_END
            elif wl["scenario"] == "worker_restart":
                units, outcome, error = 3, "cancelled", "Cancelled by cleanup manager"
                job["notice"] = start + 3 * self.unit
            end = start + units * self.unit
            if job["cancel_at"] is not None and job["cancel_at"] < end:
                # the job document flips at once; the workflow's tasks notice a little later
                end, outcome, error = job["cancel_at"], "cancelled", "Job cancelled by user"
                job["notice"] = min(job["cancel_at"] + cancel_delay, start + units * self.unit)
            job.update(start=start, end=end, outcome=outcome, error=error)
            free_at = max(end, job["notice"] or end)

    def dataset_problem(self, job: dict, wl: dict) -> str | None:
        records = min(10, wl["records"]) if wl["scenario"] == "job_failed" else wl["records"]
        return data_problem(records, job["split"])

    # ---------------------------------------------------------------- render
    def render(self, job: dict, now: float, detail: bool) -> dict:
        status, finished, error = "pending", None, None
        if job["end"] is not None and job["end"] <= now:
            status, finished, error = job["outcome"], job["end"], job["error"]
        elif job["start"] is not None and job["start"] <= now:
            status = "running"
        started = job["start"] is not None and job["start"] <= now
        snap = self.snapshot(job, now) if started else None
        out = {
            "id": job["id"],
            "workload_id": job["workload_id"],
            "client_id": job["client_id"],
            "status": status,
            "started_at": self.iso(job["created"]),
            "finished_at": self.iso(finished),
        }
        if detail:
            out["num_records"] = snap["num_records"] if snap else 0
            out["llm_judge"] = snap["judge"] if snap else None
            out["nims"] = snap["nims"] if snap else []
        out["datasets"] = snap["datasets"] if snap else []
        out["error"] = error
        return out

    def units_at(self, job: dict, t: float) -> float:
        return (t - job["start"]) / self.unit

    def snapshot(self, job: dict, now: float) -> dict:
        """The workflow's records at `now`: the running timeline, frozen where it stopped, with a
        cancellation applied once the tasks noticed it."""
        wl = self.workload(job)
        stop = job["end"] if job["outcome"] != "cancelled" else (job["notice"] or job["end"])
        t = min(now, stop) if stop is not None else now
        u = self.units_at(job, t)
        snap = self.timeline(job, wl, u)
        if job["outcome"] == "cancelled" and job["notice"] is not None and now >= job["notice"]:
            self.cancelled_records(job, snap, self.units_at(job, job["notice"]))
        return snap

    def timeline(self, job: dict, wl: dict, u: float) -> dict:
        split = job["split"]
        local = self.judge["type"] == "local"
        judge = {
            "model_name": self.judge["model_name"],
            "type": self.judge["type"],
            "deployment_status": "created" if local else "ready",
            "error": None,
        }
        nims = [self.nim_record(model) for model in self.nims]
        snap = {"num_records": 0, "datasets": [], "judge": judge, "nims": nims}
        if job["fail_at"] is not None:  # create_datasets raised
            if u >= job["fail_at"]:
                problem = job["error"].split(": ", 1)[1]
                for nim in nims:
                    nim.update(status="failed", error=problem)
            return snap
        if u < DATASETS_END:
            return snap
        records = min(wl["records"], split["limit"])
        snap["num_records"] = records
        snap["datasets"] = self.datasets(job, records, split)
        if local and u >= JUDGE_PENDING:
            judge["deployment_status"] = "pending" if u < JUDGE_READY else "ready"
        for i, nim in enumerate(nims):
            self.nim_at(job, wl, i, nim, u - (1 + NIM_SLOT * i))
        return snap

    @staticmethod
    def nim_record(model: str) -> dict:
        return {
            "model_name": model,
            "status": "pending",
            "deployment_status": "pending",  # null in the database, shown "pending"
            "runtime_seconds": 0.0,
            "evaluations": [],
            "customizations": [],
            "error": None,
        }

    def datasets(self, job: dict, records: int, split: dict) -> list[dict]:
        stamp = int(self.wall(job["start"] + DATASETS_END * self.unit).timestamp())
        icl = max(0, records - split["eval_size"])
        sizes = (("eval", split["eval_size"]), ("icl", icl), ("train", icl - round(icl * split["val_ratio"])))
        out = []
        for kind, size in sizes:
            name = f"flywheel-{kind}-{job['workload_id']}-{stamp}"
            out.append(
                {
                    "name": name,
                    "num_records": max(0, size),
                    "nmp_uri": f"{self.datastore_base_url}/v1/hf/datasets/{self.namespace}/{name}",
                }
            )
        return out

    def nim_at(self, job: dict, wl: dict, i: int, nim: dict, v: float) -> None:
        """NIM i, `v` units after its slot began."""
        if v < 0:
            return
        unit = self.unit
        if wl["scenario"] == "nim_failed" and i == len(self.nims) - 1:
            if v >= 0.5:  # deploy_model() failed: no started_at, no evaluations
                nim.update(
                    status="failed",
                    deployment_status="failed",
                    error=f"Deployment of {nim['model_name']} failed: DMS status failed",
                )
            return
        nim["runtime_seconds"] = round(min(v, SHUTDOWN) * unit, 3)
        if v < DEPLOYED:
            return
        nim.update(status="running-evals", deployment_status="ready")
        s0 = job["start"] + (1 + NIM_SLOT * i) * unit
        failed_eval = "icl-eval" if wl["scenario"] == "eval_failed" and i == 0 else None
        for eval_type in ("base-eval", "icl-eval"):
            nim["evaluations"].append(
                self.evaluation(
                    job, wl, i, eval_type, s0, v, DEPLOYED, EVAL_MOVING, EVALS_DONE, eval_type == failed_eval
                )
            )
        cust, ok = self.customization(job, wl, i, s0, v)
        nim["customizations"].append(cust)
        if ok and v >= CUSTOMIZED:
            nim["evaluations"].append(
                self.evaluation(job, wl, i, "customized-eval", s0, v, CUSTOMIZED, CEVAL_MOVING, CEVAL_DONE, False)
            )
        if v >= SHUTDOWN:
            nim.update(status="completed", deployment_status="completed")

    def evaluation(self, job, wl, i, eval_type, s0, v, begin, moving, done, fails) -> dict:
        unit = self.unit
        ev = {
            "eval_type": eval_type,
            "scores": {},
            "started_at": self.iso(s0 + begin * unit),
            "finished_at": None,
            "runtime_seconds": 0.0,
            "progress": 0.0,
            "nmp_uri": f"{self.nemo_base_url}/v1/evaluation/jobs/{evaluation_id(job['id'], i, eval_type)}",
            "mlflow_uri": None,
            "error": None,
        }
        if v >= done:
            ev.update(finished_at=self.iso(s0 + done * unit), runtime_seconds=round((done - begin) * unit, 3))
            if fails:
                ev["error"] = (
                    f"Error running {eval_type} evaluation: Evaluation job {evaluation_id(job['id'], i, eval_type)} "
                    "failed: Error in evaluation: KeyError: 'state'"
                )
            else:
                ev.update(progress=100.0, scores=self.scores(wl, i, eval_type))
        elif v >= moving:  # the NeMo job runs: progress and runtime move together
            ev.update(
                progress=round(100 * (v - moving) / (done - moving), 1) or 0.1,
                runtime_seconds=round((v - begin) * unit, 3),
            )
        return ev

    def customization(self, job, wl, i, s0, v) -> tuple[dict, bool]:
        unit, cid = self.unit, customization_id(job["id"], i)
        span = CUSTOMIZED - EVAL_MOVING
        frac = max(0.0, min(1.0, (v - EVAL_MOVING) / span))
        cu = {
            "started_at": self.iso(s0 + DEPLOYED * unit),
            "finished_at": None,
            "runtime_seconds": 0.0,
            "progress": 0.0,
            "epochs_completed": 0,
            "steps_completed": 0,
            "nmp_uri": f"{self.nemo_base_url}/v1/customization/jobs/{cid}",
            "customized_model": f"{self.namespace}/customized-{job_model(self.nims[i])}@{cid}",
            "error": None,
        }
        if frac > 0:
            cu.update(
                progress=round(100 * frac, 1) or 0.1,
                runtime_seconds=round((min(v, CUSTOMIZED) - DEPLOYED) * unit, 3),
                epochs_completed=int(2 * frac),
                steps_completed=max(1, int(50 * frac)),
            )
        if v < CUSTOMIZED:
            return cu, True
        cu["finished_at"] = self.iso(s0 + CUSTOMIZED * unit)
        if wl["scenario"] == "customization_pending" and i == 0:
            # seed 000: the flywheel keeps customized_model and reports the customizer's last detail
            cu.update(
                progress=0.0,
                epochs_completed=0,
                steps_completed=0,
                error=f"Error starting customization: Job {cid} failed: The training job is pending",
            )
            return cu, False
        if wl["scenario"] == "customization_failed" and i == len(self.nims) - 1:
            cu.update(
                progress=0.0,
                error=f"Error starting customization: Customization job {cid} failed: "
                "NotEnoughResources: 0/3 nodes have enough nvidia.com/gpu",
            )
            return cu, False
        cu["progress"] = 100.0
        return cu, True

    def cancelled_records(self, job: dict, snap: dict, u: float) -> None:
        """What the workflow's tasks write when they notice the cancellation (at `u` units)."""
        finished = self.iso(job["start"] + u * self.unit)
        if u < 1:  # datasets or judge wait: every NIM is cancelled as it stands
            for nim in snap["nims"]:
                nim.update(status="cancelled", error=f"Flywheel run {job['id']} was cancelled")
            return
        for nim in snap["nims"]:
            if nim["status"] in ("completed", "failed"):
                continue
            nim.update(status="cancelled", deployment_status="cancelled", error="Flywheel run cancelled")
            for ev in nim["evaluations"]:
                if ev["finished_at"] is None:
                    ev.update(
                        finished_at=finished,
                        progress=0.0,
                        error=f"Error running {ev['eval_type']} evaluation: Flywheel run {job['id']} was cancelled",
                    )
            for cu in nim["customizations"]:
                if cu["finished_at"] is None:
                    cu.update(
                        finished_at=finished,
                        progress=0.0,
                        error=f"Error starting customization: Flywheel run {job['id']} was cancelled",
                    )

    def scores(self, wl, i, eval_type):
        data = min(1.0, wl["records"] / 1000)  # the seeds' story: more records, better scores
        lift = {"base-eval": 0.0, "icl-eval": 0.12, "customized-eval": 0.15 + 0.2 * data}[eval_type]
        size = 0.05 * i
        if wl["type"] == "generic":
            return {"similarity": round(min(10.0, 4 + 10 * (lift + size)), 2)}
        base = 0.45 + size + lift
        return {
            "function_name": round(min(1.0, base + 0.2), 4),
            "function_name_and_args_accuracy": round(min(1.0, base), 4),
            "tool_calling_correctness": round(min(1.0, base + 0.1), 4),
        }


def job_model(model: str) -> str:
    return model.replace("/", "-")


# ------------------------------------------------------------------ HTTP
class Reply:
    """An answer that is not a JSON body: raw bytes with their own headers."""

    def __init__(self, status: int, data: bytes = b"", headers: dict | None = None):
        self.status, self.data, self.headers = status, data, dict(headers or {})


ROUTES = (  # (pattern, methods in upstream's route order: the first one is a 405's `allow`)
    (re.compile(r"^/openapi\.json$"), ("GET",)),
    (re.compile(r"^/api/jobs$"), ("POST", "GET")),
    (re.compile(r"^/api/jobs/[^/]+$"), ("GET", "DELETE")),
    (re.compile(r"^/api/jobs/[^/]+/cancel$"), ("POST",)),
)


def route_methods(path: str):
    for pattern, methods in ROUTES:
        if pattern.match(path):
            return methods
    return None


SCHEMAS = (
    "Customization",
    "DataSplitConfig",
    "Dataset",
    "DeploymentStatus",
    "Evaluation",
    "HTTPValidationError",
    "JobCancelResponse",
    "JobDeleteResponse",
    "JobDetailResponse",
    "JobListItem",
    "JobRequest",
    "JobResponse",
    "JobsListResponse",
    "LLMJudgeResponse",
    "NIMResponse",
    "NIMRunStatus",
    "ValidationError",
)


def openapi() -> dict:
    paths = {}
    for pattern, methods in ROUTES[1:]:
        path = pattern.pattern.strip("^$").replace("\\", "").replace("[^/]+", "{job_id}")
        paths[path] = {m.lower(): {"responses": {"200": {"description": "Successful Response"}}} for m in methods}
    return {
        "openapi": "3.1.0",
        "info": {"title": "FastAPI (Data Flywheel API SIMULATOR, not the real service)", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": {name: {"title": name} for name in SCHEMAS}},
    }


class Handler(SimHandler):
    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.raw = self.rfile.read(length) if length else b""
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError:
            return self.raw

    def _send(self, status, payload) -> None:
        if isinstance(payload, Reply):
            self.send_response(payload.status)
            for key, value in payload.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload.data)))
            self.send_header("X-Simulator", f"{self.server.name} (simulator, not the real service)")
            self.end_headers()
            self.wfile.write(payload.data)
            return
        super()._send(status, payload)

    def route(self, method, path, query, body):
        state: State = self.server.state
        methods = route_methods(path)
        if methods is None:
            if path != "/" and path.endswith("/") and route_methods(path.rstrip("/")):
                scheme = "https" if self.server.url.startswith("https") else "http"
                host = self.headers.get("Host") or self.server.url.split("://", 1)[1]
                target = f"{scheme}://{host}{path.rstrip('/')}" + (f"?{self.query}" if self.query else "")
                return 307, Reply(307, b"", {"location": target})
            return 404, {"detail": "Not Found"}
        if method not in methods:
            return 405, Reply(
                405,
                json.dumps({"detail": "Method Not Allowed"}).encode(),
                {"Content-Type": "application/json", "allow": methods[0]},
            )
        with state.lock:
            state.schedule()
            return self.api(state, state.now(), method, path)

    def _handle(self, method):
        self.query = self.path.partition("?")[2]
        super()._handle(method)

    def api(self, state, now, method, path):
        parts = [p for p in path.split("/") if p]
        if parts == ["openapi.json"]:
            return 200, openapi()
        if len(parts) == 2:
            if method == "GET":
                return 200, {"jobs": [state.render(j, now, detail=False) for j in state.jobs if not state.gone(j)]}
            return self.create(state, now)
        job_id = parts[2]
        if not re.fullmatch(r"[0-9a-fA-F]{24}", job_id):
            return 400, {"detail": "Invalid job_id format"}
        job = state.find(job_id)
        if len(parts) == 3 and method == "GET":
            return (200, state.render(job, now, detail=True)) if job else (404, {"detail": "Job not found"})
        if job is None:
            return 404, {"detail": f"Job with ID {job_id} not found"}
        finished = job["end"] is not None and job["end"] <= now
        if method == "DELETE":
            if not finished:
                return 400, {"detail": "Cannot delete a running job. Please cancel the job first."}
            if state.broker_down:
                return 500, {"detail": f"Failed to initiate job deletion for {job_id}: {BROKER_ERROR}"}
            if job.get("delete_at") is None:
                job["delete_at"] = now + state.delete_delay
            return 200, {
                "id": job["id"],
                "message": "Job deletion started. Resources will be cleaned up in the background.",
            }
        if finished:
            return 400, {"detail": "Cannot cancel a job that has already finished."}
        if state.broker_down:
            return 500, {"detail": f"Failed to cancel job {job_id}: {BROKER_ERROR}"}
        if job.get("cancel_asked") is None:
            job["cancel_asked"] = now
        return 200, {"id": job["id"], "message": "Job cancellation initiated successfully."}

    def parsed_body(self):
        """The body as FastAPI reads it: (value, missing, json error)."""
        if not self.raw:
            return None, True, None
        ctype = self.headers.get("Content-Type")
        as_json = not ctype
        if ctype:
            msg = email.message.Message()
            msg["content-type"] = ctype
            subtype = msg.get_content_subtype()
            as_json = msg.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))
        if not as_json:
            return self.raw.decode("utf-8", "replace"), False, None
        try:
            value = json.loads(self.raw)
        except json.JSONDecodeError as err:
            return None, False, _err("json_invalid", ["body", err.pos], "JSON decode error", {}, {"error": err.msg})
        return value, value is None, None

    def create(self, state, now):
        value, missing, json_error = self.parsed_body()
        if json_error:
            return 422, {"detail": [json_error]}
        clean, errors = validate_job_request(value, missing)
        if errors:
            return 422, {"detail": errors}
        records = None
        if state.es_url:
            try:
                records = state.count_records(clean["workload_id"], clean["client_id"])
            except OSError as err:
                return 500, Reply(500, f"Internal Server Error ({err})".encode(), {"Content-Type": "text/plain"})
        job_id = state.new_id()
        state.jobs.append(
            {
                "id": job_id,
                "workload_id": clean["workload_id"],
                "client_id": clean["client_id"],
                "data_split_config": clean["data_split_config"],
                "created": now,
                "records": records,
                "queued": not state.broker_down,
            }
        )
        state.schedule()
        if state.broker_down:  # run_nim_workflow_dag.delay() raised after the insert
            return 500, Reply(500, b"Internal Server Error", {"Content-Type": "text/plain; charset=utf-8"})
        return 200, {"id": job_id, "status": "queued", "message": "NIM workflow started"}

    def control(self, method, path, body):
        state: State = self.server.state
        with state.lock:
            if path == "/_sim/config":
                if method == "POST":
                    body = body or {}
                    for wid, cfg in (body.get("workloads") or {}).items():
                        if cfg.get("scenario", "ok") not in SCENARIOS:
                            return 400, {"detail": f"scenario must be one of {SCENARIOS}"}
                        state.workloads.setdefault(wid, {}).update(cfg)
                    if "nims" in body:
                        state.nims = list(body["nims"])
                    if "judge" in body:
                        if (body["judge"] or {}).get("type", "local") not in ("local", "remote"):
                            return 400, {"detail": "judge.type must be local or remote"}
                        state.judge.update(body["judge"])
                    if "unit_seconds" in body:  # jobs already queued follow the new pace
                        state.unit = float(body["unit_seconds"])
                    for key in ("cancel_delay", "delete_delay"):
                        if key in body:
                            setattr(state, key, float(body[key]))
                    if "broker_down" in body:
                        state.broker_down = bool(body["broker_down"])
                    for key in ("nemo_base_url", "datastore_base_url"):
                        if key in body:
                            setattr(state, key, str(body[key]).rstrip("/"))
                return 200, {
                    "unit_seconds": state.unit,
                    "nims": state.nims,
                    "judge": state.judge,
                    "workloads": state.workloads,
                    "broker_down": state.broker_down,
                    "nemo_base_url": state.nemo_base_url,
                    "datastore_base_url": state.datastore_base_url,
                }
            if path == "/_sim/jobs":  # the simulator's own record, for duplicate checks
                return 200, {
                    "jobs": [
                        {
                            k: j.get(k)
                            for k in ("id", "workload_id", "client_id", "created", "queued", "data_split_config")
                        }
                        for j in state.jobs
                        if not state.gone(j)
                    ]
                }
        return 404, {"detail": f"unknown simulator control path {path}"}


def start(unit_seconds: float = 1.0, nims=None, port: int = 0, certfile=None, keyfile=None, seed: int = 0, **kw):
    return serve(
        Handler,
        NAME,
        State(unit_seconds, nims, seed=seed, **kw),
        port=port,
        certfile=certfile,
        keyfile=keyfile,
        seed=seed,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--unit-seconds", type=float, default=1.0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--es-url", help="count each job's records in this real Elasticsearch/OpenSearch")
    parser.add_argument("--es-index", default="flywheel")
    args = parser.parse_args()
    server = start(
        args.unit_seconds,
        port=args.port,
        certfile=args.tls_cert,
        keyfile=args.tls_key,
        es_url=args.es_url,
        es_index=args.es_index,
    )
    print(f"Data Flywheel API SIMULATOR (not the real service) listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
