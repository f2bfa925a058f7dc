"""Faults: flaky simulators and a briefly unavailable API server.

Runs either complete or stop with a diagnosis (no traceback), never create duplicate flywheel
jobs or Entity Store entries, and a rerun after a stop converges to the same end state as an
undisturbed run, so nothing half-applied is left behind.

The API server faults act on this checkout's own local cluster only (DFW_CLUSTERS_DIR): its
kube-apiserver process is paused with SIGSTOP/SIGCONT (a hung or overloaded API server: requests
hang, then finish), or stopped and started again with the command line kwokctl gave it (a
restarting API server: connections are refused). Skipped with that reason against TEST_KUBECONFIG
clusters.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.harness import ROOT
from tests.integration import cluster_state
from tests.integration.conftest import api_client, kubeconfig_for
from tests.integration.flywheel_sim import control
from tests.integration.playbook_runner import alive, play
from tests.integration.remediate_run import drop_namespace
from tests.sim import cluster as simcluster
from tests.sim.entity_store.simulator import start as start_entity_store
from tests.sim.flywheel_api.simulator import start as start_flywheel_api


# The remediation runs converge to the scratch unit's MutatingAdmissionPolicy: the profile that serves it.
PROFILE = "vanilla-map"


@pytest.fixture(scope="module")
def cluster_kubeconfig():
    return kubeconfig_for(PROFILE)


@pytest.fixture(scope="module")
def cluster(cluster_kubeconfig):
    return api_client(PROFILE)


JOBS = [{"workload_id": "primary_assistant", "client_id": f"aiva-{i}"} for i in (1, 2, 3)]
MODELS = [
    {"name": "meta/llama-3.2-1b-instruct", "nim_service": "llama-3-2-1b-instruct"},
    {"name": "meta/llama-3.2-3b-instruct", "nim_service": "llama-3-2-3b-instruct"},
]


def run_role(api_url, tmp_path, label, **extra):
    variables = {
        "flywheel_run_api_url": api_url,
        "flywheel_run_jobs": JOBS,
        "flywheel_run_artifacts_dir": str(tmp_path / "reports"),
        "flywheel_run_wait_sleep": 1,
        "flywheel_run_progress_interval": 2,
        "flywheel_run_logs": [],  # the local inventory loads demo logs into Elasticsearch; not this test's subject
        **extra,
    }
    return play("playbooks/flywheel_run.yml", variables, tmp_path / f"{label}.tasks", inventory="inventories/local")


def jobs_per_client(server) -> dict[str, int]:
    out: dict[str, int] = {}
    for job in control(server, "/_sim/jobs")["jobs"]:
        out[job["client_id"]] = out.get(job["client_id"], 0) + 1
    return out


# ---------------------------------------------------------------- the Data Flywheel API simulator
@pytest.fixture
def flywheel_api():
    server = start_flywheel_api(unit_seconds=0.05)
    yield server
    server.shutdown()


def test_flywheel_run_completes_through_errors_latency_and_drops_without_duplicates(flywheel_api, tmp_path):
    control(flywheel_api, "/_sim/faults", {"error_rate": 0.25, "latency": 0.05, "drop_post_rate": 0.6, "seed": 3})
    result = run_role(flywheel_api.url, tmp_path, "flaky")
    assert result.returncode == 0, result.output[-4000:]
    stats = control(flywheel_api, "/_sim/stats")
    assert stats.get("POST /api/jobs", 0) >= 3
    assert jobs_per_client(flywheel_api) == {"aiva-1": 1, "aiva-2": 1, "aiva-3": 1}
    # faults off: the rerun reports the same jobs and starts none
    control(flywheel_api, "/_sim/faults", {"error_rate": 0, "latency": 0, "drop_post_rate": 0})
    rerun = run_role(flywheel_api.url, tmp_path, "rerun")
    assert rerun.returncode == 0 and rerun.recap("local-cluster")["changed"] == 0, rerun.output[-3000:]
    assert jobs_per_client(flywheel_api) == {"aiva-1": 1, "aiva-2": 1, "aiva-3": 1}


def test_flywheel_run_stops_with_a_diagnosis_when_the_api_keeps_failing(flywheel_api, tmp_path):
    control(flywheel_api, "/_sim/faults", {"error_rate": 1.0})
    started = time.monotonic()
    # one retry of each failed request (the role's default is 5, ~30 s of backoff in all): the retries themselves
    # are the subject of test_flywheel_run_completes_through_errors_latency_and_drops_without_duplicates
    result = run_role(flywheel_api.url, tmp_path, "down", flywheel_run_api_retries=1)
    assert result.returncode != 0
    assert "HTTP 500" in result.output and "/api/jobs" in result.output, result.output[-3000:]
    assert "Traceback" not in result.output
    assert control(flywheel_api, "/_sim/jobs")["jobs"] == []
    assert time.monotonic() - started < 180, "gave up too slowly"


def test_flywheel_run_stops_with_a_diagnosis_when_the_api_is_unreachable(tmp_path):
    server = start_flywheel_api()
    url = server.url
    server.shutdown()
    server.server_close()  # nothing listens on that port any more: connection refused
    result = run_role(url, tmp_path, "refused", flywheel_run_api_retries=1)
    assert result.returncode != 0
    assert url in result.output and "refused" in result.output.lower(), result.output[-3000:]
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- the Entity Store simulator
@pytest.fixture
def nemo_ns(cluster, cluster_kubeconfig):
    ns = f"flt-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(cluster)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    yield ns
    drop_namespace(cluster, ns)


def remediate(kubeconfig, ns, store, tmp_path, label, **kill):
    """Both remediation stages as site.yml runs them: admission.yml (the /scratch policy) before the charts,
    remediate.yml after them (the evaluator RBAC of an operator-owned evaluator, the Entity Store)."""
    variables = {
        "flywheel_prereqs_namespace": ns,
        "remediate_namespace": ns,
        "flywheel_kubeconfig": kubeconfig,
        "remediate_evaluator_name": "nemoevaluator",
        "remediate_entity_store_url": store.url,
        "remediate_nemo_models": MODELS,
    }
    stages = tmp_path / "remediation_stages.yml"
    stages.write_text(
        "".join(f"- import_playbook: {ROOT / 'playbooks' / name}\n" for name in ("admission.yml", "remediate.yml"))
    )
    return play(
        str(stages),
        variables,
        tmp_path / f"{label}.tasks",
        inventory="inventories/local",
        env={"K8S_AUTH_KUBECONFIG": kubeconfig},
        **kill,
    )


def owned(api, ns):
    return cluster_state.owned_state(
        api, {ns: "<ns>"}, ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"], cluster_name_match=ns
    )


@pytest.mark.cluster
def test_remediate_through_a_flaky_entity_store_registers_each_model_once(
    cluster, cluster_kubeconfig, nemo_ns, tmp_path
):
    store = start_entity_store()
    try:
        store.faults.update(error_rate=0.3, latency=0.05, drop_post_rate=0.6, seed=5)
        result = remediate(cluster_kubeconfig, nemo_ns, store, tmp_path, "flaky")
        assert result.returncode == 0, result.output[-4000:]
        assert sorted(store.state.models) == [("meta", "llama-3.2-1b-instruct"), ("meta", "llama-3.2-3b-instruct")]
        assert store.stats.get("POST /v1/models", 0) >= 2
    finally:
        store.shutdown()


@pytest.mark.cluster
def test_remediate_with_the_entity_store_down_stops_with_a_diagnosis_and_the_rerun_converges(
    cluster, cluster_kubeconfig, nemo_ns, tmp_path
):
    store = start_entity_store()
    try:
        store.faults.update(error_rate=1.0)
        down = remediate(cluster_kubeconfig, nemo_ns, store, tmp_path, "down")
        assert down.returncode != 0
        assert "Entity Store request failed" in down.output and "HTTP 500" in down.output, down.output[-3000:]
        assert "Traceback" not in down.output
        assert store.state.models == {}
        store.faults.update(error_rate=0.0)
        rerun = remediate(cluster_kubeconfig, nemo_ns, store, tmp_path, "rerun")
        assert rerun.returncode == 0, rerun.output[-3000:]
        assert len(store.state.models) == 2
        labels = {
            obj["metadata"].get("labels", {}).get("dataflywheel.blueprint/remediation")
            for obj in owned(cluster, nemo_ns).values()
        }
        assert {"evaluator-secret-delete", "scratch-volume"} <= labels
    finally:
        store.shutdown()


# ---------------------------------------------------------------- the API server
def _own_cluster_only():
    if os.environ.get("TEST_KUBECONFIG"):
        pytest.skip("API server faults are injected only into the local cluster this checkout started")


def apiserver_pid(profile: str = PROFILE) -> int:
    """The kube-apiserver of THIS checkout's cluster: its command line names our cluster directory."""
    cluster_dir = str(simcluster.STATE / "kwok" / "clusters" / simcluster.cluster_name(profile))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"kube-apiserver") and any(cluster_dir.encode() in a for a in cmdline):
            return int(proc.name)
    raise AssertionError(f"no kube-apiserver process of {cluster_dir}")


def wait_answers(profile=PROFILE, timeout=90):
    deadline = time.monotonic() + timeout
    while not simcluster.answers(profile):
        assert time.monotonic() < deadline, "the API server did not come back"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def reference(cluster, cluster_kubeconfig, tmp_path_factory):
    """The end state of an undisturbed remediate run, in its own namespace (one per module)."""
    tmp_path = tmp_path_factory.mktemp("faults-reference")
    ns = f"flt-ref-{uuid.uuid4().hex[:5]}"
    client.CoreV1Api(cluster).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    store = start_entity_store()
    result = remediate(cluster_kubeconfig, ns, store, tmp_path, "reference")
    assert result.returncode == 0, result.output[-3000:]
    state = owned(cluster, ns)
    store.shutdown()
    drop_namespace(cluster, ns)
    return state, result.tasks


PAUSES = [  # (the task whose start triggers the pause, seconds paused)
    ("Detect the platform", 6.0),
    ("MutatingAdmissionPolicy adding the scratch volume", 4.0),
]


@pytest.mark.cluster
@pytest.mark.slow
def test_paused_api_server_runs_complete_with_the_same_end_state(cluster, cluster_kubeconfig, reference, tmp_path):
    _own_cluster_only()
    expected, tasks = reference
    failures = []
    for index, (name, seconds) in enumerate(PAUSES):
        point = next(i for i, task in enumerate(tasks, 1) if name in task)
        ns = f"flt-p{index}-{uuid.uuid4().hex[:4]}"
        client.CoreV1Api(cluster).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        store = start_entity_store()
        pid = apiserver_pid()
        marker = tmp_path / f"pause{index}.tasks"
        paused = threading.Event()

        def pauser(marker=marker, point=point, seconds=seconds, pid=pid, paused=paused):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if marker.exists() and len(marker.read_text().splitlines()) >= point:
                    os.kill(pid, signal.SIGSTOP)
                    paused.set()
                    try:
                        time.sleep(seconds)
                    finally:
                        os.kill(pid, signal.SIGCONT)
                    return
                time.sleep(0.02)

        thread = threading.Thread(target=pauser, daemon=True)
        thread.start()
        try:
            result = remediate(cluster_kubeconfig, ns, store, tmp_path, f"pause{index}")
            thread.join(timeout=30)
            where = f"API server paused {seconds}s at task {point} ({tasks[point - 1]!r})"
            assert paused.is_set(), f"{where}: the pause never happened"
            if result.returncode != 0:
                failures.append(f"{where}: the run failed:\n{result.output[-2500:]}")
            elif (got := owned(cluster, ns)) != expected:
                failures.append(f"{where}: end state differs:\n{cluster_state.diff(expected, got)}")
            if len(store.state.models) != len(MODELS):
                failures.append(f"{where}: Entity Store holds {sorted(store.state.models)}")
        finally:
            os.kill(pid, signal.SIGCONT)
            wait_answers()
            store.shutdown()
            client.CoreV1Api(cluster).delete_namespace(ns)
    assert not failures, "\n\n".join(failures)


# A small bound keeps the test cheap: the run stops at its first Kubernetes task.
HUNG_BOUND = 15


@contextlib.contextmanager
def paused_api_server(profile: str = PROFILE):
    """This checkout's kube-apiserver frozen with SIGSTOP (it keeps accepting connections, answers nothing: a
    hung server) for the duration of the block, and resumed (SIGCONT, then answering again) whatever happens."""
    pid = apiserver_pid(profile)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)
        wait_answers(profile)


@pytest.mark.cluster
def test_hung_api_server_ends_the_run_within_the_bound_naming_the_server_and_the_variable(
    cluster, cluster_kubeconfig, ansible_playbook, tmp_path
):
    """kubernetes.core sets no request timeout: without the plays' task bound (flywheel_k8s_request_timeout) this
    run would wait forever for the paused server. It must end soon after the bound, naming the server and the
    variable, without a traceback."""
    _own_cluster_only()
    server = yaml.safe_load(Path(cluster_kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    variables = {
        "remediate_namespace": f"flt-h-{uuid.uuid4().hex[:5]}",
        "flywheel_kubeconfig": cluster_kubeconfig,
        "remediate_entity_store_url": "http://127.0.0.1:9",
        "flywheel_k8s_request_timeout": HUNG_BOUND,
    }
    with paused_api_server():
        run = ansible_playbook(
            "playbooks/remediate.yml",
            variables,
            env={"K8S_AUTH_KUBECONFIG": cluster_kubeconfig},
            marker=tmp_path / "hung.tasks",
            timeout=HUNG_BOUND + 300,  # the harness's own limit: a hang fails here with the last tasks started
        )
    assert run.returncode != 0, run.tail()
    message = f"got no answer within {HUNG_BOUND} s from the Kubernetes API server {server}"
    assert message in run.stdout and "raise flywheel_k8s_request_timeout" in run.stdout, run.tail()
    assert "Traceback (most recent call last)" not in run.stdout, run.tail()
    # the bound, plus Ansible's start and the rescue (a loaded 2-core machine)
    assert run.seconds < HUNG_BOUND + 120, f"the run took {run.seconds:.0f}s with a bound of {HUNG_BOUND}s"


class StoppedApiServer:
    """This checkout's kube-apiserver process stopped (SIGTERM) and later started again with the same
    command line, working directory and environment kwokctl gave it, its pid file updated (a
    restarting or crashed API server: connections are refused meanwhile)."""

    def __init__(self, profile: str = PROFILE):
        self.cluster_dir = simcluster.STATE / "kwok" / "clusters" / simcluster.cluster_name(profile)
        self.pid = apiserver_pid(profile)
        proc = Path("/proc") / str(self.pid)
        self.argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        self.cwd = os.readlink(proc / "cwd")
        self.env = dict(kv.decode().split("=", 1) for kv in (proc / "environ").read_bytes().split(b"\0") if b"=" in kv)
        self.stopped_at: float | None = None

    def running(self) -> bool:
        """Not a zombie either (kwokctl's detached children are reaped late here)."""
        return alive(self.pid)

    def stop(self) -> None:
        """A crash: SIGKILL (a SIGTERM'd API server stops listening at once but may take half a
        minute to drain and exit, and could not be restarted on its port meanwhile)."""
        os.kill(self.pid, signal.SIGKILL)
        self.stopped_at = time.monotonic()
        deadline = time.monotonic() + 30
        while self.running():
            assert time.monotonic() < deadline, f"kube-apiserver {self.pid} still runs 30 s after SIGKILL"
            time.sleep(0.05)

    def start(self) -> None:
        log = open(self.cluster_dir / "logs" / "kube-apiserver.log", "ab")
        with log:
            proc = subprocess.Popen(  # noqa: S603 - the binary and arguments kwokctl started it with
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (self.cluster_dir / "pids" / "kube-apiserver.pid").write_text(str(proc.pid))
        self.pid = proc.pid
        wait_answers()


@pytest.mark.cluster
@pytest.mark.slow
def test_api_server_down_mid_run_stops_with_a_diagnosis_and_the_rerun_converges(
    cluster, cluster_kubeconfig, reference, tmp_path
):
    """The API server process goes away in the middle of the run (before the task that binds the
    evaluator's Role): the run must stop promptly naming the refused connection (no hang, no
    traceback); once it is back, the same command converges to the undisturbed end state."""
    _own_cluster_only()
    expected, tasks = reference
    ns = f"flt-r-{uuid.uuid4().hex[:5]}"
    client.CoreV1Api(cluster).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    store = start_entity_store()
    point = next(i for i, name in enumerate(tasks, 1) if "Bind the extra Role" in name)
    apiserver = StoppedApiServer()
    marker = tmp_path / "down.tasks"

    done = threading.Event()

    def stopper():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not done.is_set():
            if marker.exists() and len(marker.read_text().splitlines()) >= point:
                apiserver.stop()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=stopper, daemon=True)
    thread.start()
    try:
        down = remediate(cluster_kubeconfig, ns, store, tmp_path, "down")
        ended = time.monotonic()
        thread.join(timeout=60)
        assert apiserver.stopped_at is not None, "the API server was never stopped"
        assert down.returncode != 0, "the run cannot have succeeded with the API server gone"
        assert ended - apiserver.stopped_at < 90, f"the run took {ended - apiserver.stopped_at:.0f}s to give up"
        assert "refused" in down.output.lower(), down.output[-3000:]
        assert "Traceback (most recent call last)" not in down.stdout, down.stdout[-3000:]
    finally:
        done.set()
        thread.join(timeout=60)
        if not apiserver.running():
            apiserver.start()
    try:
        rerun = remediate(cluster_kubeconfig, ns, store, tmp_path, "after-restart")
        assert rerun.returncode == 0, rerun.output[-3000:]
        got = owned(cluster, ns)
        assert got == expected, cluster_state.diff(expected, got)
        assert len(store.state.models) == len(MODELS)
    finally:
        store.shutdown()
        drop_namespace(cluster, ns)
