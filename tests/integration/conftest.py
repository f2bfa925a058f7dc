"""Fixtures for tests that need a Kubernetes API server.

By default each profile's local test cluster (tests/sim/cluster.py) is started on first use and
stopped at the end of the session if this session started it. With TEST_KUBECONFIG=<path> the
tests run against that cluster instead (kind, OpenShift, ...); TEST_PROFILE names its platform
(default vanilla), and tests written for another platform's API surface are skipped with that
reason.

Parallel runs (`make integration`, pytest-xdist `-n 2 --dist loadgroup`): each worker has its own
clusters (tests/conftest.py), and each test file is one unit of work, so a module-scoped scene is
built once. Files that use the openshift, pcai or nutanix clusters share one unit ("profiles"), and
files that use the search engine share another ("search-engine"), so those are started by one worker
only. Units start heaviest first (WEIGHTS) so that both workers finish at about the same time.
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from tests import upstream
from tests.integration import role_render
from tests.sim.search_engine.engine import SearchEngine

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "tests" / "sim" / "cluster.py"
_started: list[str] = []


def _launcher(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(LAUNCHER), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"cluster.py {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


def kubeconfig_for(profile: str) -> str:
    external = os.environ.get("TEST_KUBECONFIG")
    if external:
        if profile != os.environ.get("TEST_PROFILE", "vanilla"):
            pytest.skip(
                f"TEST_KUBECONFIG points at a {os.environ.get('TEST_PROFILE', 'vanilla')} cluster; "
                f"this test needs the {profile} API surface"
            )
        return external
    # one cluster start at a time on this machine from the tests: kwokctl picks the clusters' loopback
    # ports by probing, and two starts at once (two pytest-xdist workers) can pick the same one
    with open(Path(tempfile.gettempdir()) / "dfw-cluster-up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status = _launcher("status")
        already = any(line.startswith(f"dfw-{profile}\tanswering") for line in status.splitlines())
        path = _launcher("up", "--profile", profile).splitlines()[-1]
    if not already and profile not in _started:
        _started.append(profile)
    return path


def api_client(profile: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig_for(profile))


@pytest.fixture(scope="session")
def vanilla_kubeconfig() -> str:
    return kubeconfig_for("vanilla")


@pytest.fixture(scope="session")
def vanilla(vanilla_kubeconfig) -> client.ApiClient:
    return config.new_client_from_config(config_file=vanilla_kubeconfig)


@pytest.fixture(scope="session")
def vanilla_map() -> client.ApiClient:
    """vanilla with the MutatingAdmissionPolicy feature gate and API on (profile vanilla-map)."""
    return api_client("vanilla-map")


@pytest.fixture(scope="session")
def tool_env() -> dict:
    """The environment with the cluster's kubectl and helm (+ helm-diff) first on PATH."""
    env = dict(os.environ)
    for line in _launcher("env").splitlines():
        key, _sep, value = line.removeprefix("export ").partition("=")
        env[key] = value.replace("$PATH", os.environ["PATH"])
    return env


@pytest.fixture(scope="session")
def fixture_charts(tool_env, tmp_path_factory) -> str:
    """The FIXTURE charts packaged once with real helm (+ index.yaml); the directory's path."""
    out = tmp_path_factory.mktemp("fixture-charts")
    subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fixtures" / "package_charts.py"), str(out)],
        env=tool_env,
        check=True,
        capture_output=True,
    )
    return str(out)


@pytest.fixture(scope="session")
def openshift() -> client.ApiClient:
    return api_client("openshift")


@pytest.fixture
def namespace(vanilla):
    """A fresh namespace on the vanilla cluster, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(vanilla)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("DFW_KEEP_CLUSTERS"):
        return
    for profile in _started:
        _launcher("down", "--profile", profile)


@pytest.fixture(scope="session")
def search_engine(tmp_path_factory):
    """A REAL search engine for the log-ingestion tests: OpenSearch from tests/sim/search_engine,
    started once per session with its own data directory. TEST_ES_URL=<url> uses that engine
    (for example an Elasticsearch 8) instead; `.url` is all the tests read."""
    external = os.environ.get("TEST_ES_URL")
    if external:
        engine = SearchEngine(tmp_path_factory.mktemp("search-engine"))
        engine.url = external.rstrip("/")
        yield engine
        return
    engine = SearchEngine(tmp_path_factory.mktemp("search-engine"))
    engine.start()
    yield engine
    engine.stop()


# ---------------------------------------------------------------- parallel runs (pytest-xdist)

# Seconds one file took on its own (2 cores, quiet machine, tests/harness.py in place); only the ORDER
# matters: heavy units start first. A file not listed counts as DEFAULT_WEIGHT.
WEIGHTS = {
    "profiles": 600,
    "search-engine": 500,
    "tests/integration/test_interruption.py": 480,
    "tests/integration/test_cluster_stack.py": 420,
    "tests/integration/test_faults.py": 420,
    "tests/integration/test_awx_rbac.py": 300,
    "tests/integration/test_flywheel_promote_role.py": 240,
    "tests/integration/test_bad_inputs.py": 150,
    "tests/integration/test_tls_private_ca.py": 150,
    "tests/integration/test_flywheel_run_role.py": 150,
}
DEFAULT_WEIGHT = 30
_PROFILE_NAME = re.compile(r"""["'](openshift|pcai|nutanix)["']""")


@functools.lru_cache(maxsize=None)
def _unit_of_file(path: Path, fixtures: frozenset) -> str:
    source = path.read_text()
    if "search_engine" in fixtures or "search_engine" in source:
        return "search-engine"
    if "openshift" in fixtures or ("kubeconfig_for" in source and _PROFILE_NAME.search(source)):
        return "profiles"
    return str(path.relative_to(ROOT))


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist") or not hasattr(config, "workerinput"):
        return
    by_file: dict[Path, set] = {}
    for item in items:
        by_file.setdefault(item.path, set()).update(item.fixturenames)
    units = {path: _unit_of_file(path, frozenset(names)) for path, names in by_file.items()}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(units[item.path]))
    # stable sort: the files of a unit stay together and in collection order, heavy units first
    items.sort(key=lambda item: -WEIGHTS.get(units[item.path], DEFAULT_WEIGHT))


@pytest.fixture(scope="session")
def roles_rendered(tmp_path_factory) -> dict:
    """One render per session: nemo_platform's CRs and the NIM Operator chart values for each NIM
    Operator version the tests use (guardrails on, so every kind), the flywheel config and values for a
    remote and a local judge, and every other role's objects and values with their defaults."""
    return role_render.render(
        tmp_path_factory.mktemp("render"),
        render_nim_operator_versions=[v.lstrip("v") for v in upstream.NIM_OPERATOR_VERSIONS],
        nemo_platform_guardrails_enabled=True,
    )
