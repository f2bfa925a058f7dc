"""A Helm chart repository on loopback that requires HTTP basic authentication (as NGC's does).

A real HTTP server serving a directory of packaged charts and its index.yaml (tests/fixtures/
package_charts.py writes both) to clients that present the configured username and password; any
other request gets 401 with a `WWW-Authenticate: Basic` challenge, as helm.ngc.nvidia.com answers
without the NGC key. It counts what it served, with and without valid credentials.

    server = start(directory, username="$oauthtoken", password="<key>")
    server.url            # http://127.0.0.1:<port>
    server.stats          # {"200 /index.yaml": 3, "401 /index.yaml": 1, ...}
    server.shutdown()
"""

from __future__ import annotations

import base64
import collections
import hmac
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Handler(SimpleHTTPRequestHandler):
    server_version = "dfw-test-chart-repository"

    def log_message(self, *args):  # quiet: the stats say what happened
        return

    def authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:]).decode()
        except ValueError:
            return False
        want = f"{self.server.username}:{self.server.password}"
        return hmac.compare_digest(given.encode(), want.encode())

    def count(self, status: int) -> None:
        with self.server.lock:
            self.server.stats[f"{status} {self.path.split('?')[0]}"] += 1

    def challenge(self) -> None:
        self.count(401)
        body = b"401 Unauthorized: this chart repository requires basic authentication\n"
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="dfw test chart repository"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's name
        if not self.authorized():
            return self.challenge()
        self.count(200 if Path(self.translate_path(self.path)).is_file() else 404)
        return super().do_GET()

    def do_HEAD(self):  # noqa: N802
        if not self.authorized():
            return self.challenge()
        return super().do_HEAD()


def start(directory: str | Path, username: str, password: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(directory)))
    server.daemon_threads = True
    server.username, server.password = username, password
    server.stats = collections.Counter()
    server.lock = threading.Lock()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
