"""Benchmark: a no-op rerun of playbooks/cluster.yml on a converged local cluster (`make bench-cluster`).

Starts (or reuses) the vanilla local cluster, packages the fixture charts, converges once if the
stack is not there yet, then times a second run and reports:
  * wall time of the rerun (target: at most 45 s on 2 cores) and its changed count (must be 0);
  * (--assume-converged skips the first run when the stack is known to be converged)
  * CPU seconds the rerun spent (ansible-playbook, its modules and the helm processes they ran):
    on a loaded machine the wall time mostly measures the other load; the CPU time does not;
  * the Pods of the stack's namespaces before and after: any UID that changed fails the benchmark,
    like changed > 0 does (a no-op rerun restarts nothing);
  * API requests the apiserver counted during the rerun: the sum of apiserver_request_total read
    from the real kube-apiserver's /metrics before and after. The metric has no per-client label,
    so the background traffic of the control plane (controller-manager, scheduler, kwok, the
    status emulator) is measured over an idle window first and subtracted pro rata; both the raw
    and the corrected figure are printed.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
BIN = Path(PY).parent
LAUNCHER = ROOT / "tests" / "sim" / "cluster.py"
SAMPLE = re.compile(r"^apiserver_request_total\{[^}]*\} (\S+)$", re.M)


def requests_total(api: client.ApiClient) -> float:
    resp = api.call_api("/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False)
    text = resp[0].data.decode()
    return sum(float(v) for v in SAMPLE.findall(text))


def launcher(*args: str) -> str:
    return subprocess.run([PY, str(LAUNCHER), *args], check=True, capture_output=True, text=True).stdout


NAMESPACES = ["data-flywheel", "gpu-operator", "nim-operator", "volcano-system"]


def pod_uids(api: client.ApiClient) -> dict[str, str]:
    pods = client.CoreV1Api(api).list_pod_for_all_namespaces().items
    return {
        f"{p.metadata.namespace}/{p.metadata.name}": p.metadata.uid for p in pods if p.metadata.namespace in NAMESPACES
    }


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_playbook(env: dict) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "tests/fixtures/inventory", "playbooks/cluster.yml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"cluster.yml failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def changed_count(out: str) -> int:
    found = re.search(r"local-cluster\s*:\s*ok=\d+\s+changed=(\d+)", out)
    if not found:
        sys.exit(f"no PLAY RECAP in the output:\n{out[-2000:]}")
    return int(found.group(1))


def main() -> None:
    kubeconfig = launcher("up", "--profile", "vanilla").strip().splitlines()[-1]
    env = dict(os.environ)
    for line in launcher("env", "--profile", "vanilla").splitlines():
        key, _sep, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'\"").replace("$PATH", os.environ["PATH"])
    charts = subprocess.run(
        [PY, str(ROOT / "tests" / "fixtures" / "package_charts.py")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    env.update(
        DFW_KUBECONFIG=kubeconfig,
        DFW_FIXTURE_CHARTS=charts,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOCALHOST_WARNING="false",
    )
    api = config.new_client_from_config(config_file=kubeconfig)

    if "--assume-converged" not in sys.argv:
        print("converging once (a no-op when the stack is already there) ...", flush=True)
        run_playbook(env)

    idle_window = 20.0
    before = requests_total(api)
    time.sleep(idle_window)
    background_rate = (requests_total(api) - before) / idle_window

    pods_before = pod_uids(api)
    before = requests_total(api)
    cpu_before = children_cpu()
    load_before = os.getloadavg()[0]
    elapsed, out = run_playbook(env)
    cpu = children_cpu() - cpu_before
    raw = requests_total(api) - before
    corrected = raw - background_rate * elapsed
    changed = changed_count(out)
    pods_after = pod_uids(api)
    recreated = sorted(
        set(pods_before.items()) ^ set(pods_after.items()),
    )

    print(f"no-op rerun of cluster.yml: {elapsed:.1f} s wall (target <= 45 s), changed={changed}")
    print(f"  API requests counted by kube-apiserver: {raw:.0f} raw")
    print(f"  background of the control plane: {background_rate:.1f} req/s -> ~{corrected:.0f} requests from the rerun")
    print(f"  CPU time of the rerun (ansible, modules, helm): {cpu:.1f} s")
    print(f"  Pods in {', '.join(NAMESPACES)}: {len(pods_after)}, recreated or changed: {len(recreated)}")
    print(f"  machine: {os.cpu_count()} cores, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    if changed:
        sys.exit("the rerun changed something: it is not a no-op")
    if not pods_before or recreated:
        sys.exit(f"Pods differ before/after the rerun (name, uid): {recreated or 'no Pods found'}")


if __name__ == "__main__":
    main()
