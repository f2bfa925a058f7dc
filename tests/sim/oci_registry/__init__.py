"""An OCI registry on loopback that requires HTTP basic authentication (as nvcr.io needs the NGC key).

A real OCI distribution API server: go-containerregistry's pkg/registry, behind a basic-auth check
(main.go here), built once from its Go module into the cache (keyed by this directory's go.mod, go.sum
and main.go) and started per test. HTTPS with the given certificate, as registries serve.

    registry = start(cert, key, username="$oauthtoken", password="<key>")
    registry.host         # 127.0.0.1:<port>
    registry.requests()   # ["401 GET /v2/", "200 GET /v2/nvidia/volcano/manifests/1.9.0", ...]
    registry.stop()
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(
    os.environ.get("DFW_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dataflywheel-blueprint"
)


def binary() -> Path:
    """The registry binary, built with `go build` when this source has not been built yet (about 40 CPU-s)."""
    digest = hashlib.sha256(b"".join((HERE / n).read_bytes() for n in ("go.mod", "go.sum", "main.go"))).hexdigest()
    out = CACHE / "bin" / f"oci-registry-{digest[:12]}" / "oci-registry"
    if not out.exists():
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
        subprocess.run(  # noqa: S603 - the Go toolchain on our own source
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp), "."],
            cwd=HERE,
            env=env,
            check=True,
            capture_output=True,
            timeout=1800,
        )
        tmp.replace(out)
    return out


class Registry:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.host = proc.stdout.readline().strip()
        if not self.host:
            raise RuntimeError(f"the OCI registry did not start: {proc.stderr.read()}")
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.append(line.strip())

    def requests(self) -> list[str]:
        return list(self._lines)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def start(cert: str | Path, key: str | Path, username: str, password: str) -> Registry:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "REGISTRY_USERNAME": username,
        "REGISTRY_PASSWORD": password,
        "TLS_CERT": str(cert),
        "TLS_KEY": str(key),
    }
    proc = subprocess.Popen(  # noqa: S603 - our own test registry
        [str(binary())], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return Registry(proc)
