"""NeMo platform SIMULATOR (not the real services): Evaluator, Customizer, Deployment Management
and the Entity Store behind one host, as the flywheel's `nemo_base_url` gateway (`http://nemo.test`)
puts them, and the NIM proxy (`nim_base_url`, `http://nim.test`) on a second port sharing its state.

Contract: shared/reference/nemo-nim.md section 4 (and section 3 for the Entity Store part, which
is tests/sim/entity_store reused as is). Reproduced:

Evaluator  POST /v1/evaluation/jobs {config, target} -> job `eval-...` status `created`;
           GET /v1/evaluation/jobs/{id} (status, status_details{progress, message,
           samples_processed, task_status}); GET .../status; GET .../results (v1 layout
           tasks.<task>.metrics.<metric>.scores.<score>.value; 400 until completed);
           GET .../logs (a ZIP of text logs, as v1 downloads them); DELETE.
           Status values: created, pending, running, completed, failed, cancelled.
           A target model given by name is looked up in the Entity Store part: not registered ->
           the job fails with the 404 the field reports show (seed 001).
Customizer POST /v1/customization/jobs {config, dataset, hyperparameters, output_model?} -> job
           `cust-...`; GET /v1/customization/jobs/{id} (status_details with status_logs);
           GET .../status (CustomizationStatusDetails: status, percentage_done, epochs_completed,
           steps_completed, steps_per_epoch, train_loss, val_loss, elapsed_time, status_logs[]);
           POST .../cancel. Status values: created, pending, running, cancelled, cancelling,
           failed, completed. A completed job registers its output model (LoRA) in the Entity Store.
DMS        POST /v1/deployment/model-deployments {name, namespace, config{model, nim_deployment}};
           GET/DELETE /v1/deployment/model-deployments/{ns}/{name}; ready when
           status_details.status == "ready"; a second POST of the same name answers
           500 "model deployment already exists" (the quirk the flywheel string-matches).
NIM proxy  GET /v1/models lists the models of ready deployments and, one unit after a deployment
           with NIM_PEFT_SOURCE is ready, the LoRA adapters of its base model held in the Entity
           Store; POST /v1/chat/completions answers for served models, 404 otherwise.

`POST /_sim/nims` {name, model, peft_source} adds a NIM deployed outside Deployment Management (what
a NIMService made Ready by the NIM Operator serves), so the NIM proxy simulator answers for it.

Scenarios (`POST /_sim/config`, applied to jobs created afterwards; or per job with
`POST /_sim/jobs` which creates a job with a given id, e.g. to match a flywheel result's nmp_uri):
  evaluation:    ok | failed | stalled
  customization: ok | not_enough_resources (stays pending, last status log NotEnoughResources) |
                 training_pending (seed 000: fails "The training job is pending") | training_failed
  deployment:    ok | failed (ImagePullBackOff) | never_ready
  chat:          ok | error (the NIM answers 500)
Time is real: one timeline unit lasts `unit_seconds`. Loopback only; X-Simulator header.

    python -m tests.sim.nemo_platform.simulator --port 8080 [--unit-seconds 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import itertools
import threading
import time
import zipfile

from tests.sim.common.httpsim import SimHandler, serve
from tests.sim.entity_store.simulator import EntityStoreHandler
from tests.sim.entity_store.simulator import State as EntityState

NAME = "nemo-platform"
SCENARIOS = {
    "evaluation": ("ok", "failed", "stalled"),
    "customization": ("ok", "not_enough_resources", "training_pending", "training_failed"),
    "deployment": ("ok", "failed", "never_ready"),
    "chat": ("ok", "error"),
}
DEFAULT_SCORES = {"function_name": 0.62, "function_name_and_args_accuracy": 0.48, "tool_calling_correctness": 0.55}
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
SCHEDULER_MSG = (
    "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
    "2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found."
)


class Raw(bytes):
    """A non-JSON answer body (the evaluator's logs ZIP)."""


class State(EntityState):
    def __init__(self, unit_seconds: float = 1.0, clock=time.monotonic):
        super().__init__()
        self.unit = unit_seconds
        self.clock = clock
        self.mono0 = clock()
        self.wall0 = dt.datetime.now(dt.timezone.utc)
        self.scenarios = {kind: "ok" for kind in SCENARIOS}
        self.scores = dict(DEFAULT_SCORES)
        # units after a deployment's creation until its NIM lists the Entity Store's adapters
        # (ready at 1.5, then the next NIM_PEFT_REFRESH_INTERVAL)
        self.peft_delay_units = 2.5
        # and/or: the adapters show up only from the Nth model listing after the deployment is
        # ready (deterministic for tests that must see a client wait; 0 = time only)
        self.peft_after_lists = 0
        self.evaluations: dict[str, dict] = {}
        self.customizations: dict[str, dict] = {}
        self.deployments: dict[tuple[str, str], dict] = {}
        self.counter = itertools.count(1)

    def now(self) -> float:
        return self.clock() - self.mono0

    def iso(self, t: float) -> str:
        return (self.wall0 + dt.timedelta(seconds=t)).replace(tzinfo=None).isoformat()

    def new_id(self, prefix: str) -> str:
        n = next(self.counter)
        chars = []
        for _ in range(22):
            n, r = divmod(n * 7919 + 104729, len(ALPHABET))
            chars.append(ALPHABET[r])
        return f"{prefix}-{''.join(chars)}"

    def units(self, created: float) -> float:
        return (self.now() - created) / self.unit


# ---------------------------------------------------------------------------------- evaluator
def eval_view(state: State, job: dict) -> dict:
    u = state.units(job["created"])
    scenario = job["scenario"]
    status, progress, message, task_status = "created", 0.0, "Job created", {}
    failed_at = 1.0 if job.get("missing_model") else (2.5 if scenario == "failed" else None)
    if job.get("cancelled_at") is not None:
        status, message = "cancelled", "Job cancelled by user"
    elif failed_at is not None and u >= failed_at:
        status, progress = "failed", 0.0
        message = job["failure"]
        task_status = {"custom-tool-calling": "failed"}
    elif u >= 0.5:
        status = "running"
        span = 3.0
        progress = min(100.0, round(100 * (u - 0.5) / span, 1))
        if scenario == "stalled":
            progress = min(progress, 40.0)
        if progress >= 100:
            status, message = "completed", "Job completed successfully"
            task_status = {"custom-tool-calling": "completed"}
        else:
            message = "Job is running"
            task_status = {"custom-tool-calling": "running"}
    elif u >= 0.25:
        status, message = "pending", "Job is pending"
    samples = int(job["limit"] * progress / 100)
    out = {
        "id": job["id"],
        "namespace": job["namespace"],
        "created_at": state.iso(job["created"]),
        "updated_at": state.iso(state.now()),
        "config": job["config"],
        "target": job["target"],
        "status": status,
        "status_details": {
            "message": message,
            "progress": progress,
            "samples_processed": samples,
            "task_status": task_status,
        },
    }
    return out


def eval_results(state: State, job: dict) -> dict:
    scores = job["scores"]
    return {
        "id": "evaluation_result-" + job["id"][5:],
        "created_at": state.iso(job["created"]),
        "job": job["id"],
        "tasks": {
            "custom-tool-calling": {
                "metrics": {
                    metric: {"scores": {metric: {"value": value, "stats": {"count": job["limit"]}}}}
                    for metric, value in scores.items()
                }
            }
        },
        "groups": {},
    }


def eval_logs_zip(state: State, job: dict) -> bytes:
    view = eval_view(state, job)
    lines = [
        f"{view['created_at']} INFO evaluator - job {job['id']} created (SIMULATED log)",
        f"{view['created_at']} INFO evaluator - target {job['target']}",
    ]
    if view["status"] in ("running", "completed", "failed"):
        lines.append(f"{view['updated_at']} INFO evaluator - running task custom-tool-calling")
    if view["status"] == "failed":
        lines += [
            f"{view['updated_at']} ERROR evaluator - task custom-tool-calling failed",
            "Traceback (most recent call last):",
            '  File "/app/evaluator/tasks.py", line 88, in run',
            f"RuntimeError: {job['failure']}",
        ]
    if view["status"] == "completed":
        lines.append(f"{view['updated_at']} INFO evaluator - results written")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{job['id']}/evaluation.log", "\n".join(lines) + "\n")
    return buf.getvalue()


# ---------------------------------------------------------------------------------- customizer
def cust_status(state: State, job: dict) -> dict:
    u = state.units(job["created"])
    sc = job["scenario"]
    logs = [(0.0, "created", None)]
    status, pct, epochs, steps = "created", 0.0, 0, 0
    steps_per_epoch = 25
    if u >= 0.2:
        status = "pending"
        logs.append((0.2, "PVCCreated", None))
        logs.append((0.2, "EntityHandler_0_Created", None))
        logs.append((0.25, "EntityHandler_0_Pending", None))
    if sc == "training_pending":
        if u >= 2.0:
            status = "failed"
            logs.append((2.0, "failed", "The training job is pending"))
    elif sc == "not_enough_resources":
        if u >= 0.5:
            logs.append((0.5, "EntityHandler_0_Running", None))
            logs.append((0.6, "EntityHandler_0_Completed", None))
            logs.append((0.7, "TrainingJobCreated", None))
            logs.append((0.8, "TrainingJobPending", None))
            logs.append((1.0, "NotEnoughResources", SCHEDULER_MSG))
    elif u >= 0.5:
        logs.append((0.5, "EntityHandler_0_Running", None))
        logs.append((0.6, "EntityHandler_0_Completed", None))
        logs.append((0.7, "TrainingJobCreated", None))
        if u >= 1.0:
            status = "running"
            logs.append((1.0, "TrainingJobRunning", None))
            span = 4.0
            pct = min(100.0, round(100 * (u - 1.0) / span, 1))
            if sc == "training_failed" and pct >= 40:
                status, pct = "failed", 40.0
                logs.append((2.6, "TrainingJobFailed", "torch.OutOfMemoryError: CUDA out of memory."))
            elif pct >= 100:
                status = "completed"
                logs.append((5.0, "TrainingJobCompleted", None))
                logs.append((5.0, "completed", None))
            epochs = int(job["epochs"] * pct / 100)
            steps = int(job["epochs"] * steps_per_epoch * pct / 100)
    if job.get("cancelled_at") is not None and status not in ("completed", "failed"):
        status = "cancelled"
        logs.append((job["cancelled_at"], "cancelled", "Job cancelled by user"))
    if status == "completed":
        register_output_model(state, job)
    return {
        "id": job["id"],
        "created_at": state.iso(job["created"]),
        "updated_at": state.iso(state.now()),
        "status": status,
        "percentage_done": pct,
        "epochs_completed": epochs,
        "steps_completed": steps,
        "steps_per_epoch": steps_per_epoch,
        "best_epoch": epochs - 1 if epochs else None,
        "train_loss": round(2.0 - 1.5 * pct / 100, 3) if pct else None,
        "val_loss": round(2.1 - 1.4 * pct / 100, 3) if pct else None,
        "elapsed_time": round(max(0.0, u) * state.unit, 2),
        "metrics": {},
        "status_logs": [
            dict(
                {"updated_at": state.iso(job["created"] + t * state.unit), "message": m}, **({"detail": d} if d else {})
            )
            for t, m, d in logs
        ],
    }


def register_output_model(state: State, job: dict) -> None:
    ns, _sep, name = job["output_model"].partition("/")
    if (ns, name) in state.models:
        return
    state.namespaces.setdefault(ns, {"id": ns, "created_at": state.iso(state.now())})
    state.models[(ns, name)] = {
        "namespace": ns,
        "name": name,
        "base_model": job["base_model"],
        "peft": {"finetuning_type": "lora"},
        "artifact": {"files_url": f"hf://{ns}/{name}", "status": "upload_completed", "backend_engine": "hugging_face"},
        "created_at": state.iso(state.now()),
        "updated_at": state.iso(state.now()),
        "schema_version": "1.0",
    }


# ---------------------------------------------------------------------------------- DMS / NIM
def deployment_view(state: State, dep: dict) -> dict:
    u = state.units(dep["created"])
    status, desc = "created", "Deployment created"
    if u >= 0.2:
        status, desc = "pending", "Waiting for the NIM pod to become ready"
    if dep["scenario"] == "failed" and u >= 1.0:
        status, desc = "failed", "Back-off pulling image: ImagePullBackOff (nvcr.io/nim/... unauthorized)"
    elif dep["scenario"] == "ok" and u >= 1.5:
        status, desc = "ready", "Deployment is ready"
    return {
        "name": dep["name"],
        "namespace": dep["namespace"],
        "config": dep["config"],
        "created_at": state.iso(dep["created"]),
        "updated_at": state.iso(state.now()),
        "url": f"http://{dep['name']}.{dep['namespace']}.svc.cluster.local:8000",
        "status_details": {"status": status, "description": desc},
        "deployed": status == "ready",
    }


def served_models(state: State, count_list: bool = False) -> list[dict]:
    out = []
    for dep in state.deployments.values():
        view = deployment_view(state, dep)
        if view["status_details"]["status"] != "ready":
            continue
        base = dep["config"].get("model")
        out.append({"id": base, "object": "model", "owned_by": "system", "root": base, "parent": None})
        envs = (dep["config"].get("nim_deployment") or {}).get("additional_envs") or {}
        if count_list:
            dep["lists"] = dep.get("lists", 0) + 1
        loaded = state.units(dep["created"]) >= state.peft_delay_units and dep.get("lists", 0) > state.peft_after_lists
        if envs.get("NIM_PEFT_SOURCE") and loaded:
            for (ns, name), model in sorted(state.models.items()):
                if model.get("peft") and model.get("base_model") == base:
                    mid = f"{ns}/{name}"
                    out.append({"id": mid, "object": "model", "owned_by": "system", "root": base, "parent": base})
    return out


class Handler(EntityStoreHandler):
    def route(self, method, path, query, body):
        state: State = self.server.state
        parts = [p for p in path.split("/") if p]
        with state.lock:
            if parts[:2] == ["v1", "evaluation"]:
                return self.evaluator(state, method, parts[2:], body)
            if parts[:2] == ["v1", "customization"]:
                return self.customizer(state, method, parts[2:], body)
            if parts[:3] == ["v1", "deployment", "model-deployments"]:
                return self.dms(state, method, parts[3:], body)
        return super().route(method, path, query, body)

    def _send_raw(self, status: int, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Simulator", f"{self.server.name} (simulator, not the real service)")
        self.end_headers()
        self.wfile.write(data)

    # ------------------------------------------------------------------ evaluator
    def evaluator(self, state, method, rest, body):
        if rest == ["jobs"] and method == "POST":
            return self.create_evaluation(state, body, None)
        if rest == ["jobs"] and method == "GET":
            return 200, {"object": "list", "data": [eval_view(state, j) for j in state.evaluations.values()]}
        if len(rest) < 2 or rest[0] != "jobs":
            return 404, {"detail": "Not Found"}
        job = state.evaluations.get(rest[1])
        if job is None:
            return 404, {"detail": f"Evaluation job {rest[1]} not found"}
        tail = rest[2:]
        view = eval_view(state, job)
        if not tail and method == "GET":
            return 200, view
        if not tail and method == "DELETE":
            del state.evaluations[rest[1]]
            return 200, {"message": "Resource deleted successfully.", "id": rest[1]}
        if tail == ["status"] and method == "GET":
            return 200, dict(view["status_details"], id=job["id"], status=view["status"])
        if tail == ["results"] and method == "GET":
            if view["status"] != "completed":
                return 400, {"detail": f"Results for job {job['id']} are not available: job status is {view['status']}"}
            return 200, eval_results(state, job)
        if tail == ["logs"] and method == "GET":
            return 200, Raw(eval_logs_zip(state, job))
        if tail == ["cancel"] and method == "POST":
            if view["status"] in ("completed", "failed", "cancelled"):
                return 400, {"detail": f"Job {job['id']} is already {view['status']}"}
            job["cancelled_at"] = state.units(job["created"])
            return 200, eval_view(state, job)
        return 405, {"detail": "Method Not Allowed"}

    def create_evaluation(self, state, body, forced):
        forced = forced or {}
        if not isinstance(body, dict):
            return 422, {"detail": [{"loc": ["body"], "msg": "Input should be a valid dictionary"}]}
        errors = [
            {"loc": ["body", k], "msg": "Field required", "type": "missing"}
            for k in ("config", "target")
            if k not in body
        ]
        if errors:
            return 422, {"detail": errors}
        target = body["target"]
        if isinstance(target, dict) and target.get("type", "model") == "model":
            model = target.get("model")
            if not model:
                return 422, {"detail": [{"loc": ["body", "target", "model"], "msg": "Field required"}]}
            if isinstance(model, dict) and not (model.get("api_endpoint") or {}).get("url"):
                return 422, {
                    "detail": [{"loc": ["body", "target", "model", "api_endpoint", "url"], "msg": "Field required"}]
                }
        missing = None
        model = target.get("model") if isinstance(target, dict) else None
        if isinstance(model, str):
            ns, _sep, name = model.partition("/")
            if (ns, name) not in state.models:
                missing = model
        config = body["config"]
        limit = 100
        if isinstance(config, dict):
            for task in (config.get("tasks") or {}).values():
                limit = int(
                    (task.get("params") or {}).get("limit") or (config.get("params") or {}).get("limit") or limit
                )
        job_id = forced.get("id") or state.new_id("eval")
        scenario = forced.get("scenario") or state.scenarios["evaluation"]
        failure = forced.get("failure") or (
            f"Error in evaluation: 404 Client Error: Not Found for url: http://nemo-entity-store:8000/v1/models/{missing}"
            if missing
            else "Error in evaluation: the judge endpoint answered 401 Unauthorized"
        )
        state.evaluations[job_id] = {
            "id": job_id,
            "namespace": body.get("namespace", "default"),
            "config": config,
            "target": target,
            "created": state.now() - float(forced.get("age_units", 0)) * state.unit,
            "scenario": scenario,
            "missing_model": missing,
            "failure": failure,
            "scores": dict(forced.get("scores") or state.scores),
            "limit": limit,
        }
        return 200, eval_view(state, state.evaluations[job_id])

    # ------------------------------------------------------------------ customizer
    def customizer(self, state, method, rest, body):
        if rest == ["jobs"] and method == "POST":
            return self.create_customization(state, body, None)
        if rest == ["jobs"] and method == "GET":
            return 200, {"object": "list", "data": [self.cust_job(state, j) for j in state.customizations.values()]}
        if rest == ["configs"] and method == "POST":
            return 409, {"detail": "Customization config already exists (simulator keeps configs fixed)"}
        if len(rest) < 2 or rest[0] != "jobs":
            return 404, {"detail": "Not Found"}
        job = state.customizations.get(rest[1])
        if job is None:
            return 404, {"detail": f"Customization job {rest[1]} not found"}
        tail = rest[2:]
        if not tail and method == "GET":
            return 200, self.cust_job(state, job)
        if tail == ["status"] and method == "GET":
            return 200, cust_status(state, job)
        if tail == ["cancel"] and method == "POST":
            status = cust_status(state, job)["status"]
            if status in ("completed", "failed", "cancelled"):
                return 400, {"detail": f"Job {job['id']} is already {status}"}
            job["cancelled_at"] = state.units(job["created"])
            return 200, self.cust_job(state, job)
        return 405, {"detail": "Method Not Allowed"}

    def cust_job(self, state, job):
        status = cust_status(state, job)
        details = {k: v for k, v in status.items() if k not in ("id", "status")}
        return {
            "id": job["id"],
            "created_at": status["created_at"],
            "updated_at": status["updated_at"],
            "namespace": job["namespace"],
            "config": job["config"],
            "dataset": job["dataset"],
            "hyperparameters": job["hyperparameters"],
            "output_model": job["output_model"],
            "status": status["status"],
            "status_details": details,
        }

    def create_customization(self, state, body, forced):
        forced = forced or {}
        if not isinstance(body, dict):
            return 422, {"detail": [{"loc": ["body"], "msg": "Input should be a valid dictionary"}]}
        errors = [
            {"loc": ["body", k], "msg": "Field required", "type": "missing"}
            for k in ("config", "dataset", "hyperparameters")
            if k not in body
        ]
        if errors:
            return 422, {"detail": errors}
        job_id = forced.get("id") or state.new_id("cust")
        config = body["config"] if isinstance(body["config"], str) else body["config"].get("name", "custom")
        base = forced.get("base_model") or config.split("/", 1)[-1].split("@", 1)[0]
        if "/" not in base:
            base = "meta/" + base
        out = body.get("output_model") or f"default/customized-{base.replace('/', '-')}"
        if "@" not in out:
            out = f"{out}@{job_id}"
        state.customizations[job_id] = {
            "id": job_id,
            "namespace": body.get("namespace", "default"),
            "config": body["config"],
            "dataset": body["dataset"],
            "hyperparameters": body["hyperparameters"],
            "epochs": int((body["hyperparameters"] or {}).get("epochs", 2)),
            "output_model": out,
            "base_model": base,
            "created": state.now() - float(forced.get("age_units", 0)) * state.unit,
            "scenario": forced.get("scenario") or state.scenarios["customization"],
        }
        return 200, self.cust_job(state, state.customizations[job_id])

    # ------------------------------------------------------------------ DMS
    def dms(self, state, method, rest, body):
        if not rest:
            if method == "GET":
                return 200, {"data": [deployment_view(state, d) for d in state.deployments.values()]}
            if method != "POST":
                return 405, {"detail": "Method Not Allowed"}
            if not isinstance(body, dict) or not body.get("name") or not isinstance(body.get("config"), dict):
                return 422, {"detail": [{"loc": ["body", "name"], "msg": "name and config are required"}]}
            if not body["config"].get("model"):
                return 422, {"detail": [{"loc": ["body", "config", "model"], "msg": "Field required"}]}
            key = (body.get("namespace") or "default", body["name"])
            if key in state.deployments:
                return 500, {"detail": "model deployment already exists"}
            state.deployments[key] = {
                "name": key[1],
                "namespace": key[0],
                "config": body["config"],
                "created": state.now(),
                "scenario": state.scenarios["deployment"],
            }
            return 200, deployment_view(state, state.deployments[key])
        if len(rest) != 2:
            return 404, {"detail": "Not Found"}
        dep = state.deployments.get((rest[0], rest[1]))
        if dep is None:
            return 404, {"detail": f"model deployment {rest[0]}/{rest[1]} not found"}
        if method == "GET":
            return 200, deployment_view(state, dep)
        if method == "DELETE":
            del state.deployments[(rest[0], rest[1])]
            return 200, {"message": f"model deployment {rest[0]}/{rest[1]} deleted"}
        return 405, {"detail": "Method Not Allowed"}

    # ------------------------------------------------------------------ controls
    def _send(self, status, payload):
        if isinstance(payload, Raw):
            self._send_raw(status, bytes(payload), "application/zip")
        else:
            super()._send(status, payload)

    def control(self, method, path, body):
        state: State = self.server.state
        with state.lock:
            if path == "/_sim/config":
                if method == "POST":
                    body = body or {}
                    for kind, allowed in SCENARIOS.items():
                        if kind in body:
                            if body[kind] not in allowed:
                                return 400, {"detail": f"{kind} scenario must be one of {allowed}"}
                            state.scenarios[kind] = body[kind]
                    if "scores" in body:
                        state.scores = dict(body["scores"])
                    if "unit_seconds" in body:
                        state.unit = float(body["unit_seconds"])
                    if "peft_delay_units" in body:
                        state.peft_delay_units = float(body["peft_delay_units"])
                    if "peft_after_lists" in body:
                        state.peft_after_lists = int(body["peft_after_lists"])
                return 200, {
                    "unit_seconds": state.unit,
                    "scenarios": state.scenarios,
                    "scores": state.scores,
                    "peft_delay_units": state.peft_delay_units,
                    "peft_after_lists": state.peft_after_lists,
                }
            if path == "/_sim/nims" and method == "POST":
                # a NIM deployed outside Deployment Management (a NIMService the NIM Operator made
                # ready): served by the NIM proxy simulator with the Entity Store's adapters
                body = body or {}
                if not body.get("name") or not body.get("model"):
                    return 400, {"detail": "name and model are required"}
                envs = {"NIM_PEFT_SOURCE": body["peft_source"]} if body.get("peft_source") else {}
                state.deployments[("nimservice", body["name"])] = {
                    "name": body["name"],
                    "namespace": "nimservice",
                    "config": {"model": body["model"], "nim_deployment": {"additional_envs": envs}},
                    "created": state.now() - 1000 * state.unit,
                    "scenario": "ok",
                }
                return 200, {"name": body["name"], "model": body["model"]}
            if path == "/_sim/jobs" and method == "POST":
                # a job with a chosen id/scenario, as if the flywheel had created it earlier
                body = body or {}
                kind = body.get("kind")
                if kind == "evaluation":
                    if body.get("scenario", "ok") not in SCENARIOS["evaluation"]:
                        return 400, {"detail": f"scenario must be one of {SCENARIOS['evaluation']}"}
                    return self.create_evaluation(state, body.get("request") or {}, body)
                if kind == "customization":
                    if body.get("scenario", "ok") not in SCENARIOS["customization"]:
                        return 400, {"detail": f"scenario must be one of {SCENARIOS['customization']}"}
                    return self.create_customization(state, body.get("request") or {}, body)
                return 400, {"detail": "kind must be evaluation or customization"}
        return 404, {"detail": f"unknown simulator control path {path}"}


class NimProxyHandler(SimHandler):
    """The NIM proxy (`nim_base_url`, http://nim.test): GET /v1/models, POST /v1/chat/completions."""

    def route(self, method, path, query, body):
        state: State = self.server.state
        with state.lock:
            if path.rstrip("/") == "/v1/models" and method == "GET":
                return 200, {"object": "list", "data": served_models(state, count_list=True)}
            if path.rstrip("/") == "/v1/chat/completions":
                return self.chat(state, method, body)
        return 404, {"detail": "Not Found"}

    def chat(self, state, method, body):
        if method != "POST":
            return 405, {"detail": "Method Not Allowed"}
        if not isinstance(body, dict) or not body.get("model") or not body.get("messages"):
            return 422, {"detail": [{"loc": ["body", "messages"], "msg": "model and messages are required"}]}
        served = [m["id"] for m in served_models(state)]
        if body["model"] not in served:
            return 404, {"object": "error", "message": f"The model `{body['model']}` does not exist.", "code": 404}
        if state.scenarios["chat"] == "error":
            return 500, {
                "object": "error",
                "message": "Internal error in the inference engine (simulated)",
                "code": 500,
            }
        question = str(body["messages"][-1].get("content", ""))[:60]
        answer = f"Simulated answer from {body['model']} to: {question}"
        return 200, {
            "id": "chatcmpl-sim-%d" % next(state.counter),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
        }


def start(unit_seconds: float = 1.0, port: int = 0, nim_port: int = 0, certfile=None, keyfile=None, seed: int = 0):
    """Start the NeMo gateway simulator and the NIM proxy simulator sharing one state.
    Returns the gateway server; its `.nim` is the NIM proxy server (`.nim.url`), and
    shutting the gateway down stops both."""
    state = State(unit_seconds)
    server = serve(Handler, NAME, state, port=port, certfile=certfile, keyfile=keyfile, seed=seed)
    nim = serve(NimProxyHandler, "nim-proxy", state, port=nim_port, certfile=certfile, keyfile=keyfile, seed=seed)
    server.nim = nim
    gateway_shutdown = server.shutdown

    def shutdown():
        nim.shutdown()
        gateway_shutdown()

    server.shutdown = shutdown
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--nim-port", type=int, default=0)
    parser.add_argument("--unit-seconds", type=float, default=1.0)
    args = parser.parse_args()
    server = start(args.unit_seconds, port=args.port, nim_port=args.nim_port)
    print(f"NeMo platform SIMULATOR (not the real services) listening on {server.url}", flush=True)
    print(f"NIM proxy SIMULATOR (not the real service) listening on {server.nim.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
