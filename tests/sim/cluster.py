#!/usr/bin/env python3
"""The local test cluster: a real Kubernetes control plane with kwok nodes, one per profile.

    cluster.py up [--profile vanilla|openshift|pcai|nutanix]   start (or reuse) and print the kubeconfig
    cluster.py down [--profile P | --all]                      stop and delete
    cluster.py status                                          list clusters and whether they answer
    cluster.py kubeconfig [--profile P]                        print the kubeconfig path
    cluster.py env [--profile P]                               shell exports: KUBECONFIG, PATH (kubectl,
                                                               helm), HELM_PLUGINS (helm-diff)

What runs: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from the official Go
modules (tests/sim/build-binaries.sh), started by kwokctl's binary runtime, plus the kwok controller,
which plays kubelet for the fake nodes (Pods turn Running, Job Pods Succeeded; no container really
runs). Everything listens on 127.0.0.1 only. A profile adds the API surface of a platform
(tests/sim/profiles/<profile>/*.yaml) and, where a platform controller's visible effect matters, a
small emulator (tests/sim/emulators.py). See tests/sim/README.md for what is real and what is not.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROFILES = ("vanilla", "openshift", "pcai", "nutanix")
CACHE = Path(
    os.environ.get("DFW_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dataflywheel-blueprint"
)
# DFW_CLUSTERS_DIR keeps one checkout's clusters apart from another's (parallel work trees).
STATE = Path(os.environ.get("DFW_CLUSTERS_DIR") or CACHE / "clusters")


def versions() -> dict[str, str]:
    out = {}
    for raw in (HERE / "versions.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def binary(name: str) -> Path:
    v = versions()
    version = {
        "etcd": v["ETCD_VERSION"],
        "kwok": v["KWOK_VERSION"],
        "kwokctl": v["KWOK_VERSION"],
        "helm": v["HELM_VERSION"],
    }.get(name, v["KUBERNETES_VERSION"])
    return CACHE / "bin" / f"{name}-{version}" / name


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


def run(
    cmd: list[str], *, check: bool = True, capture: bool = True, env: dict | None = None, timeout: float | None = 300
) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=capture, text=True, env=env, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"[cluster] command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc


def cluster_name(profile: str) -> str:
    return f"dfw-{profile}"


def kubeconfig_path(profile: str) -> Path:
    return STATE / f"kubeconfig-{profile}.yaml"


def kwok_env() -> dict:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(STATE / "kwok")
    return env


def kubectl(profile: str, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    cmd = [str(binary("kubectl")), "--kubeconfig", str(kubeconfig_path(profile)), *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"[cluster] kubectl {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def ensure_binaries() -> None:
    wanted = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd", "kwok", "kwokctl"]
    if all(binary(b).exists() for b in wanted):
        return
    log("building the cluster binaries from the Go modules (cached after the first time)")
    run(["bash", str(HERE / "build-binaries.sh"), "all"], capture=False, timeout=None)


def profile_files(profile: str) -> list[Path]:
    files = sorted((HERE / "profiles" / "base").glob("*.yaml"))
    files += sorted((HERE / "profiles" / profile).glob("*.yaml"))
    return files


def profile_digest(profile: str) -> str:
    h = hashlib.sha256()
    for f in [*profile_files(profile), HERE / "emulators.py", HERE / "versions.env", Path(__file__)]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def marker(profile: str) -> Path:
    return STATE / f"{cluster_name(profile)}.json"


def answers(profile: str) -> bool:
    if not kubeconfig_path(profile).exists():
        return False
    proc = kubectl(profile, "get", "--raw", "/readyz", check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "ok"


def kwokctl_config(profile: str) -> Path:
    v = versions()
    kube = v["KUBERNETES_VERSION"]
    config = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": "127.0.0.1",
            "kubeVersion": kube,
            "etcdVersion": v["ETCD_VERSION"].lstrip("v"),
            "kwokVersion": v["KWOK_VERSION"],
            "kubeApiserverBinary": str(binary("kube-apiserver")),
            "kubeControllerManagerBinary": str(binary("kube-controller-manager")),
            "kubeSchedulerBinary": str(binary("kube-scheduler")),
            "kubectlBinary": str(binary("kubectl")),
            "etcdBinary": str(binary("etcd")),
            "kwokControllerBinary": str(binary("kwok")),
            # MutatingAdmissionPolicy is beta and off by default in 1.34: serve it, as a
            # cluster that supports the /scratch remediation would.
            "kubeFeatureGates": "MutatingAdmissionPolicy=true",
            "kubeRuntimeConfig": "admissionregistration.k8s.io/v1beta1=true",
            "kubeAuthorization": True,
            "kubeAdmission": True,
            "quietPull": True,
        },
    }
    path = STATE / f"{cluster_name(profile)}.kwokctl.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def create(profile: str) -> None:
    name = cluster_name(profile)
    STATE.mkdir(parents=True, exist_ok=True)
    cfg = kwokctl_config(profile)
    log(f"creating cluster {name} (profile {profile})")
    # kwokctl picks free loopback ports by probing: two clusters created at the same moment (parallel test
    # workers, molecule beside pytest) could pick the same ones, so creations on this machine take turns
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "cluster-create.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run(
            [
                str(binary("kwokctl")),
                "create",
                "cluster",
                "--name",
                name,
                "--config",
                str(cfg),
                "--kubeconfig",
                str(kubeconfig_path(profile)),
                "--wait",
                "2m",
            ],
            env=kwok_env(),
        )
    wait_ready(profile)


def wait_ready(profile: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not answers(profile):
        if time.monotonic() > deadline:
            logs = STATE / "kwok" / "clusters" / cluster_name(profile) / "logs"
            raise SystemExit(f"[cluster] the API server did not become ready in {timeout:.0f}s; logs in {logs}")
        time.sleep(0.5)


def apply_profile(profile: str) -> None:
    files = profile_files(profile)
    crds = [f for f in files if f.name.startswith("crd")]
    rest = [f for f in files if f not in crds]
    for f in crds:
        kubectl(profile, "apply", "--server-side", f"--field-manager=dfw-sim-{f.parent.name}-{f.stem}", "-f", str(f))
    if crds:
        kubectl(profile, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    for f in rest:
        # Retry: a fresh API server may still be starting controllers (e.g. the MAP plugin
        # needs a moment before a policy on a new CRD is accepted).
        for attempt in range(20):
            # one field manager per file, so a profile file can add labels to a base object
            proc = kubectl(
                profile,
                "apply",
                "--server-side",
                "--force-conflicts",
                f"--field-manager=dfw-sim-{f.parent.name}-{f.stem}",
                "-f",
                str(f),
                check=False,
            )
            if proc.returncode == 0:
                break
            if attempt == 19:
                raise SystemExit(f"[cluster] applying {f.name} failed:\n{proc.stdout}{proc.stderr}")
            time.sleep(1)
    status = HERE / "profiles" / profile / "status-patches.json"
    if status.exists():
        for item in json.loads(status.read_text()):
            args = [
                "patch",
                item["kind"],
                item["name"],
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps(item["patch"]),
            ]
            if item.get("namespace"):
                args[1:1] = ["-n", item["namespace"]]
            kubectl(profile, *args)


# A new MutatingAdmissionPolicy is accepted at once but enforced only after the API server has
# loaded it and the schema of the CRD it mutates; until then requests fail or pass unmutated.
# Each probe is a server-side dry run that must come back mutated before the cluster counts as up.
ADMISSION_PROBES = {
    "openshift": [
        {
            "what": "Route host defaulting (dfw-sim-route-host)",
            "namespace": "default",
            "object": {
                "apiVersion": "route.openshift.io/v1",
                "kind": "Route",
                "metadata": {"name": "dfw-sim-probe", "namespace": "default"},
                "spec": {"to": {"kind": "Service", "name": "probe"}},
            },
            "jsonpath": "{.spec.host}",
        }
    ],
    "pcai": [
        {
            "what": "Istio sidecar injection (dfw-sim-istio-sidecar-injector)",
            # kept between runs: a namespace being deleted would refuse the probe Pod
            "namespace": "dfw-sim-admission-probe",
            "namespace_labels": {"istio-injection": "enabled"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "dfw-sim-probe", "namespace": "dfw-sim-admission-probe"},
                "spec": {"containers": [{"name": "probe", "image": "probe"}]},
            },
            "jsonpath": "{.metadata.annotations.sidecar\\.istio\\.io/status}",
        }
    ],
}


def wait_admission_policies(profile: str, timeout: float = 90) -> None:
    for probe in ADMISSION_PROBES.get(profile, []):
        namespace = probe["namespace"]
        if probe.get("namespace_labels"):
            ns = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": probe["namespace_labels"]},
            }
            kubectl(profile, "apply", "--server-side", "--field-manager=dfw-sim-probe", "-f", "-", stdin=json.dumps(ns))
        deadline = time.monotonic() + timeout
        while True:
            proc = kubectl(
                profile,
                "create",
                "--dry-run=server",
                "-o",
                f"jsonpath={probe['jsonpath']}",
                "-f",
                "-",
                check=False,
                stdin=json.dumps(probe["object"]),
            )
            if proc.returncode == 0 and proc.stdout.strip():
                break
            if time.monotonic() > deadline:
                last = (proc.stderr or "the object was admitted without the mutation").strip()
                raise SystemExit(f"[cluster] {probe['what']} did not take effect in {timeout:.0f}s: {last}")
            time.sleep(1)


# What kwokctl's binary runtime starts; each writes <cluster>/pids/<name>.pid and runs <cluster>/bin/<name>.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


def exited_components(profile: str) -> list[str]:
    """Components whose process is gone (pid file missing, process dead, or the pid now another program)."""
    home = STATE / "kwok" / "clusters" / cluster_name(profile)
    gone = []
    for name in COMPONENTS:
        try:
            pid = int((home / "pids" / f"{name}.pid").read_text())
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, ValueError):
            gone.append(name)
            continue
        if argv0 != str(home / "bin" / name):
            gone.append(name)
    return gone


def control_plane_problems(profile: str, timeout: float = 60) -> list[str]:
    """Empty when every component runs and kube-controller-manager does its job (the `default`
    ServiceAccount exists: without it every Pod in a new namespace is refused)."""
    deadline = time.monotonic() + timeout
    while True:
        gone = exited_components(profile)
        if gone:
            return [f"{name} exited" for name in gone]
        if kubectl(profile, "get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0:
            return []
        if time.monotonic() > deadline:
            return [f"kube-controller-manager runs but created no default ServiceAccount in {timeout:.0f}s"]
        time.sleep(1)


def log_tail(profile: str, problems: list[str], lines: int = 15) -> str:
    logs = STATE / "kwok" / "clusters" / cluster_name(profile) / "logs"
    out = []
    for name in dict.fromkeys(p.split()[0] for p in problems):
        path = logs / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
        out.append(f"--- {path}\n" + "\n".join(text))
    return "\n".join(out)


def ensure_control_plane(profile: str) -> None:
    """kube-controller-manager can give up at start-up on a loaded machine ("failed to wait for apiserver
    being healthy") and exit; kwokctl does not restart it. Restart the cluster's components once; fail with
    the component's log if the problem stays."""
    problems = control_plane_problems(profile)
    if not problems:
        return
    name = cluster_name(profile)
    log(f"{name}: {'; '.join(problems)}; restarting its control plane\n{log_tail(profile, problems)}")
    run([str(binary("kwokctl")), "stop", "cluster", "--name", name], check=False, env=kwok_env())
    run([str(binary("kwokctl")), "start", "cluster", "--name", name], check=False, env=kwok_env())
    wait_ready(profile)
    problems = control_plane_problems(profile)
    if problems:
        raise SystemExit(
            f"[cluster] {name}: {'; '.join(problems)}, also after a restart; `cluster.py down --profile {profile}` "
            f"and `up` again, or look at the logs:\n{log_tail(profile, problems)}"
        )
    log(f"{name}: control plane restarted")


def emulator_pidfile(profile: str) -> Path:
    return STATE / f"{cluster_name(profile)}.emulators.pid"


def pid_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def start_emulators(profile: str) -> None:
    pidfile = emulator_pidfile(profile)
    if pid_alive(pidfile):
        return
    logfile = STATE / f"{cluster_name(profile)}.emulators.log"
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own script with our own arguments
            [
                sys.executable,
                str(HERE / "emulators.py"),
                "--profile",
                profile,
                "--kubeconfig",
                str(kubeconfig_path(profile)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pidfile.write_text(str(proc.pid))


def stop_emulators(profile: str) -> None:
    pidfile = emulator_pidfile(profile)
    if pid_alive(pidfile):
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
    pidfile.unlink(missing_ok=True)


def wait_nodes(profile: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        proc = kubectl(profile, "get", "nodes", "-o", "json", check=False)
        if proc.returncode == 0:
            nodes = json.loads(proc.stdout)["items"]
            ready = [
                n
                for n in nodes
                if any(
                    c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", [])
                )
            ]
            if nodes and len(ready) == len(nodes):
                return
        if time.monotonic() > deadline:
            raise SystemExit("[cluster] the kwok nodes did not turn Ready; is the kwok controller running?")
        time.sleep(0.5)


def up(profile: str) -> None:
    ensure_binaries()
    name = cluster_name(profile)
    digest = profile_digest(profile)
    state = json.loads(marker(profile).read_text()) if marker(profile).exists() else {}
    if state.get("digest") != digest and state:
        log(f"profile {profile} changed since {name} was created: recreating it")
        delete(profile)
        state = {}
    if state and not answers(profile):
        log(f"starting stopped cluster {name}")
        proc = run([str(binary("kwokctl")), "start", "cluster", "--name", name], check=False, env=kwok_env())
        if proc.returncode != 0:
            log(f"could not restart {name}; recreating it")
            delete(profile)
            state = {}
        else:
            wait_ready(profile)
    if not state:
        if (STATE / "kwok" / "clusters" / name).exists():
            log(f"removing the half-made cluster {name} left by an earlier failed start")
            delete(profile)
        create(profile)
        apply_profile(profile)
        marker(profile).write_text(json.dumps({"profile": profile, "digest": digest}))
    ensure_control_plane(profile)
    wait_admission_policies(profile)
    start_emulators(profile)
    wait_nodes(profile)
    log(f"cluster {name} is ready (profile {profile})")
    print(kubeconfig_path(profile))


def delete(profile: str) -> None:
    stop_emulators(profile)
    name = cluster_name(profile)
    if binary("kwokctl").exists():
        run([str(binary("kwokctl")), "delete", "cluster", "--name", name], check=False, env=kwok_env())
    shutil.rmtree(STATE / "kwok" / "clusters" / name, ignore_errors=True)
    for p in (marker(profile), kubeconfig_path(profile), STATE / f"{name}.kwokctl.yaml"):
        p.unlink(missing_ok=True)


def status() -> None:
    for profile in PROFILES:
        if marker(profile).exists():
            state = "answering" if answers(profile) else "not answering"
            emu = "emulators running" if pid_alive(emulator_pidfile(profile)) else "emulators stopped"
            print(f"{cluster_name(profile)}\t{state}\t{emu}\t{kubeconfig_path(profile)}")


def env(profile: str) -> None:
    v = versions()
    bins = [binary("kubectl").parent, binary("helm").parent]
    plugins = CACHE / "bin" / f"helm-diff-{v['HELM_DIFF_VERSION']}"
    print(f"export KUBECONFIG={kubeconfig_path(profile)}")
    print(f"export K8S_AUTH_KUBECONFIG={kubeconfig_path(profile)}")
    print(f"export HELM_PLUGINS={plugins}")
    print("export PATH=" + ":".join(str(b) for b in bins) + ":$PATH")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "status", "kubeconfig", "env"])
    parser.add_argument("--profile", default=os.environ.get("PROFILE", "vanilla"), choices=PROFILES)
    parser.add_argument("--all", action="store_true", help="with down: every profile")
    args = parser.parse_args()
    if args.action == "up":
        up(args.profile)
    elif args.action == "down":
        for profile in PROFILES if args.all else (args.profile,):
            if marker(profile).exists() or (STATE / "kwok" / "clusters" / cluster_name(profile)).exists():
                log(f"deleting {cluster_name(profile)}")
                delete(profile)
    elif args.action == "status":
        status()
    elif args.action == "env":
        env(args.profile)
    else:
        print(kubeconfig_path(args.profile))


if __name__ == "__main__":
    main()
