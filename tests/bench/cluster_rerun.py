"""Benchmark: a no-op rerun of the cluster side on a converged local cluster (`make bench`, `make bench-cluster`).

What a converged rerun of the cluster side runs, in one ansible-playbook process as site.yml runs it:
playbooks/cluster.yml (which imports admission.yml first) and playbooks/remediate.yml. Starts (or
reuses) a local cluster, packages the fixture charts, converges once (a no-op when the stack
is already there; --assume-converged skips it), then times a second run. The profile is vanilla-map
(the API serves MutatingAdmissionPolicy, so the /scratch unit is applied and checked too; --profile
picks another). It reports:
  * wall time of the rerun (target: at most 20 s on 2 cores) and its changed count (must be 0);
  * CPU seconds per cluster (user + sys of the ansible-playbook process tree: its workers, the modules
    and the helm processes they ran; target: at most 15). On a loaded machine the wall time mostly
    measures the other load; the CPU time much less so;
  * module runs per role (each one a Python start), counted by a callback of the benchmark's own;
  * the Pods of the stack's namespaces before and after: any UID that changed fails the benchmark,
    like changed > 0 does (a no-op rerun restarts nothing);
  * API requests the apiserver counted during the rerun: the sum of apiserver_request_total read
    from the real kube-apiserver's /metrics before and after. The metric has no per-client label,
    so the background traffic of the control plane (controller-manager, scheduler, kwok, the
    status emulator) is measured over an idle window first and subtracted pro rata.
--tasks N also prints the N tasks of the rerun that cost the most CPU (tests/bench/callback_plugins).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.harness import run_playbook  # noqa: E402

PY = sys.executable
LAUNCHER = ROOT / "tests" / "sim" / "cluster.py"
SAMPLE = re.compile(r"^apiserver_request_total\{[^}]*\} (\S+)$", re.M)
PLAYBOOKS = ["playbooks/cluster.yml", "playbooks/remediate.yml"]
HOST = "local-cluster"
TARGET_WALL, TARGET_CPU = 20.0, 15.0
NAMESPACES = ["data-flywheel", "gpu-operator", "nim-operator", "volcano-system"]


def requests_total(api: client.ApiClient) -> float:
    resp = api.call_api("/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False)
    text = resp[0].data.decode()
    return sum(float(v) for v in SAMPLE.findall(text))


def launcher(*args: str) -> str:
    return subprocess.run([PY, str(LAUNCHER), *args], check=True, capture_output=True, text=True).stdout


def pod_uids(api: client.ApiClient) -> dict[str, str]:
    pods = client.CoreV1Api(api).list_pod_for_all_namespaces().items
    return {
        f"{p.metadata.namespace}/{p.metadata.name}": p.metadata.uid for p in pods if p.metadata.namespace in NAMESPACES
    }


def children_cpu() -> float:
    """CPU seconds of every finished descendant (ansible-playbook, its forks, modules and helm)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rerun(env: dict, costs: Path | None = None):
    # ansible-playbook takes its playbooks after the options: the inventory comes from the environment
    env = {**env, "ANSIBLE_INVENTORY": str(ROOT / "tests" / "fixtures" / "inventory")}
    if costs is not None:
        costs.unlink(missing_ok=True)
        env.update(
            ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "callback_plugins"),
            ANSIBLE_CALLBACKS_ENABLED="dfw_task_cpu",
            DFW_TASK_CPU_FILE=str(costs),
        )
    run = run_playbook(PLAYBOOKS[0], args=PLAYBOOKS[1:], env=env)
    if run.returncode != 0:
        sys.exit(f"{' + '.join(PLAYBOOKS)} failed:\n{run.tail()}")
    return run


def task_costs(path: Path) -> list[dict]:
    """The callback's lines: per task its wall time, CPU time and module runs (tests/bench/callback_plugins)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--assume-converged", action="store_true", help="skip the converging run")
    parser.add_argument(
        "--profile", default="vanilla-map", help="local cluster profile (default vanilla-map: /scratch by MAP)"
    )
    parser.add_argument("--tasks", type=int, default=0, metavar="N", help="also print the N costliest tasks")
    opts = parser.parse_args()

    kubeconfig = launcher("up", "--profile", opts.profile).strip().splitlines()[-1]
    env = {}
    for line in launcher("env", "--profile", opts.profile).splitlines():
        key, _sep, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'\"").replace("$PATH", os.environ["PATH"])
    # packaged next to the cluster's kubeconfig: the shared default directory races with other runs
    charts = subprocess.run(
        [PY, str(ROOT / "tests" / "fixtures" / "package_charts.py"), str(Path(kubeconfig).parent / "bench-charts")],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    env.update(DFW_KUBECONFIG=kubeconfig, DFW_FIXTURE_CHARTS=charts)
    api = config.new_client_from_config(config_file=kubeconfig)

    if not opts.assume_converged:
        print(f"converging once ({' + '.join(PLAYBOOKS)}; a no-op when the stack is already there) ...", flush=True)
        rerun(env)

    idle_window = 20.0
    before = requests_total(api)
    time.sleep(idle_window)
    background_rate = (requests_total(api) - before) / idle_window

    pods_before = pod_uids(api)
    before = requests_total(api)
    cpu_before = children_cpu()
    load_before = os.getloadavg()[0]
    costs_file = Path(kubeconfig).parent / "bench-task-costs.jsonl"
    run = rerun(env, costs_file)
    cpu = children_cpu() - cpu_before
    raw = requests_total(api) - before
    corrected = raw - background_rate * run.seconds
    stats = run.recap(HOST)
    lines = task_costs(costs_file)
    tasks = [line for line in lines if "task" in line]
    controller = max((line["controller_cpu"] for line in lines if "controller_cpu" in line), default=0.0)
    per_role: collections.Counter = collections.Counter()
    for task in tasks:
        per_role[task["role"]] += task["modules"]
    pods_after = pod_uids(api)
    recreated = sorted(set(pods_before.items()) ^ set(pods_after.items()))

    print(f"no-op rerun of {' + '.join(PLAYBOOKS)} (admission.yml imported by cluster.yml), one cluster:")
    print(f"  wall time: {run.seconds:.1f} s (target <= {TARGET_WALL:.0f} s), changed={stats['changed']}")
    print(f"  CPU seconds per cluster (ansible, modules, helm): {cpu:.1f} (target <= {TARGET_CPU:.0f})")
    print(f"  of which the ansible-playbook process itself (templating, includes, results): {controller:.1f}")
    print(f"  module runs: {sum(per_role.values())} ({', '.join(f'{k} {v}' for k, v in per_role.most_common() if v)})")
    print(f"  API requests counted by kube-apiserver: {raw:.0f} raw")
    print(f"  background of the control plane: {background_rate:.1f} req/s -> ~{corrected:.0f} requests from the rerun")
    print(f"  Pods in {', '.join(NAMESPACES)}: {len(pods_after)}, recreated or changed: {len(recreated)}")
    print(f"  machine: {os.cpu_count()} cores, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    for task in sorted(tasks, key=lambda t: -t["cpu"])[: opts.tasks]:
        cost = f"{task['cpu']:5.2f} CPU-s {task['wall']:6.2f} s {task['modules']} module run(s)"
        print(f"  {cost}  {task['role']}: {task['task']}")
    if stats["changed"]:
        sys.exit("the rerun changed something: it is not a no-op")
    if not pods_before or recreated:
        sys.exit(f"Pods differ before/after the rerun (name, uid): {recreated or 'no Pods found'}")


if __name__ == "__main__":
    main()
