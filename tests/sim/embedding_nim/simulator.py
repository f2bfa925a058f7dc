"""Embedding NIM SIMULATOR (not the real service): the OpenAI-compatible POST /v1/embeddings.

Contract of the NVIDIA embedding NIMs: body {"model", "input" (string or list), "input_type"
("query"/"passage"), "encoding_format"}; answer {"object": "list", "data": [{"index", "embedding",
"object": "embedding"}], "model", "usage"}. Quirk kept: asymmetric models answer 400 when
input_type is missing. Each model has a fixed vector size (the dimension the preflight checks);
vectors are deterministic. GET /v1/models lists the models. Loopback only; X-Simulator header.
"""

from __future__ import annotations

import argparse
import hashlib
import threading

from tests.sim.common.httpsim import SimHandler, serve

# model -> (dimension, asymmetric)
DEFAULT_MODELS = {
    "nvidia/llama-3.2-nv-embedqa-1b-v2": (2048, True),
    "nvidia/nv-embedqa-e5-v5": (1024, True),
    "nvidia/nv-embed-v1": (4096, False),
}


class State:
    def __init__(self, models=None, api_key=None):
        self.models = dict(models or DEFAULT_MODELS)
        self.api_key = api_key


def _vector(text, size):
    seed = hashlib.sha256(text.encode()).digest()
    return [((seed[i % len(seed)] + i) % 255) / 255.0 - 0.5 for i in range(size)]


class EmbeddingHandler(SimHandler):
    def route(self, method, path, query, body):
        state: State = self.server.state
        if state.api_key and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            return 401, {"error": "Unauthorized"}
        if path == "/v1/models" and method == "GET":
            return 200, {"object": "list", "data": [{"id": m, "object": "model"} for m in state.models]}
        if path != "/v1/embeddings":
            return 404, {"detail": "Not Found"}
        if method != "POST":
            return 405, {"detail": "Method Not Allowed"}
        if not isinstance(body, dict) or "input" not in body or "model" not in body:
            return 422, {"detail": [{"loc": ["body", "input"], "msg": "field required"}]}
        model = state.models.get(body["model"])
        if model is None:
            return 404, {"error": f"The model `{body['model']}` does not exist."}
        size, asymmetric = model
        if asymmetric and body.get("input_type") not in ("query", "passage"):
            return 400, {"error": "'input_type' parameter is required for asymmetric models; use 'query' or 'passage'"}
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"index": i, "embedding": _vector(t, size), "object": "embedding"} for i, t in enumerate(texts)]
        tokens = sum(len(str(t).split()) for t in texts)
        return 200, {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def start(port=0, models=None, api_key=None):
    return serve(EmbeddingHandler, "embedding-nim", State(models, api_key), port=port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Embedding NIM SIMULATOR (loopback only)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    srv = start(args.port)
    print(f"embedding NIM simulator (not the real service) on {srv.url}/v1", flush=True)
    threading.Event().wait()
