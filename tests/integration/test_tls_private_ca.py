"""TLS with a private CA for both simulated services, through the roles an operator runs.

The Data Flywheel API simulator and the NeMo Entity Store simulator serve HTTPS with a
certificate from a test CA. With the CA configured (role variable or the environment variable an
AWX credential injects) the runs pass; without it they fail with a message that says TLS
verification failed and names the option to set, having changed nothing. The last test reads
every module's argument spec and every role's defaults: certificate verification is never off by
default, and nothing in the collection turns it off.
"""

from __future__ import annotations

import importlib
import json
import re
import ssl
import urllib.request
import uuid

import pytest
import yaml
from ansible.module_utils import basic
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from kubernetes import client

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import (
    SERVICES,
    resolve_validate_certs,
)
from tests.integration.flywheel_sim import run_module
from tests.integration.playbook_runner import ROOT, play
from tests.integration.remediate_run import drop_namespace
from tests.integration.tls import make_ca_and_server
from tests.sim.entity_store.simulator import start as start_entity_store
from tests.sim.flywheel_api.simulator import start as start_flywheel_api

VERIFY_OPTIONS = {"validate_certs", "verify", "verify_ssl", "verify_certs", "ssl_verify"}
INSECURE_OPTIONS = {"insecure", "insecure_skip_verify", "skip_tls_verify", "disable_ssl"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_ca_and_server(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def https_store(pki):
    srv = start_entity_store(certfile=str(pki["cert"]), keyfile=str(pki["key"]))
    yield srv
    srv.shutdown()


@pytest.fixture
def https_api(pki):
    srv = start_flywheel_api(unit_seconds=0.05, certfile=str(pki["cert"]), keyfile=str(pki["key"]))
    yield srv
    srv.shutdown()


def sim_get(server, pki, path):
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    with urllib.request.urlopen(server.url + path, context=ctx, timeout=10) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


MODEL = {"namespace": "meta", "name": "llama-3.2-1b-instruct", "nim_service": "llama", "nim_namespace": "nim"}


def test_entity_store_https_with_the_ca_via_option_and_environment(https_store, pki):
    assert https_store.url.startswith("https://")
    done = run_module("nemo_model", {"entity_store_url": https_store.url, "ca_path": str(pki["ca"]), **MODEL})
    assert not done.get("failed"), done.get("msg")
    assert done["changed"] is True
    via_env = run_module(
        "nemo_model", {"entity_store_url": https_store.url, **MODEL}, env={"NEMO_ENTITY_STORE_CA_PATH": str(pki["ca"])}
    )
    assert not via_env.get("failed") and via_env["changed"] is False
    assert [m["name"] for m in sim_get(https_store, pki, "/v1/models")["data"]] == ["llama-3.2-1b-instruct"]


def test_entity_store_https_without_the_ca_fails_clearly(https_store, pki):
    result = run_module("nemo_model", {"entity_store_url": https_store.url, **MODEL})
    assert result["failed"]
    assert "TLS verification" in result["msg"] and "ca_path" in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    assert https_store.state.models == {} and https_store.state.namespaces == {}


@pytest.mark.cluster
def test_remediate_role_registers_over_https_only_with_the_ca(vanilla, vanilla_kubeconfig, https_store, pki, tmp_path):
    ns = f"tls-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(vanilla)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        base = {
            "remediate_namespace": ns,
            "flywheel_kubeconfig": vanilla_kubeconfig,
            "remediate_entity_store_url": https_store.url,
            "remediate_nemo_models": [{"name": "meta/llama-3.2-1b-instruct", "nim_service": "llama-3-2-1b-instruct"}],
        }
        env = {"K8S_AUTH_KUBECONFIG": vanilla_kubeconfig}
        without = play("playbooks/remediate.yml", base, tmp_path / "no-ca.tasks", env=env)
        assert without.returncode != 0
        assert "TLS verification" in without.output and "ca_path" in without.output, without.output[-3000:]
        assert https_store.state.models == {}
        with_ca = play(
            "playbooks/remediate.yml",
            {**base, "remediate_entity_store_ca_path": str(pki["ca"])},
            tmp_path / "ca.tasks",
            env=env,
        )
        assert with_ca.returncode == 0, with_ca.output[-3000:]
        assert ("meta", "llama-3.2-1b-instruct") in https_store.state.models
    finally:
        drop_namespace(vanilla, ns)


def test_flywheel_run_role_over_https_only_with_the_ca(https_api, pki, tmp_path):
    base = {
        "flywheel_run_api_url": https_api.url,
        "flywheel_run_jobs": [{"workload_id": "primary_assistant", "client_id": "aiva-1"}],
        "flywheel_run_artifacts_dir": str(tmp_path / "reports"),
        "flywheel_run_wait_sleep": 1,
        "flywheel_run_progress_interval": 1,
        "flywheel_run_logs": [],  # the local inventory loads demo logs into Elasticsearch; not this test's subject
    }
    without = play("playbooks/flywheel_run.yml", base, tmp_path / "no-ca.tasks", inventory="inventories/local")
    assert without.returncode != 0
    assert "TLS verification" in without.output and "ca_path" in without.output, without.output[-3000:]
    assert sim_get(https_api, pki, "/_sim/jobs")["jobs"] == []
    with_ca = play(
        "playbooks/flywheel_run.yml",
        {**base, "flywheel_run_api_ca_path": str(pki["ca"])},
        tmp_path / "ca.tasks",
        inventory="inventories/local",
    )
    assert with_ca.returncode == 0, with_ca.output[-3000:]
    assert [j["client_id"] for j in sim_get(https_api, pki, "/_sim/jobs")["jobs"]] == ["aiva-1"]
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert [j["status"] for j in report["jobs"]] == ["completed"]


class _Captured(Exception):
    def __init__(self, spec):
        super().__init__("captured")
        self.spec = spec


def module_argument_specs() -> dict[str, dict]:
    """Each module's argument_spec, taken from the AnsibleModule it builds (nothing is run)."""
    specs = {}
    original = basic.AnsibleModule.__init__

    def capture(self, *args, **kwargs):
        raise _Captured(kwargs.get("argument_spec") or (args[0] if args else {}))

    basic.AnsibleModule.__init__ = capture
    try:
        for path in sorted((ROOT / "plugins" / "modules").glob("*.py")):
            if path.name == "__init__.py":
                continue
            mod = importlib.import_module(f"ansible_collections.dataflywheel.blueprint.plugins.modules.{path.stem}")
            try:
                mod.main()
            except _Captured as cap:
                specs[path.stem] = cap.spec
    finally:
        basic.AnsibleModule.__init__ = original
    return specs


def _options(spec: dict, prefix=""):
    for name, opt in spec.items():
        yield prefix + name, opt
        if isinstance(opt, dict) and isinstance(opt.get("options"), dict):
            yield from _options(opt["options"], prefix + name + ".")


def test_certificate_verification_is_never_off_by_default():
    specs = module_argument_specs()
    assert {"flywheel_job", "flywheel_job_info", "nemo_model"} <= set(specs), sorted(specs)
    http_modules = 0
    for module, spec in specs.items():
        names = dict(_options(spec))
        for name, opt in names.items():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in VERIFY_OPTIONS or leaf.endswith("_validate_certs"):
                if name == "validate_certs" and opt == AUTH_ARG_SPEC["validate_certs"]:
                    # kubernetes.core's connection option (K8S_AUTH_VERIFY_SSL): unset means the kubeconfig's
                    # own setting, or for host + api_key the kubernetes client's default, which verifies.
                    assert client.Configuration().verify_ssl is True
                    continue
                if opt.get("default") is None and any(f"{s}_validate_certs" in names for s in SERVICES):
                    # the REST vocabulary: unset (and no variable set) means verify, for every service
                    for service in (s for s in SERVICES if f"{s}_validate_certs" in names):
                        unset = type("M", (), {"params": dict.fromkeys(names), "warn": print})()
                        assert resolve_validate_certs(unset, service) is True, f"{module}: {service}"
                    continue
                assert opt.get("default") is True, f"{module}: {name} must default to true, spec {opt}"
            if leaf in INSECURE_OPTIONS:
                assert opt.get("default") in (None, False), f"{module}: {name} must default to false"
        if any(n.endswith("ca_path") for n in names):
            http_modules += 1
            assert any(n.rsplit(".", 1)[-1] in VERIFY_OPTIONS or n.endswith("_validate_certs") for n in names), (
                f"{module}: ca_path but no validate_certs"
            )
    assert http_modules >= 3

    for defaults in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        for key, value in (yaml.safe_load(defaults.read_text()) or {}).items():
            if any(word in key for word in ("validate_certs", "verify")):
                assert value is True, f"{defaults}: {key} defaults to {value!r}"
            if any(word in key for word in ("insecure", "skip_tls")):
                assert value in (False, None), f"{defaults}: {key} defaults to {value!r}"
    for specs_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for entry in (yaml.safe_load(specs_file.read_text())["argument_specs"] or {}).values():
            for key, opt in (entry.get("options") or {}).items():
                if any(word in key for word in ("validate_certs", "verify")):
                    assert opt.get("default") is True, f"{specs_file}: {key}"

    # and nothing in the collection switches it off
    forbidden = re.compile(
        r"validate_certs\s*[:=]\s*(false|no|False)\b|verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False"
        r"|insecure[-_]skip[-_]tls[-_]verify\s*:\s*true|--insecure\b|_create_unverified_context",
        re.IGNORECASE,
    )
    offenders = []
    for base in ("plugins", "roles", "playbooks", "inventories", "site.yml", "awx", "execution-environment.yml"):
        root = ROOT / base
        files = [root] if root.is_file() else (sorted(root.rglob("*")) if root.exists() else [])
        for path in files:
            if path.is_file() and path.suffix in (".py", ".yml", ".yaml", ".j2", ".json"):
                for lineno, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
                    if forbidden.search(line):
                        offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "certificate verification switched off:\n" + "\n".join(offenders)
