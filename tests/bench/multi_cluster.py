"""Benchmark: four local clusters in one site.yml run against one. (`make bench-clusters`)

Starts the four local test clusters (vanilla, openshift, pcai, nutanix profiles: four real
kube-apiservers with their etcds, controller managers, schedulers and kwok), one Data Flywheel API
SIMULATOR per cluster, packages the FIXTURE charts (stand-ins for NVIDIA's NGC charts, as `make demo`
uses them) and writes an inventory with one host per cluster (its own kubeconfig, API URL and
platform). Then runs the whole site.yml, full cluster stack included:
  * once per cluster, alone (--limit), each on fresh namespaces and fresh jobs;
  * once for all four together (forks), on fresh namespaces and fresh jobs.
Reports the single runs, their sum (what running the clusters one after another costs) and the
parallel run; the target is parallel <= 2.5 x the single run of the same cluster set, where serial
is 4 x. Wall times depend on what else the machine runs: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.sim.flywheel_api.simulator import start  # noqa: E402

PROFILES = ("vanilla", "openshift", "pcai", "nutanix")
BIN = Path(sys.executable).parent
JOBS = [{"workload_id": "primary_assistant", "client_id": f"aiva-{i}"} for i in (1, 2, 3)]


def cluster(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sim" / "cluster.py"), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return proc.stdout.strip().splitlines()[-1]


def tool_env() -> dict:
    """This environment with the local clusters' helm (and helm-diff) first on PATH."""
    env = dict(os.environ)
    for line in _launcher_env():
        key, _sep, value = line.removeprefix("export ").partition("=")
        env[key] = value.replace("$PATH", os.environ["PATH"])
    return env


def _launcher_env() -> list[str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sim" / "cluster.py"), "env"], capture_output=True, text=True, check=True
    )
    return proc.stdout.splitlines()


def fixture_charts(workdir: Path, env: dict) -> dict:
    """The chart variables of the local inventory, pointing at freshly packaged FIXTURE charts."""
    out = workdir / "charts"
    subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fixtures" / "package_charts.py"), str(out)],
        env=env,
        check=True,
        capture_output=True,
    )
    return {
        "gpu_operator_chart_ref": f"{out}/gpu-operator-v26.7.0.tgz",
        "nim_operator_chart_ref": f"{out}/k8s-nim-operator-3.1.2.tgz",
        "nemo_platform_volcano_chart_ref": f"{out}/volcano-1.9.0.tgz",
        "nemo_platform_chart_ref": f"{out}/nemo-microservices-helm-chart-25.8.0.tgz",
        "flywheel_chart_ref": f"{out}/nvidia-blueprint-data-flywheel-0.3.1.tgz",
        "flywheel_data_split": {
            "eval_size": 20,
            "val_ratio": 0.1,
            "min_total_records": 50,
            "random_seed": 7,
            "limit": 1000,
        },
    }


def inventory(workdir: Path, kubeconfigs: dict, sims: dict, charts: dict) -> Path:
    hosts = {}
    for profile in PROFILES:
        hosts[f"dfw-{profile}"] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "flywheel_kubeconfig": kubeconfigs[profile],
            "flywheel_platform": profile,
            "flywheel_run_api_url": sims[profile].url,
            "flywheel_run_artifacts_dir": str(workdir / "reports" / profile),
        }
    path = workdir / "hosts.json"
    common = {
        "flywheel_run_jobs": JOBS,
        "flywheel_run_progress_interval": 5,
        "flywheel_run_wait_sleep": 1,
        "flywheel_run_wait_timeout": 900,
        "preflight_min_gpu_nodes": 1,
        "preflight_require_storage_class": False,
        **charts,
    }
    path.write_text(json.dumps({"flywheel_clusters": {"hosts": hosts, "vars": common}, "gpu_hosts": {"hosts": {}}}))
    return path


def site(inv: Path, limit: str | None, env: dict) -> float:
    """One site.yml run on fresh namespaces and a fresh workload (so new jobs are started and waited for)."""
    tag = uuid.uuid4().hex[:6]
    extra = {
        "flywheel_prereqs_namespace": f"bench-{tag}",
        "remediate_namespace": f"bench-{tag}",
        "flywheel_run_jobs": [{"workload_id": f"bench-{tag}", "client_id": j["client_id"]} for j in JOBS],
    }
    cmd = [str(BIN / "ansible-playbook"), "-i", str(inv), "site.yml", "-e", json.dumps(extra)]
    if limit:
        cmd += ["--limit", limit]
    env = {k: v for k, v in env.items() if not k.startswith(("K8S_AUTH_", "KUBECONFIG"))}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"site.yml failed ({limit or 'all'}):\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    print(f"[bench] site.yml on {limit or 'all four'}: {elapsed:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="no warm-up; all four first (cold caches count against it), then vanilla alone",
    )
    args = parser.parse_args()
    print("[bench] starting the four local clusters (reused when already up)", flush=True)
    kubeconfigs = {p: cluster("up", "--profile", p) for p in PROFILES}
    sims = {p: start(unit_seconds=0.5) for p in PROFILES}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = tool_env()
            inv = inventory(Path(tmp), kubeconfigs, sims, fixture_charts(Path(tmp), env))
            if args.quick:
                together = site(inv, None, env)
                single = {"vanilla": site(inv, "dfw-vanilla", env)}
            else:
                site(inv, None, env)  # warm-up: caches, first-time CRD/namespace creation, operators
                single = {p: site(inv, f"dfw-{p}", env) for p in PROFILES}
                together = site(inv, None, env)
    finally:
        for sim in sims.values():
            sim.shutdown()
    mean = sum(single.values()) / len(single)
    serial = mean * len(PROFILES) if len(single) < len(PROFILES) else sum(single.values())
    print("\nsite.yml wall time (s), 3 flywheel jobs per cluster on the Data Flywheel API SIMULATOR")
    print("| run | wall time |\n|---|---|")
    for profile, seconds in single.items():
        print(f"| {profile} alone | {seconds:.1f} |")
    how = "sum of the four single runs" if len(single) == len(PROFILES) else "4 x the single run"
    print(f"| serial ({how}) | {serial:.1f} ({serial / mean:.2f} x a single run) |")
    print(f"| all four in one run (forks) | {together:.1f} ({together / mean:.2f} x a single run) |")
    target = 2.5 * mean
    verdict = "meets" if together <= target else "MISSES"
    print(f"\ntarget: four in one run <= 2.5 x one ({target:.1f} s): {verdict} it")
    print(f"cpu count: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
