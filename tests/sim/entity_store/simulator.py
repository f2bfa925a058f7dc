"""NeMo Entity Store SIMULATOR (not the real service): namespaces and models endpoints.

Contract from shared/reference/nemo-nim.md section 3: POST /v1/namespaces ({"id"}; 409 when it
exists), GET/DELETE /v1/namespaces/{id}, GET /v1/namespaces; POST /v1/models (404-free create,
409 when it exists, 422 when the namespace is missing a name), GET/PATCH/DELETE
/v1/models/{namespace}/{name} (PATCH cannot change name/namespace), GET /v1/models?filter[namespace]=.
Responses add created_at, updated_at and schema_version. Loopback only; X-Simulator header.
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading

from tests.sim.common.httpsim import SimHandler, serve

IMMUTABLE = ("name", "namespace")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.namespaces: dict[str, dict] = {}
        self.models: dict[tuple[str, str], dict] = {}


def _now():
    return dt.datetime.now(dt.timezone.utc).isoformat()


class EntityStoreHandler(SimHandler):
    def route(self, method, path, query, body):
        state: State = self.server.state
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["v1", "namespaces"] and parts[:2] != ["v1", "models"]:
            return 404, {"detail": "Not Found"}
        with state.lock:
            if parts[1] == "namespaces":
                return self._namespaces(state, method, parts[2:], body)
            return self._models(state, method, parts[2:], query, body)

    def _namespaces(self, state, method, rest, body):
        if not rest:
            if method == "GET":
                return 200, {"object": "list", "data": list(state.namespaces.values())}
            if method == "POST":
                if not isinstance(body, dict) or not body.get("id"):
                    return 422, {"detail": [{"loc": ["body", "id"], "msg": "field required"}]}
                if body["id"] in state.namespaces:
                    return 409, {"detail": f"Namespace {body['id']} already exists"}
                ns = dict(body, created_at=_now(), updated_at=_now(), schema_version="1.0")
                state.namespaces[body["id"]] = ns
                return 201, ns
            return 405, {"detail": "Method Not Allowed"}
        ns = state.namespaces.get(rest[0])
        if ns is None:
            return 404, {"detail": f"Namespace {rest[0]} not found"}
        if method == "GET":
            return 200, ns
        if method == "DELETE":
            del state.namespaces[rest[0]]
            return 200, {"message": "Resource deleted successfully.", "id": rest[0], "deleted_at": _now()}
        return 405, {"detail": "Method Not Allowed"}

    def _models(self, state, method, rest, query, body):
        if not rest:
            if method == "GET":
                ns = query.get("filter[namespace]")
                data = [m for (n, _), m in sorted(state.models.items()) if ns in (None, n)]
                return 200, {"object": "list", "data": data}
            if method == "POST":
                if not isinstance(body, dict) or not body.get("name") or not body.get("namespace"):
                    return 422, {"detail": [{"loc": ["body", "name"], "msg": "name and namespace are required"}]}
                if body["namespace"] not in state.namespaces:
                    return 422, {"detail": f"Namespace {body['namespace']} does not exist"}
                key = (body["namespace"], body["name"])
                if key in state.models:
                    return 409, {"detail": f"Model {key[0]}/{key[1]} already exists"}
                model = dict(body, created_at=_now(), updated_at=_now(), schema_version="1.0")
                state.models[key] = model
                return 201, model
            return 405, {"detail": "Method Not Allowed"}
        if len(rest) != 2:
            return 404, {"detail": "Not Found"}
        key = (rest[0], rest[1])
        model = state.models.get(key)
        if model is None:
            return 404, {"detail": f"Model {key[0]}/{key[1]} not found"}
        if method == "GET":
            return 200, model
        if method == "PATCH":
            if any(k in (body or {}) for k in IMMUTABLE):
                return 422, {"detail": "name and namespace cannot be changed"}
            model.update(body or {})
            model["updated_at"] = _now()
            return 200, model
        if method == "DELETE":
            del state.models[key]
            return 200, {"message": "Resource deleted successfully.", "id": "/".join(key), "deleted_at": _now()}
        return 405, {"detail": "Method Not Allowed"}


def start(port=0, certfile=None, keyfile=None):
    return serve(EntityStoreHandler, "nemo-entity-store", State(), port=port, certfile=certfile, keyfile=keyfile)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="NeMo Entity Store SIMULATOR (loopback only)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    srv = start(args.port)
    print(f"nemo-entity-store simulator (not the real service) on {srv.url}", flush=True)
    threading.Event().wait()
