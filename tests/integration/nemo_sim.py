"""Helpers for tests against the NeMo platform SIMULATOR (tests/sim/nemo_platform)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def call(url: str, method: str = "GET", body=None):
    """(status, JSON) of one request; HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback simulator
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def seed_job(server, kind: str, job_id: str, scenario: str = "ok", age_units: float = 0, **extra) -> dict:
    """Create a job with a chosen id in the simulator, as if the flywheel had created it earlier."""
    request = extra.pop("request", None) or (
        {
            "config": "dfwbp/llama-3.2-1b-instruct@v1.0.0+dfw",
            "dataset": {"name": "flywheel-train-primary_assistant", "namespace": "dfwbp"},
            "hyperparameters": {"training_type": "sft", "finetuning_type": "lora", "epochs": 2},
            "output_model": "dfwbp/customized-meta-llama-3.2-1b-instruct",
        }
        if kind == "customization"
        else {
            "config": {"type": "custom", "tasks": {"t": {"params": {"limit": 50}}}},
            "target": {"type": "model", "model": {"api_endpoint": {"url": "http://nim/v1", "model_id": "m"}}},
        }
    )
    status, data = call(
        server.url + "/_sim/jobs",
        "POST",
        {"kind": kind, "id": job_id, "scenario": scenario, "age_units": age_units, "request": request, **extra},
    )
    assert status == 200, data
    return data


def register_model(server, namespace: str, name: str, **fields) -> None:
    call(server.url + "/v1/namespaces", "POST", {"id": namespace})
    status, data = call(server.url + "/v1/models", "POST", {"namespace": namespace, "name": name, **fields})
    assert status in (200, 201), data


def stats(server) -> dict:
    return call(server.url + "/_sim/stats")[1]
