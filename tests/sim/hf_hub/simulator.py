"""Hugging Face Hub SIMULATOR (not the real service): file resolution for public and gated repos.

The part of the Hub a model download uses: GET /{repo}/resolve/{revision}/{file} and
GET /api/models/{repo}. As on the Hub: a gated repo answers 401 without a token or with an
invalid one, 403 ("... not in the authorized list") to a valid token whose account was not
granted access, and the file to a granted token; an unknown repo answers 401 to anonymous
callers and 404 "Repository Not Found" to authenticated ones; /api/models works for gated repos
without access (metadata only, with "gated"). Loopback only; X-Simulator header.
"""

from __future__ import annotations

import argparse
import threading

from tests.sim.common.httpsim import SimHandler, serve


class State:
    def __init__(self):
        # token -> user; repo -> {"gated": False|"manual"|"auto", "granted": {users}}
        self.tokens: dict[str, str] = {}
        self.repos: dict[str, dict] = {}

    def add_repo(self, repo, gated=False, granted=()):
        self.repos[repo] = {"gated": gated, "granted": set(granted)}


class HubHandler(SimHandler):
    def _user(self):
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return None, False
        user = self.server.state.tokens.get(auth[len("Bearer ") :])
        return user, user is None

    def route(self, method, path, query, body):
        state: State = self.server.state
        if method != "GET":
            return 405, {"error": "Method Not Allowed"}
        user, bad_token = self._user()
        if bad_token:
            return 401, {"error": "Invalid credentials in Authorization header"}
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "models"] and len(parts) == 4:
            repo = "/".join(parts[2:4])
            info = state.repos.get(repo)
            if info is None:
                return (404 if user else 401), {"error": "Repository Not Found"}
            return 200, {"id": repo, "modelId": repo, "gated": info["gated"], "private": False}
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = "/".join(parts[:2])
            info = state.repos.get(repo)
            if info is None:
                return (404 if user else 401), {"error": "Repository Not Found"}
            if info["gated"]:
                if user is None:
                    return 401, {
                        "error": f"Access to model {repo} is restricted. You must have access to it and be "
                        "authenticated to access it. Please log in."
                    }
                if user not in info["granted"]:
                    return 403, {
                        "error": f"Access to model {repo} is restricted and you are not in the authorized list. "
                        f"Visit https://huggingface.co/{repo} to ask for access."
                    }
            return 200, {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "_file": parts[-1]}
        return 404, {"error": "Not Found"}


def start(port=0):
    return serve(HubHandler, "huggingface-hub", State(), port=port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Hugging Face Hub SIMULATOR (loopback only)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    srv = start(args.port)
    print(f"Hugging Face Hub simulator (not the real service) on {srv.url}", flush=True)
    threading.Event().wait()
