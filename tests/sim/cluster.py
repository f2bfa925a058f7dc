#!/usr/bin/env python3
"""The local test cluster: a real Kubernetes control plane with kwok nodes, one per profile.

    cluster.py up [--profile vanilla|vanilla-map|openshift|pcai|nutanix] [--nim-operator-version v2.0.2|v3.1.2]
                                                               start (or reuse) and print the kubeconfig
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
small emulator (tests/sim/emulators.py), or admission webhooks of the tests' own that the real
kube-apiserver calls (tests/sim/admission.py). The profiles match what each platform ships:
MutatingAdmissionPolicy is off (beta and off by default in 1.34, Tech Preview on OpenShift);
vanilla-map is vanilla with the feature gate and API on. See tests/sim/README.md for what is real
and what is not.

Every profile serves NVIDIA's REAL CRDs from the shared upstream reference files (tests/upstream.py,
$DFW_SHARED_DIR or <repo>/../shared): the apps.nvidia.com CRDs of one NIM Operator version (the
knob: --nim-operator-version or $DFW_NIM_OPERATOR_VERSION) and the GPU Operator's nvidia.com CRDs,
CEL rules included. Hand-written CRDs remain only where no upstream file exists (profiles' platform
CRDs, Volcano, Kyverno, OLM).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from tests import upstream  # noqa: E402 - the repo root goes on the path first

PROFILES = ("vanilla", "vanilla-map", "openshift", "pcai", "nutanix")
# The profile whose files (profiles/<dir>/) and platform a profile has, when not its own name.
PROFILE_DIR = {"vanilla-map": "vanilla"}
# MutatingAdmissionPolicy (admissionregistration.k8s.io/v1beta1) served: only where asked for.
MAP_PROFILES = {"vanilla-map"}
# Service networks as the platforms configure them (kubeadm's default elsewhere); the cluster DNS Service
# lives where each platform has it, at the 10th address (profiles/<profile>/dns.yaml).
SERVICE_CIDR = {"openshift": "172.30.0.0/16"}
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
# EMULATED admission webhooks (tests/sim/admission.py) each profile registers with the real API server:
# (kind, configuration name, webhook name, path, rules, extra webhook fields)
POD_CREATE = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]
WEBHOOKS = {
    "openshift": [
        (
            "ValidatingWebhookConfiguration",
            "dfw-sim-emulated-openshift-scc-admission",
            "scc.emulated.dfw-sim.test",
            "/scc",
            POD_CREATE,
            {},
        ),
        (
            "MutatingWebhookConfiguration",
            "dfw-sim-emulated-openshift-route-host",
            "route-host.emulated.dfw-sim.test",
            "/route-host",
            [
                {
                    "apiGroups": ["route.openshift.io"],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["routes"],
                }
            ],
            {},
        ),
    ],
    "pcai": [
        (
            "MutatingWebhookConfiguration",
            "dfw-sim-emulated-istio-sidecar-injector",
            "sidecar-injector.emulated.dfw-sim.test",
            "/istio-inject",
            POD_CREATE,
            {
                "namespaceSelector": {"matchLabels": {"istio-injection": "enabled"}},
                "objectSelector": {
                    "matchExpressions": [{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]
                },
                "reinvocationPolicy": "IfNeeded",
            },
        )
    ],
}


def platform_of(profile: str) -> str:
    return PROFILE_DIR.get(profile, profile)


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
        "kyverno": v["KYVERNO_VERSION"],
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
    files += sorted((HERE / "profiles" / platform_of(profile)).glob("*.yaml"))
    return files


def profile_digest(profile: str) -> str:
    h = hashlib.sha256()
    h.update(profile.encode())
    for f in [
        *profile_files(profile),
        HERE / "emulators.py",
        HERE / "admission.py",
        HERE / "versions.env",
        Path(__file__),
    ]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def nim_operator_version(wanted: str | None = None) -> str:
    """The NIM Operator version whose CRDs the cluster serves: --nim-operator-version, else
    $DFW_NIM_OPERATOR_VERSION, else the newest one the tests use."""
    version = wanted or os.environ.get("DFW_NIM_OPERATOR_VERSION") or upstream.NIM_OPERATOR_DEFAULT
    return upstream.check_nim_operator_version(version)


def upstream_crd_files(version: str) -> list[Path]:
    """The REAL apps.nvidia.com (NIM Operator `version`) and nvidia.com (GPU Operator) CRDs, read from
    the shared upstream reference files (tests/upstream.py), never from a copy in the repository."""
    return [*upstream.nim_operator_crd_files(version), *upstream.gpu_operator_crd_files()]


def upstream_digest(version: str) -> str:
    h = hashlib.sha256(version.encode())
    for f in upstream_crd_files(version):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def apply_upstream_crds(profile: str, version: str) -> None:
    """Serve the NIM Operator `version`'s CRDs and the GPU Operator's, server-side (three v3.1.2 CRDs
    exceed the 256 KiB client-side annotation limit); apps.nvidia.com CRDs of another version that
    this one lacks (NIMBuild when going back to v2.0.2) are deleted."""
    files = upstream_crd_files(version)
    wanted = {yaml_name(f) for f in files}
    served = kubectl(profile, "get", "crd", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    extra = [n for n in served if n.endswith(".apps.nvidia.com") and n not in wanted]
    if extra:
        kubectl(profile, "delete", "crd", "--wait=true", *extra)
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=dfw-sim-upstream-crds"]
    for f in files:
        args += ["-f", str(f)]
    kubectl(profile, *args)
    wait_established(profile, wanted)
    log(f"serving the upstream CRDs of NIM Operator {version} and GPU Operator {upstream.GPU_OPERATOR_VERSION}")


def wait_established(profile: str, names: set[str], timeout: float = 120) -> None:
    """Poll until every CRD reports Established (kubectl wait errors out on a CRD with no conditions yet)."""
    deadline = time.monotonic() + timeout
    jsonpath = '{range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}'
    while True:
        proc = kubectl(profile, "get", "crd", "-o", f"jsonpath={jsonpath}", check=False)
        established = {line.split()[0] for line in proc.stdout.splitlines() if line.split()[1:] == ["True"]}
        pending = names - established
        if not pending:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"[cluster] CRDs not Established in {timeout:.0f}s: {', '.join(sorted(pending))}")
        time.sleep(0.5)


def yaml_name(crd_file: Path) -> str:
    # file names are <group>_<plural>.yaml, the CRD name is <plural>.<group>
    group, plural = crd_file.stem.split("_", 1)
    return f"{plural}.{group}"


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
            "kubeAuthorization": True,
            "kubeAdmission": True,
            "quietPull": True,
            # kwok's port-forward rules as CRDs, so a test can point a Pod's port at a real server on
            # loopback and the API server's portforward subresource reaches it (kwok plays kubelet);
            # Logs likewise: a Logs object names the file (CRI log format) kwok serves as a container's
            # log, which the API server's pods/log subresource reads from kwok's kubelet endpoint.
            "enableCRDs": ["PortForward", "ClusterPortForward", "Logs"],
        },
    }
    if profile in MAP_PROFILES:
        # MutatingAdmissionPolicy is beta and off by default in 1.34: this profile turns it on.
        config["options"]["kubeFeatureGates"] = "MutatingAdmissionPolicy=true"
        config["options"]["kubeRuntimeConfig"] = "admissionregistration.k8s.io/v1beta1=true"
    cidr = SERVICE_CIDR.get(platform_of(profile), DEFAULT_SERVICE_CIDR)
    # One instance of each controller: no leader election. With it on (kwokctl's default), a
    # controller-manager that cannot renew its lease in 10 s (the fault tests pause or kill the API
    # server; a loaded 2-core machine) exits for good, and new namespaces then get no `default`
    # ServiceAccount, so every Pod in them is refused.
    single = [{"key": "leader-elect", "value": "false"}]
    config["componentsPatches"] = [
        {"name": "kube-apiserver", "extraArgs": [{"key": "service-cluster-ip-range", "value": cidr}]},
        {"name": "kube-controller-manager", "extraArgs": single},
        {"name": "kube-scheduler", "extraArgs": single},
    ]
    path = STATE / f"{cluster_name(profile)}.kwokctl.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


@contextlib.contextmanager
def port_lock():
    """Held while clusters take their loopback ports. kwokctl picks free ports by probing: two clusters created at
    the same moment (parallel test workers, molecule beside pytest) could pick the same ones, and a creation
    could pick the ports of a stopped cluster that is being started. So these take turns on this machine."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "cluster-create.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def create(profile: str) -> None:
    name = cluster_name(profile)
    STATE.mkdir(parents=True, exist_ok=True)
    cfg = kwokctl_config(profile)
    log(f"creating cluster {name} (profile {profile})")
    with port_lock():
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


def cluster_dir(profile: str) -> Path:
    return STATE / "kwok" / "clusters" / cluster_name(profile)


def ready_within(profile: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not answers(profile):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def wait_ready(profile: str, timeout: float = 120) -> None:
    if not ready_within(profile, timeout):
        logs = cluster_dir(profile) / "logs"
        raise SystemExit(f"[cluster] the API server did not become ready in {timeout:.0f}s; logs in {logs}")


def taken_ports(profile: str) -> list[str]:
    """The loopback ports the stopped cluster's components were created with that something else holds now."""
    import yaml  # noqa: PLC0415 - the venv's; only a restart needs it

    taken = []
    with open(cluster_dir(profile) / "kwok.yaml") as config:
        for doc in yaml.safe_load_all(config):
            for component in (doc or {}).get("components") or []:
                for port in component.get("ports") or []:
                    with socket.socket() as sock:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do
                        try:
                            sock.bind(("127.0.0.1", port["port"]))
                        except OSError:
                            taken.append(f"{component['name']} {port['port']}")
    return taken


def restarted(profile: str) -> str | None:
    """Bring a stopped cluster back (kwokctl start, on the ports it was created with); None once it answers, else
    why not. An API server whose process is alive is only slow (a loaded machine, a test's SIGSTOP): it is waited
    for before anything is restarted."""
    if "kube-apiserver" not in exited_components(profile) and ready_within(profile, 60):
        return None
    kwokctl = str(binary("kwokctl"))
    name = cluster_name(profile)
    with port_lock():
        if len(exited_components(profile)) < len(COMPONENTS):  # half running: start from all stopped
            run([kwokctl, "stop", "cluster", "--name", name], check=False, env=kwok_env())
        taken = taken_ports(profile)
        if taken:
            return f"its ports are in use by other processes now ({', '.join(taken)})"
        proc = run([kwokctl, "start", "cluster", "--name", name], check=False, env=kwok_env())
        if proc.returncode != 0:
            return f"kwokctl start exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}"
        if not ready_within(profile, 120):
            return f"the API server did not answer in 120 s\n{log_tail(profile, ['kube-apiserver', 'etcd'])}"
    return None


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


# Each probe is a server-side dry run through the profile's admission chain that must come back as
# expected (mutated, admitted or refused) before the cluster counts as up: it proves the EMULATED
# webhooks are registered and answering.
ADMISSION_PROBES = {
    "openshift": [
        {
            "what": "Route host defaulting (dfw-sim-emulated-openshift-route-host)",
            "namespace": "default",
            "object": {
                "apiVersion": "route.openshift.io/v1",
                "kind": "Route",
                "metadata": {"name": "dfw-sim-probe", "namespace": "default"},
                "spec": {"to": {"kind": "Service", "name": "probe"}},
            },
            "jsonpath": "{.spec.host}",
        },
        {
            "what": "SCC admission admitting a restricted Pod (dfw-sim-emulated-openshift-scc-admission)",
            "namespace": "default",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "dfw-sim-probe", "namespace": "default"},
                "spec": {"containers": [{"name": "probe", "image": "probe"}]},
            },
            "jsonpath": "{.metadata.name}",
        },
        {
            "what": "SCC admission refusing a root Pod (dfw-sim-emulated-openshift-scc-admission)",
            "namespace": "default",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "dfw-sim-probe", "namespace": "default"},
                "spec": {"containers": [{"name": "probe", "image": "probe", "securityContext": {"runAsUser": 0}}]},
            },
            "refused": "unable to validate against any security context constraint",
        },
    ],
    "pcai": [
        {
            "what": "Istio sidecar injection (dfw-sim-emulated-istio-sidecar-injector)",
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
                f"jsonpath={probe.get('jsonpath', '{.metadata.name}')}",
                "-f",
                "-",
                check=False,
                stdin=json.dumps(probe["object"]),
            )
            if probe.get("refused"):
                if proc.returncode != 0 and probe["refused"] in proc.stderr:
                    break
            elif proc.returncode == 0 and proc.stdout.strip():
                break
            if time.monotonic() > deadline:
                last = (proc.stderr or proc.stdout or "the object came back unchanged").strip()
                raise SystemExit(f"[cluster] {probe['what']} did not take effect in {timeout:.0f}s: {last}")
            time.sleep(1)


def admission_dir(profile: str) -> Path:
    return STATE / f"{cluster_name(profile)}.admission"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def register_webhooks(profile: str, port: int, timeout: float = 30) -> None:
    """Apply the profile's EMULATED webhook configurations once the emulator's server answers."""
    hooks = WEBHOOKS.get(profile, [])
    if not hooks:
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                logfile = STATE / f"{cluster_name(profile)}.emulators.log"
                raise SystemExit(
                    f"[cluster] the emulated admission webhooks did not listen on {port}; see {logfile}"
                ) from None
            time.sleep(0.2)
    ca = base64.b64encode((admission_dir(profile) / "ca.crt").read_bytes()).decode()
    for kind, config_name, hook_name, path, rules, extra in hooks:
        hook = {
            "name": hook_name,
            "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca},
            "rules": rules,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            **extra,
        }
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {
                "name": config_name,
                "annotations": {"dfw-sim/emulation": "EMULATED platform admission (tests/sim/admission.py)"},
            },
            "webhooks": [hook],
        }
        kubectl(
            profile,
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=dfw-sim-admission",
            "-f",
            "-",
            stdin=json.dumps(body),
        )


# What kwokctl's binary runtime starts; each writes <cluster>/pids/<name>.pid and runs <cluster>/bin/<name>.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


def exited_components(profile: str) -> list[str]:
    """Components whose process is gone (pid file missing, process dead, or the pid now another program)."""
    home = cluster_dir(profile)
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
    logs = cluster_dir(profile) / "logs"
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


def start_emulators(profile: str, port: int | None) -> None:
    pidfile = emulator_pidfile(profile)
    if pid_alive(pidfile):
        return
    logfile = STATE / f"{cluster_name(profile)}.emulators.log"
    admission = ["--admission-port", str(port), "--admission-dir", str(admission_dir(profile))] if port else []
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own script with our own arguments
            [
                sys.executable,
                str(HERE / "emulators.py"),
                "--profile",
                platform_of(profile),
                "--nim-operator-version",
                json.loads(marker(profile).read_text()).get("nim_operator_version", upstream.NIM_OPERATOR_DEFAULT),
                "--kubeconfig",
                str(kubeconfig_path(profile)),
                *admission,
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


def up(profile: str, nim_version: str | None = None) -> None:
    ensure_binaries()
    version = nim_operator_version(nim_version)
    name = cluster_name(profile)
    digest = profile_digest(profile)
    state = json.loads(marker(profile).read_text()) if marker(profile).exists() else {}
    if state.get("digest") != digest and state:
        log(f"profile {profile} changed since {name} was created: recreating it")
        delete(profile)
        state = {}
    if state and not answers(profile):
        log(f"starting stopped cluster {name}")
        why = restarted(profile)
        if why:
            log(f"could not restart {name}: {why}; recreating it")
            delete(profile)
            state = {}
    if not state:
        if cluster_dir(profile).exists():
            log(f"removing the half-made cluster {name} left by an earlier failed start")
            delete(profile)
        create(profile)
        apply_profile(profile)
        state = {"profile": profile, "digest": digest}
        if profile in WEBHOOKS:
            state["admission_port"] = free_port()
            try:  # run as a script (tests/sim on sys.path) or imported as tests.sim.cluster
                from admission import make_certificates  # noqa: PLC0415
            except ImportError:
                from tests.sim.admission import make_certificates  # noqa: PLC0415

            make_certificates(admission_dir(profile))
        marker(profile).write_text(json.dumps(state))
    ensure_control_plane(profile)
    crds = upstream_digest(version)
    if state.get("upstream_crds") != crds:
        apply_upstream_crds(profile, version)
        state.update(nim_operator_version=version, upstream_crds=crds)
        marker(profile).write_text(json.dumps(state))
    start_emulators(profile, state.get("admission_port"))
    register_webhooks(profile, state.get("admission_port"))
    wait_admission_policies(profile)
    wait_nodes(profile)
    log(f"cluster {name} is ready (profile {profile})")
    print(kubeconfig_path(profile))


def delete(profile: str) -> None:
    stop_emulators(profile)
    name = cluster_name(profile)
    if binary("kwokctl").exists():
        run([str(binary("kwokctl")), "delete", "cluster", "--name", name], check=False, env=kwok_env())
    shutil.rmtree(cluster_dir(profile), ignore_errors=True)
    shutil.rmtree(admission_dir(profile), ignore_errors=True)
    for p in (marker(profile), kubeconfig_path(profile), STATE / f"{name}.kwokctl.yaml"):
        p.unlink(missing_ok=True)


def status() -> None:
    for profile in PROFILES:
        if marker(profile).exists():
            state = "answering" if answers(profile) else "not answering"
            emu = "emulators running" if pid_alive(emulator_pidfile(profile)) else "emulators stopped"
            nim = json.loads(marker(profile).read_text()).get("nim_operator_version", "?")
            print(f"{cluster_name(profile)}\t{state}\t{emu}\t{kubeconfig_path(profile)}\tNIM Operator CRDs {nim}")


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
    parser.add_argument(
        "--nim-operator-version",
        choices=upstream.NIM_OPERATOR_VERSIONS,
        help="with up: whose apps.nvidia.com CRDs the cluster serves (default $DFW_NIM_OPERATOR_VERSION, "
        f"else {upstream.NIM_OPERATOR_DEFAULT}); switching re-applies them without recreating the cluster",
    )
    args = parser.parse_args()
    if args.action == "up":
        up(args.profile, args.nim_operator_version)
    elif args.action == "down":
        for profile in PROFILES if args.all else (args.profile,):
            if marker(profile).exists() or cluster_dir(profile).exists():
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
