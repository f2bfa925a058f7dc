"""Unit tests for the local test cluster launcher and its emulated controllers (no cluster needed)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

SIM = Path(__file__).resolve().parents[2] / "tests" / "sim"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"sim_{name}", SIM / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    mod = load("cluster")
    monkeypatch.setattr(mod, "CACHE", tmp_path)
    monkeypatch.setattr(mod, "STATE", tmp_path / "clusters")
    (tmp_path / "clusters").mkdir()
    return mod


def test_versions_are_pinned(cluster):
    v = cluster.versions()
    assert v["KUBERNETES_VERSION"].startswith("v1.")
    minor = int(v["KUBERNETES_VERSION"].split(".")[1])
    assert minor >= 34, "MutatingAdmissionPolicy v1beta1 needs Kubernetes >= 1.34"
    assert v["HELM_VERSION"].startswith("v3.")
    assert cluster.binary("kube-apiserver").parts[-2] == f"kube-apiserver-{v['KUBERNETES_VERSION']}"
    assert cluster.binary("etcd").parts[-2] == f"etcd-{v['ETCD_VERSION']}"


def test_kwokctl_config_binds_loopback_and_serves_map_only_on_vanilla_map(cluster):
    cfg = json.loads(cluster.kwokctl_config("vanilla").read_text())["options"]
    assert cfg["bindAddress"] == "127.0.0.1"
    # Kubernetes 1.34 as shipped: the MutatingAdmissionPolicy gate and its beta API are off
    assert "MutatingAdmissionPolicy" not in cfg.get("kubeFeatureGates", "")
    assert "admissionregistration" not in cfg.get("kubeRuntimeConfig", "")
    on = json.loads(cluster.kwokctl_config("vanilla-map").read_text())["options"]
    assert "MutatingAdmissionPolicy=true" in on["kubeFeatureGates"]
    assert on["kubeRuntimeConfig"] == "admissionregistration.k8s.io/v1beta1=true"
    assert cfg["kubeAuthorization"] is True and cfg["kubeAdmission"] is True
    # every binary comes from our cache, nothing is downloaded
    for key in (
        "kubeApiserverBinary",
        "kubeControllerManagerBinary",
        "kubeSchedulerBinary",
        "etcdBinary",
        "kwokControllerBinary",
        "kubectlBinary",
    ):
        assert cfg[key].startswith(str(cluster.CACHE)), key


@pytest.mark.parametrize("profile", ["vanilla", "vanilla-map", "openshift", "pcai", "nutanix"])
def test_profile_files_apply_base_first(cluster, profile):
    files = cluster.profile_files(profile)
    assert files[0].parent.name == "base"
    assert {f.parent.name for f in files} <= {"base", profile.removesuffix("-map")}


def test_service_network_and_dns_address_per_platform(cluster):
    patches = {
        p: json.loads(cluster.kwokctl_config(p).read_text())["componentsPatches"][0]["extraArgs"][0]["value"]
        for p in ("vanilla", "openshift")
    }
    assert patches == {"vanilla": "10.96.0.0/12", "openshift": "172.30.0.0/16"}


def test_profile_digest_follows_the_profile(cluster, monkeypatch, tmp_path):
    before = cluster.profile_digest("openshift")
    assert before == cluster.profile_digest("openshift")
    assert before != cluster.profile_digest("vanilla")
    extra = tmp_path / "extra.yaml"
    extra.write_text("kind: ConfigMap\n")
    files = cluster.profile_files("openshift")
    monkeypatch.setattr(cluster, "profile_files", lambda p: [*files, extra])
    assert cluster.profile_digest("openshift") != before


# ------------------------------------------------------------- emulated OpenShift UID ranges
class FakeCore:
    def __init__(self):
        self.patches = []

    def patch_namespace(self, name, body):
        self.patches.append((name, body))


def ns(name, annotations=None, phase="Active"):
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name, annotations=annotations), status=SimpleNamespace(phase=phase)
    )


def test_uid_ranges_are_unique_and_skip_used_blocks():
    emu = load("emulators")
    core, blocks = FakeCore(), {emu.UID_BASE}
    emu.annotate_namespace(core, ns("a"), blocks)
    emu.annotate_namespace(core, ns("b"), blocks)
    ranges = [p[1]["metadata"]["annotations"][emu.UID_ANN] for p in core.patches]
    assert ranges == [f"{emu.UID_BASE + 10000}/10000", f"{emu.UID_BASE + 20000}/10000"]
    mcs = [p[1]["metadata"]["annotations"]["openshift.io/sa.scc.mcs"] for p in core.patches]
    assert len(set(mcs)) == 2


def test_uid_range_left_alone_when_present_or_terminating():
    emu = load("emulators")
    core = FakeCore()
    emu.annotate_namespace(core, ns("has", {emu.UID_ANN: "1000000000/10000"}), set())
    emu.annotate_namespace(core, ns("gone", phase="Terminating"), set())
    assert core.patches == []


def test_operator_status_writes_what_the_operator_would_once_per_change(monkeypatch):
    """The operator-status emulator acts on watch events: a new NIMService gets its Service and Ready status, the
    event of its own write changes nothing, an annotated state is written, and objects in a namespace labelled
    operator-status=off or being deleted are left alone."""
    emu = load("emulators")
    patches, services = [], []

    class Custom:
        def patch_namespaced_custom_object_status(self, group, version, namespace, plural, name, body):
            patches.append((namespace, name, body["status"]))

    class Core:
        def read_namespace(self, name):
            return SimpleNamespace(metadata=SimpleNamespace(labels={emu.OFF_LABEL: "off"} if name == "off" else None))

        def create_namespaced_service(self, namespace, body):
            services.append((namespace, body.metadata.name, body.spec.ports[0].port))

    monkeypatch.setattr(emu.client, "CustomObjectsApi", lambda api: Custom())
    monkeypatch.setattr(emu.client, "CoreV1Api", lambda api: Core())
    handle = emu.status_writer(None, next(k for k in emu.OPERATED if k[2] == "nimservices"), set(), set())

    def nimservice(name, namespace="ns", **meta):
        return {
            "apiVersion": "apps.nvidia.com/v1alpha1",
            "kind": "NIMService",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", **meta},
            "spec": {"expose": {"service": {"port": 9000}}},
        }

    handle(nimservice("llm"))
    assert services == [("ns", "llm", 9000)]
    assert [(ns, name, status["state"]) for ns, name, status in patches] == [("ns", "llm", "Ready")]
    handle({**nimservice("llm"), "status": patches[0][2]})  # the watch brings the emulator's own write back
    assert len(patches) == 1 and len(services) == 1
    handle({**nimservice("llm", annotations={emu.STATE_ANN: "Failed"}), "status": patches[0][2]})
    assert patches[-1][2]["state"] == "Failed"
    assert [c["status"] for c in patches[-1][2]["conditions"] if c["type"] == "Ready"] == ["False"]
    handle(nimservice("mine", namespace="off"))
    handle(nimservice("going", deletionTimestamp="2026-12-05T00:00:00Z"))
    assert len(patches) == 2 and len(services) == 1


def test_admission_probe_retries_until_the_webhooks_answer(cluster, monkeypatch):
    # the Route comes back unmutated twice, then with a host; the plain Pod is admitted; the root Pod
    # is admitted once (webhook not called yet), then refused by the emulated SCC admission
    routes = iter(["", "", "r-default.apps.example"])
    refusals = iter([(0, ""), (1, "unable to validate against any security context constraint: [...]")])
    calls = []

    def fake_kubectl(profile, *args, check=True, stdin=None):
        calls.append(args)
        if args[0] != "create":
            return SimpleNamespace(returncode=0, stdout="", stderr="")
        obj = json.loads(stdin)
        if obj["kind"] == "Route":
            return SimpleNamespace(returncode=0, stdout=next(routes), stderr="")
        if "securityContext" not in json.dumps(obj):
            return SimpleNamespace(returncode=0, stdout="dfw-sim-probe", stderr="")
        code, err = next(refusals)
        return SimpleNamespace(returncode=code, stdout="" if code else "dfw-sim-probe", stderr=err)

    monkeypatch.setattr(cluster, "kubectl", fake_kubectl)
    monkeypatch.setattr(cluster.time, "sleep", lambda s: None)
    cluster.wait_admission_policies("openshift", timeout=30)
    dry_runs = [c for c in calls if c[0] == "create"]
    assert len(dry_runs) == 6 and all("--dry-run=server" in c for c in dry_runs)


def test_admission_probe_times_out_naming_the_policy(cluster, monkeypatch):
    def fake_kubectl(profile, *args, check=True, stdin=None):
        if args[0] == "create":
            return SimpleNamespace(returncode=1, stdout="", stderr="policy dfw-sim-istio-sidecar-injector: not ready")
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(cluster, "kubectl", fake_kubectl)
    monkeypatch.setattr(cluster.time, "sleep", lambda s: None)
    monkeypatch.setattr(cluster.time, "monotonic", lambda: next(clock))
    with pytest.raises(SystemExit) as err:
        cluster.wait_admission_policies("pcai", timeout=30)
    assert "Istio sidecar injection" in str(err.value) and "not ready" in str(err.value)


def test_profiles_without_admission_policies_need_no_probe(cluster, monkeypatch):
    monkeypatch.setattr(cluster, "kubectl", lambda *a, **k: pytest.fail("no probe expected on vanilla"))
    cluster.wait_admission_policies("vanilla")


def component_home(cluster, profile="vanilla"):
    home = cluster.STATE / "kwok" / "clusters" / cluster.cluster_name(profile)
    for sub in ("pids", "bin", "logs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    return home


def test_exited_components_reads_kwokctl_pid_files(cluster):
    home = component_home(cluster)
    for name in cluster.COMPONENTS:
        (home / "bin" / name).symlink_to(shutil.which("sleep"))
    running = [subprocess.Popen([str(home / "bin" / name), "60"]) for name in ("etcd", "kwok-controller")]
    try:
        for name, proc in zip(("etcd", "kwok-controller"), running):
            (home / "pids" / f"{name}.pid").write_text(str(proc.pid))
        finished = subprocess.Popen([str(home / "bin" / "kube-apiserver"), "0"])
        finished.wait()
        (home / "pids" / "kube-apiserver.pid").write_text(str(finished.pid))
        # a pid that now belongs to another program (this test) does not count as the component
        (home / "pids" / "kube-controller-manager.pid").write_text(str(os.getpid()))
        # kube-scheduler: no pid file at all
        assert cluster.exited_components("vanilla") == ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    finally:
        for proc in running:
            proc.kill()
            proc.wait()


def test_control_plane_waits_for_the_default_service_account(cluster, monkeypatch):
    answers = iter([1, 1, 0])
    monkeypatch.setattr(cluster, "exited_components", lambda p: [])
    monkeypatch.setattr(cluster, "kubectl", lambda *a, **k: SimpleNamespace(returncode=next(answers)))
    monkeypatch.setattr(cluster.time, "sleep", lambda s: None)
    assert cluster.control_plane_problems("vanilla") == []

    clock = iter([0, 10, 100])
    monkeypatch.setattr(cluster, "kubectl", lambda *a, **k: SimpleNamespace(returncode=1))
    monkeypatch.setattr(cluster.time, "monotonic", lambda: next(clock))
    assert cluster.control_plane_problems("vanilla", timeout=60) == [
        "kube-controller-manager runs but created no default ServiceAccount in 60s"
    ]


def test_exited_controller_manager_is_restarted_once_then_reported(cluster, monkeypatch):
    home = component_home(cluster, "nutanix")
    (home / "logs" / "kube-controller-manager.log").write_text(
        "E1123 08:34:01 failed to wait for apiserver being healthy: rbac/bootstrap-roles failed\n"
    )
    calls = []
    monkeypatch.setattr(cluster, "run", lambda cmd, **k: calls.append(cmd[1]))
    monkeypatch.setattr(cluster, "wait_ready", lambda p: calls.append("wait_ready"))
    states = iter([["kube-controller-manager exited"], []])
    monkeypatch.setattr(cluster, "control_plane_problems", lambda p: next(states))
    cluster.ensure_control_plane("nutanix")
    assert calls == ["stop", "start", "wait_ready"]

    calls.clear()
    states = iter([["kube-controller-manager exited"], ["kube-controller-manager exited"]])
    with pytest.raises(SystemExit) as err:
        cluster.ensure_control_plane("nutanix")
    assert calls == ["stop", "start", "wait_ready"], "one restart, not a loop"
    msg = str(err.value)
    assert "dfw-nutanix: kube-controller-manager exited, also after a restart" in msg
    assert "rbac/bootstrap-roles failed" in msg and "cluster.py down --profile nutanix" in msg

    calls.clear()
    monkeypatch.setattr(cluster, "control_plane_problems", lambda p: [])
    cluster.ensure_control_plane("nutanix")
    assert calls == [], "a healthy control plane is left alone"
