"""Data Flywheel API SIMULATOR (not the real service): the `/api/jobs` contract with its quirks.

Contract: reference/upstream-flywheel.md §1 and data-flywheel-openapi.json. Reproduced quirks:
POST answers `queued` but the job is stored `pending`; ids that are not 24-hex give 400
"Invalid job_id format"; unknown ids 404; jobs run strictly one at a time (others stay pending);
cancel is asynchronous and a second cancel (or cancelling a finished job) is 400 "Cannot cancel a
job that has already finished."; deleting an unfinished job is 400 "Cannot delete a running job.
Please cancel the job first."; delete answers 200 at once and the job disappears later (then 404);
per-NIM, evaluation and customization failures leave the job `completed`; a worker restart
cancels running jobs with "Cancelled by cleanup manager". No authentication, like upstream.

Time is real: one timeline unit lasts `unit_seconds`. A job of n NIMs takes 2 + 4n units once it
is the one running. Settings per workload or per "workload/client" (`/_sim/config`): records (drives scores: more data,
better scores), workload type (tool_calling | generic), scenario (ok | job_failed | nim_failed |
eval_failed | customization_failed | customization_pending | worker_restart). `customization_pending`
is seed 000: the first NIM's customization ends with "Error starting customization: Job cust-...
failed: The training job is pending" (customized_model still set, no customized-eval). nmp_uri
fields point at `nemo_base_url` (default http://nemo.test; settable in `/_sim/config`), with the
ids customization_id()/evaluation_id() give, so a test can create the matching jobs in the NeMo
platform simulator.

With `--es-url` (a real Elasticsearch/OpenSearch holding the flywheel's log index) the records of a
job are counted there when it is created, as the flywheel reads them, and a job below its
data_split_config's min_total_records (default 50) or eval_size (default 100) fails with the
flywheel's own message.

    python -m tests.sim.flywheel_api.simulator --port 8000 [--unit-seconds 1] [--tls-cert c --tls-key k]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request

from tests.sim.common.httpsim import SimHandler, serve

NAME = "data-flywheel-api"
DEFAULT_NIMS = ["meta/llama-3.2-1b-instruct", "meta/llama-3.2-3b-instruct"]
SCENARIOS = (
    "ok",
    "job_failed",
    "nim_failed",
    "eval_failed",
    "customization_failed",
    "customization_pending",
    "worker_restart",
)


def customization_id(job_id: str, nim_index: int) -> str:
    """The NeMo customization job id a simulated flywheel job's NIM refers to in its nmp_uri."""
    return f"cust-{job_id[-10:]}n{nim_index}"


def evaluation_id(job_id: str, nim_index: int, eval_type: str) -> str:
    return f"eval-{job_id[-10:]}n{nim_index}-{eval_type}"


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
    ):
        self.lock = threading.Lock()
        self.es_url = es_url.rstrip("/") if es_url else None
        self.es_index = es_index
        self.unit = unit_seconds
        self.nims = list(nims or DEFAULT_NIMS)
        self.cancel_delay = unit_seconds if cancel_delay is None else cancel_delay
        self.delete_delay = unit_seconds if delete_delay is None else delete_delay
        self.workloads: dict[str, dict] = {}
        # where nmp_uri fields point (the flywheel's nmp_config.nemo_base_url)
        self.nemo_base_url = "http://nemo.test"
        self.jobs: list[dict] = []  # in creation order
        self.counter = 0
        self.clock = clock  # injectable: the benchmark runs the timeline on a virtual clock
        self.mono0 = clock()
        self.wall0 = dt.datetime.now(dt.timezone.utc)

    # ---------------------------------------------------------------- time
    def now(self) -> float:
        return self.clock() - self.mono0

    def iso(self, t: float | None) -> str | None:
        return None if t is None else (self.wall0 + dt.timedelta(seconds=t)).isoformat()

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

    # ---------------------------------------------------------------- timeline
    def schedule(self) -> None:
        """Give every job its start and end on the single worker, in creation order."""
        free_at = 0.0
        for job in self.jobs:
            wl = self.workload(job)
            start = max(job["created"], free_at)
            cancel = job.get("cancel_at")
            if cancel is not None and cancel <= start:  # cancelled while still pending
                job.update(start=None, end=cancel, outcome="cancelled", error="Job cancelled by user")
                continue
            units = 2 + 4 * len(self.nims)
            end, outcome, error = start + units * self.unit, "completed", None
            short = self.too_few(job, wl)
            if short:
                end, outcome, error = start + 1 * self.unit, "failed", short
            elif wl["scenario"] == "job_failed":
                end, outcome = start + 1 * self.unit, "failed"
                found = min(10, wl["records"])
                error = f"Not enough records found for the given workload_id and client_id (found {found}, minimum 50)"
            elif wl["scenario"] == "worker_restart":
                end, outcome, error = start + 3 * self.unit, "cancelled", "Cancelled by cleanup manager"
            if cancel is not None and cancel < end:
                end, outcome, error = cancel, "cancelled", "Job cancelled by user"
            job.update(start=start, end=end, outcome=outcome, error=error)
            free_at = end

    @staticmethod
    def too_few(job: dict, wl: dict) -> str | None:
        """The flywheel's own refusal (data_validator upstream) when records were counted."""
        if job.get("records") is None:
            return None
        split = job.get("data_split_config") or {}
        minimum, eval_size, n = split.get("min_total_records", 50), split.get("eval_size", 100), wl["records"]
        if n < minimum:
            return (
                "Not enough records found for the given workload. "
                f"A minimum of {minimum} records is required, but only {n} were found."
            )
        if eval_size > n:
            return (
                "eval_size cannot be larger than the total number of records. "
                f"eval_size is {eval_size}, but only {n} records were found."
            )
        return None

    def render(self, job: dict, now: float, detail: bool) -> dict:
        wl = self.workload(job)
        status, finished, error = "pending", None, None
        if job["end"] <= now:
            status, finished, error = job["outcome"], job["end"], job["error"]
        elif job["start"] is not None and job["start"] <= now:
            status = "running"
        out = {
            "id": job["id"],
            "workload_id": job["workload_id"],
            "client_id": job["client_id"],
            "status": status,
            "started_at": self.iso(job["created"]),
            "finished_at": self.iso(finished),
            "error": error,
            "datasets": self.datasets(job, now),
        }
        if not detail:
            return out
        out["num_records"] = wl["records"] if job["start"] is not None and now >= job["start"] + self.unit else 0
        out["llm_judge"] = {
            "model_name": "meta/llama-3.3-70b-instruct",
            "type": "remote",
            "deployment_status": "ready",
            "error": None,
        }
        out["nims"] = [] if status == "pending" or job["start"] is None else self.nims_at(job, wl, min(now, job["end"]))
        if status == "failed":
            out["nims"] = []
        return out

    def datasets(self, job, now):
        if job["start"] is None or now < job["start"] + self.unit or job["outcome"] == "failed":
            return []
        wl = self.workload(job)
        stamp = int(job["created"] * 1000)
        return [
            {
                "name": f"flywheel-{kind}-{job['workload_id']}-{stamp}",
                "num_records": n,
                "nmp_uri": f"http://nemo.test/v1/datasets/dfwbp/flywheel-{kind}-{job['workload_id']}-{stamp}",
            }
            for kind, n in (("eval", 100), ("icl", wl["records"] - 100), ("train", wl["records"] - 100))
        ]

    def nims_at(self, job, wl, t):
        out = []
        cancelled = job["outcome"] == "cancelled" and t >= job["end"]
        for i, model in enumerate(self.nims):
            s0 = job["start"] + (1 + 4 * i) * self.unit  # deploy starts
            u = (t - s0) / self.unit  # units into this NIM
            nim = {
                "model_name": model,
                "status": "pending",
                "deployment_status": "created",
                "runtime_seconds": 0.0,
                "evaluations": [],
                "customizations": [],
                "error": None,
            }
            if u < 0:
                if cancelled:
                    nim["status"] = "cancelled"
                out.append(nim)
                continue
            failing = wl["scenario"] == "nim_failed" and i == len(self.nims) - 1
            if u < 1:
                nim["deployment_status"] = "pending"
            elif failing:
                nim.update(
                    status="failed",
                    deployment_status="failed",
                    runtime_seconds=round(self.unit, 3),
                    error=f"Deployment of {model} failed: DMS status failed (ImagePullBackOff)",
                )
            else:
                nim["deployment_status"] = "ready" if u < 4 else "completed"
                nim["status"] = "running-evals" if u < 4 else "completed"
                nim["runtime_seconds"] = round(min(u, 4) * self.unit, 3)
                nim["evaluations"] = self.evaluations(job, wl, i, model, s0, u)
                nim["customizations"] = [self.customization(job, wl, i, model, s0, u)]
            if cancelled and nim["status"] not in ("completed", "failed"):
                nim["status"] = "cancelled"
            out.append(nim)
        return out

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

    def evaluations(self, job, wl, i, model, s0, u):
        evs = []
        for eval_type, start_u, span in (("base-eval", 1, 2), ("icl-eval", 1, 2), ("customized-eval", 3, 1)):
            if u < start_u:
                continue
            done = u >= start_u + span
            failed = wl["scenario"] == "eval_failed" and i == 0 and eval_type == "icl-eval" and done
            ev = {
                "eval_type": eval_type,
                "scores": {},
                "started_at": self.iso(s0 + start_u * self.unit),
                "finished_at": self.iso(s0 + (start_u + span) * self.unit) if done else None,
                "runtime_seconds": round(min(u - start_u, span) * self.unit, 3),
                "progress": 100 if done else round(100 * (u - start_u) / span, 1),
                "nmp_uri": f"{self.nemo_base_url}/v1/evaluation/jobs/{evaluation_id(job['id'], i, eval_type)}",
                "mlflow_uri": None,
                "error": None,
            }
            if failed:
                ev.update(progress=0, error="Evaluation job eval-icl failed: Error in evaluation: KeyError: 'state'")
            elif done:
                ev["scores"] = self.scores(wl, i, eval_type)
            if eval_type == "customized-eval" and wl["scenario"] == "customization_failed":
                continue
            if eval_type == "customized-eval" and wl["scenario"] == "customization_pending" and i == 0:
                continue
            evs.append(ev)
        return evs

    def customization(self, job, wl, i, model, s0, u):
        span = 2.0
        cu_u = max(0.0, min(u - 1, span))
        done = u >= 1 + span
        cu = {
            "started_at": self.iso(s0 + self.unit),
            "finished_at": self.iso(s0 + (1 + span) * self.unit) if done else None,
            "runtime_seconds": round(cu_u * self.unit, 3),
            "progress": round(100 * cu_u / span, 1),
            "epochs_completed": int(2 * cu_u / span),
            "steps_completed": int(50 * cu_u / span),
            "nmp_uri": f"{self.nemo_base_url}/v1/customization/jobs/{customization_id(job['id'], i)}",
            "customized_model": f"dfwbp/customized-{model.replace('/', '-')}@{customization_id(job['id'], i)}"
            if done
            else None,
            "error": None,
        }
        if wl["scenario"] == "customization_pending" and i == 0 and done:
            # seed 000: the flywheel keeps customized_model and reports the customizer's last detail
            cu.update(
                progress=0.0,
                epochs_completed=0,
                steps_completed=0,
                error=f"Error starting customization: Job {customization_id(job['id'], i)} failed: "
                "The training job is pending",
            )
        if wl["scenario"] == "customization_failed" and done:
            cu.update(
                progress=0,
                customized_model=None,
                error="Customization job cust failed: NotEnoughResources: 0/3 nodes have enough nvidia.com/gpu",
            )
        return cu


class Handler(SimHandler):
    def route(self, method, path, query, body):
        state: State = self.server.state
        with state.lock:
            state.schedule()
            now = state.now()
            # background deletions finish after delete_delay
            state.jobs = [j for j in state.jobs if not (j.get("delete_at") is not None and j["delete_at"] <= now)]
            return self.api(state, now, method, path, body)

    def api(self, state, now, method, path, body):
        parts = [p for p in path.split("/") if p]
        if parts == ["openapi.json"] and method == "GET":
            return 200, {
                "openapi": "3.1.0",
                "info": {"title": "FastAPI (Data Flywheel API simulator)", "version": "0.1.0"},
            }
        if parts[:2] != ["api", "jobs"]:
            return 404, {"detail": "Not Found"}
        if len(parts) == 2:
            if method == "GET":
                return 200, {"jobs": [state.render(j, now, detail=False) for j in state.jobs]}
            if method == "POST":
                return self.create(state, now, body)
            return 405, {"detail": "Method Not Allowed"}
        job_id = parts[2]
        valid = len(job_id) == 24 and all(c in "0123456789abcdef" for c in job_id)
        if not valid:
            return 400, {"detail": "Invalid job_id format"}
        job = next((j for j in state.jobs if j["id"] == job_id), None)
        if len(parts) == 3 and method == "GET":
            return (200, state.render(job, now, detail=True)) if job else (404, {"detail": "Job not found"})
        if job is None:
            return 404, {"detail": f"Job with ID {job_id} not found"}
        finished = job["end"] <= now
        if len(parts) == 3 and method == "DELETE":
            if not finished:
                return 400, {"detail": "Cannot delete a running job. Please cancel the job first."}
            if job.get("delete_at") is None:
                job["delete_at"] = now + state.delete_delay
            return 200, {
                "id": job_id,
                "message": "Job deletion started. Resources will be cleaned up in the background.",
            }
        if len(parts) == 4 and parts[3] == "cancel" and method == "POST":
            if finished:
                return 400, {"detail": "Cannot cancel a job that has already finished."}
            if job.get("cancel_at") is None:
                job["cancel_at"] = now + state.cancel_delay
            return 200, {"id": job_id, "message": "Job cancellation initiated successfully."}
        return 405, {"detail": "Method Not Allowed"}

    def create(self, state, now, body):
        errors = []
        if not isinstance(body, dict):
            return 422, {
                "detail": [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
            }
        for field in ("workload_id", "client_id"):
            if not isinstance(body.get(field), str):
                errors.append(
                    {
                        "loc": ["body", field],
                        "msg": "Field required" if field not in body else "Input should be a valid string",
                        "type": "missing",
                    }
                )
        dsc = body.get("data_split_config")
        if dsc is not None:
            ratio = dsc.get("val_ratio", 0.1) if isinstance(dsc, dict) else None
            if not isinstance(dsc, dict):
                errors.append(
                    {
                        "loc": ["body", "data_split_config"],
                        "msg": "Input should be a valid dictionary",
                        "type": "dict_type",
                    }
                )
            elif not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
                errors.append(
                    {
                        "loc": ["body", "data_split_config", "val_ratio"],
                        "msg": "Input should be less than 1",
                        "type": "less_than",
                    }
                )
        if errors:
            return 422, {"detail": errors}
        records = None
        if state.es_url:
            try:
                records = state.count_records(body["workload_id"], body["client_id"])
            except OSError as err:
                return 500, {"detail": f"Could not connect to Elasticsearch: {err}"}
        state.counter += 1
        job_id = f"{0x6650:04x}{state.counter:020x}"
        state.jobs.append(
            {
                "id": job_id,
                "workload_id": body["workload_id"],
                "client_id": body["client_id"],
                "data_split_config": dsc,
                "created": now,
                "records": records,
            }
        )
        state.schedule()
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
                    if "unit_seconds" in body:  # jobs already queued follow the new pace
                        state.unit = float(body["unit_seconds"])
                        state.schedule()
                    if "nemo_base_url" in body:
                        state.nemo_base_url = str(body["nemo_base_url"]).rstrip("/")
                return 200, {
                    "unit_seconds": state.unit,
                    "nims": state.nims,
                    "workloads": state.workloads,
                    "nemo_base_url": state.nemo_base_url,
                }
            if path == "/_sim/jobs":  # the simulator's own record, for duplicate checks
                return 200, {
                    "jobs": [{k: j.get(k) for k in ("id", "workload_id", "client_id", "created")} for j in state.jobs]
                }
        return 404, {"detail": f"unknown simulator control path {path}"}


def start(unit_seconds: float = 1.0, nims=None, port: int = 0, certfile=None, keyfile=None, seed: int = 0, **kw):
    return serve(
        Handler, NAME, State(unit_seconds, nims, **kw), port=port, certfile=certfile, keyfile=keyfile, seed=seed
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
