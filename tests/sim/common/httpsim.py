"""Base for the loopback HTTP simulators: a threaded server, JSON helpers, TLS, fault injection.

A simulator subclasses SimHandler, implements `route(method, path, query, body)` returning
(status, payload) and gets, for free: the `X-Simulator` header on every answer, a `/_sim/faults`
control endpoint (5xx rate, added latency, dropping the connection after a POST was processed),
`/_sim/stats` request counts, `/_sim/requests` when each came, and HTTPS when given a certificate and key.
"""

from __future__ import annotations

import json
import random
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Faults:
    def __init__(self, seed: int = 0):
        self.error_rate = 0.0  # share of requests answered 500 before any processing
        self.latency = 0.0  # seconds added to every request
        self.drop_post_rate = 0.0  # share of POSTs processed, then the connection closed unanswered
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def update(self, **values) -> None:
        with self.lock:
            for key in ("error_rate", "latency", "drop_post_rate"):
                if key in values:
                    setattr(self, key, float(values[key]))
            if "seed" in values:
                self.rng.seed(int(values["seed"]))

    def roll(self, rate: float) -> bool:
        with self.lock:
            return rate > 0 and self.rng.random() < rate

    def as_dict(self) -> dict:
        return {"error_rate": self.error_rate, "latency": self.latency, "drop_post_rate": self.drop_post_rate}


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, name: str, state, seed: int = 0):
        super().__init__(address, handler)
        self.name = name
        self.state = state
        self.faults = Faults(seed)
        self.stats: dict[str, int] = {}
        self.stats_lock = threading.Lock()
        self.started = time.monotonic()
        self.requests: list[tuple[float, str]] = []  # (seconds since start, "METHOD /path"), for benchmarks

    def count(self, key: str) -> None:
        with self.stats_lock:
            self.stats[key] = self.stats.get(key, 0) + 1
            self.stats["total"] = self.stats.get("total", 0) + 1
            self.requests.append((round(time.monotonic() - self.started, 3), key))

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        host, port = self.server_address[:2]
        return f"{scheme}://{host}:{port}"


class SimHandler(BaseHTTPRequestHandler):
    server: SimServer
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY a kept-alive client waits for
    # the delayed ACK (about 40 ms a request)
    disable_nagle_algorithm = True
    # paths normalised for stats: ids replaced by {id}
    ID_RE = re.compile(r"/[0-9a-f]{24}(?=/|$)")

    def log_message(self, fmt, *args):  # quiet; stats are the record
        return

    def route(self, method: str, path: str, query: dict, body):  # pragma: no cover - abstract
        raise NotImplementedError

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def _send(self, status: int, payload) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Simulator", f"{self.server.name} (simulator, not the real service)")
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self._body()
        if url.path.startswith("/_sim/"):
            self._send(*self._control(method, url.path, body))
            return
        self.server.count(f"{method} {self.ID_RE.sub('/{id}', url.path)}")
        if self.headers.get("Authorization"):  # counted, never stored: tests prove a token was sent
            with self.server.stats_lock:  # not part of "total"
                key = "with Authorization header"
                self.server.stats[key] = self.server.stats.get(key, 0) + 1
        faults = self.server.faults
        if faults.latency:
            time.sleep(faults.latency)
        if faults.roll(faults.error_rate):
            self._send(500, {"detail": "Internal Server Error (injected by the simulator)"})
            return
        status, payload = self.route(method, url.path, query, body)
        if method == "POST" and faults.roll(faults.drop_post_rate):
            self.close_connection = True
            self.connection.shutdown(2)  # processed, but the client never hears back
            return
        self._send(status, payload)

    def _control(self, method: str, path: str, body):
        if path == "/_sim/faults":
            if method == "POST":
                self.server.faults.update(**(body or {}))
            return 200, self.server.faults.as_dict()
        if path == "/_sim/stats":
            if method == "DELETE":
                self.server.stats.clear()
            return 200, dict(self.server.stats)
        if path == "/_sim/requests":  # when each request came, in seconds since the simulator started
            return 200, {"now": round(time.monotonic() - self.server.started, 3), "requests": self.server.requests}
        return self.control(method, path, body)

    def control(self, method: str, path: str, body):
        return 404, {"detail": f"unknown simulator control path {path}"}

    def do_GET(self):  # noqa: N802 - http.server naming
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")

    def do_PATCH(self):  # noqa: N802
        self._handle("PATCH")

    def do_PUT(self):  # noqa: N802
        self._handle("PUT")


def serve(
    handler,
    name: str,
    state,
    host: str = "127.0.0.1",
    port: int = 0,
    certfile: str | None = None,
    keyfile: str | None = None,
    seed: int = 0,
) -> SimServer:
    """Start a simulator in a background thread; returns the server (its .url, .state, .faults)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("simulators listen on loopback only")
    server = SimServer((host, port), handler, name, state, seed)
    if certfile:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name=f"{name}-sim", daemon=True).start()
    return server
