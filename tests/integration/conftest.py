"""Fixtures for tests that need a Kubernetes API server.

By default each profile's local test cluster (tests/sim/cluster.py) is started on first use and
stopped at the end of the session if this session started it. With TEST_KUBECONFIG=<path> the
tests run against that cluster instead (kind, OpenShift, ...); TEST_PROFILE names its platform
(default vanilla), and tests written for another platform's API surface are skipped with that
reason.

Parallel runs (pytest-xdist): see tests/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
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


# Only the tests of the work unit "profiles" use these clusters (tests/conftest.py, unit_of_test), and
# pytest-xdist hands that unit to one worker as a whole: after its last test there, the worker stops them
# instead of keeping them idle (about 0.03 core each) until the session ends. A later test that asks for one
# would start it again (kubeconfig_for).
UNIT_PROFILES = ("openshift", "pcai", "nutanix")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # the test's fixtures are finalized (a scene's uninstall runs on the cluster first)
    if not os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("DFW_KEEP_CLUSTERS"):
        return
    from tests.conftest import unit_of_test  # noqa: PLC0415 - the root conftest, loaded first by pytest

    if unit_of_test(item.nodeid) != "profiles":
        return
    if nextitem is not None and unit_of_test(nextitem.nodeid) == "profiles":
        return
    for profile in [p for p in _started if p in UNIT_PROFILES]:
        try:
            _launcher("down", "--profile", profile)
        except RuntimeError as err:  # not this test's failure: the end of the session tries again and says why
            warnings.warn(f"stopping the {profile} cluster after the profiles unit: {err}", stacklevel=1)
            continue
        _started.remove(profile)


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
