"""module_utils/rest_options: one vocabulary for every REST service, its doc fragment, its aliases
(the names earlier modules used), its environment variables, and the http(s) check the roles share."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dataflywheel.blueprint.plugins.doc_fragments import rest_api
from ansible_collections.dataflywheel.blueprint.plugins.doc_fragments.rest_api import ModuleDocFragment, fragment
from ansible_collections.dataflywheel.blueprint.plugins.module_utils import rest_options as ro
from ansible_collections.dataflywheel.blueprint.plugins.test.http_url import TestModule as HttpUrlTests

PLUGINS = "ansible_collections.dataflywheel.blueprint.plugins"


class Exited(BaseException):  # like the SystemExit of exit_json/fail_json: no `except Exception` stops it
    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


@contextlib.contextmanager
def module_env(args, env=None):
    """Module args and a clean environment (no DFW_*/former variables leak in from the shell)."""
    names = {n for s in ro.SERVICES for f in ro.FIELDS for n in ro.env_names(s, f)}
    clean = {k: v for k, v in os.environ.items() if k not in names}
    clean.update(env or {})

    warned = []

    def leave(failed):
        def _exit(self, **kw):
            raise Exited(dict(kw, failed=failed, warnings=list(warned)))

        return _exit

    with (
        patch_module_args(args),
        mock.patch.dict(os.environ, clean, clear=True),
        mock.patch.object(basic.AnsibleModule, "exit_json", leave(False)),
        mock.patch.object(basic.AnsibleModule, "fail_json", leave(True)),
        # recorded here: where controller code is loaded, ansible routes module warnings to its display
        mock.patch.object(basic.AnsibleModule, "warn", lambda self, msg: warned.append(msg)),
    ):
        yield warned


def run_main(module, args, env=None):
    """A module's main() in this process; returns what it exited with."""
    main = importlib.import_module(f"{PLUGINS}.modules.{module}").main
    args = dict(args, _ansible_module_name=f"dataflywheel.blueprint.{module}")
    with module_env(args, env), pytest.raises(Exited) as out:
        main()
    return out.value.result


def build(spec, args, env=None, service=None, **kw):
    """The module and the REST client rest_client() builds for `service` from `args`."""
    with module_env(args, env) as warned:
        module = basic.AnsibleModule(argument_spec=spec)
        client = ro.rest_client(module, service, **kw)
        return module, client, warned


def test_every_option_falls_back_to_its_dfw_variable_then_the_former_ones():
    assert ro.env_names("nemo", "url") == ["DFW_NEMO_URL", "NEMO_BASE_URL"]
    assert ro.env_names("nemo", "validate_certs") == ["DFW_NEMO_VALIDATE_CERTS", "NEMO_VALIDATE_CERTS"]
    assert ro.env_names("flywheel", "validate_certs") == ["DFW_FLYWHEEL_VALIDATE_CERTS", "FLYWHEEL_API_VALIDATE_CERTS"]
    assert ro.env_names("es", "url") == ["DFW_ES_URL", "FLYWHEEL_ES_URL", "ELASTICSEARCH_URL"]
    assert ro.env_names("nim", "url") == ["DFW_NIM_URL", "NIM_BASE_URL"]
    for service in ro.SERVICES:
        spec = ro.service_spec(service)
        for field in ro.FIELDS:
            name = f"{service}_{field}"
            assert name in spec, name
            if field != "headers":
                assert spec[name]["fallback"][1][0] == f"DFW_{name.upper()}"
        assert spec[f"{service}_token"]["no_log"] is True
        assert "ca_path" in spec[f"{service}_ca_path"]["aliases"]
        assert "ca_path" not in ro.service_spec(service, primary=False)[f"{service}_ca_path"].get("aliases", [])


@pytest.mark.parametrize("primary", [True, False])
@pytest.mark.parametrize("service", sorted(ro.SERVICES))
def test_the_doc_fragment_documents_exactly_the_spec(service, primary):
    spec = ro.service_spec(service, primary=primary)
    doc = fragment(service, primary=primary)["options"]
    assert sorted(doc) == sorted(spec)
    assert spec.pop(f"{service}_service")["options"] == ro.k8s_service.SERVICE_SPEC
    sub = doc.pop(f"{service}_service")["suboptions"]
    assert {k: (v["type"], v.get("default"), v.get("required", False)) for k, v in sub.items()} == {
        k: (v["type"], v.get("default"), v.get("required", False)) for k, v in ro.k8s_service.SERVICE_SPEC.items()
    }
    for name, opt in spec.items():
        assert doc[name]["type"] == opt["type"], name
        assert doc[name].get("default") == opt.get("default"), name
        assert sorted(doc[name].get("aliases", [])) == sorted(opt.get("aliases", [])), name
        text = json.dumps(doc[name]["description"])
        for variable in (opt.get("fallback") or (None, []))[1]:
            assert f"E({variable})" in text, f"{name}: {variable} undocumented"
    attribute = "NEMO_DIAGNOSIS" if (service, primary) == ("nemo", False) else service.upper()
    if primary or service == "nemo":
        assert sorted(yaml.safe_load(getattr(ModuleDocFragment, attribute))["options"]) == sorted(
            [*doc, f"{service}_service"]
        )


def test_the_doc_fragment_is_built_from_the_option_table_when_it_is_loaded():
    """plugins/doc_fragments/rest_api.py holds no option text of its own: each attribute is the document fragment()
    builds from module_utils/rest_options.py (checked against the argument spec above), read as Ansible reads it."""
    from ansible.parsing.yaml.loader import AnsibleLoader  # noqa: PLC0415 - controller code, this test only

    built = {service.upper(): fragment(service) for service in ro.SERVICES}
    built["NEMO_DIAGNOSIS"] = fragment("nemo", primary=False, url_help=rest_api.NEMO_DIAGNOSIS_URL_HELP)
    built["ENTITY_STORE_DIAGNOSIS"] = fragment(
        "entity_store", primary=False, url_help=rest_api.ENTITY_STORE_DIAGNOSIS_URL_HELP
    )
    built["WAIT"] = rest_api.WAIT
    attributes = {name for name in vars(ModuleDocFragment) if name.isupper()}
    assert attributes == set(built)
    for name, doc in built.items():
        assert AnsibleLoader(getattr(ModuleDocFragment, name)).get_single_data() == doc, name
    # every service's option names come from the table, none is spelled out in the fragment's source
    source = Path(rest_api.__file__).read_text()
    assert [f"{s}_{f}" for s in ro.SERVICES for f in ro.FIELDS if f"{s}_{f}" in source] == []


def test_the_doc_fragment_passes_the_yamllint_that_ansible_test_would_apply():
    """ansible-test's yamllint sanity test reads only literal strings in a doc fragment class, so the fragment's
    attributes are annotated assignments it passes over; this applies the same linter, with ansible-test's own
    configuration for plugins, to what they hold when the fragment is loaded."""
    import ansible_test  # noqa: PLC0415 - only to find its yamllint configuration
    from yamllint import linter  # noqa: PLC0415
    from yamllint.config import YamlLintConfig  # noqa: PLC0415

    config = Path(ansible_test.__file__).parent / "_util/controller/sanity/yamllint/config/plugins.yml"
    lint = YamlLintConfig(file=str(config))
    names = [name for name in vars(ModuleDocFragment) if name.isupper()]
    assert len(names) == 8
    problems = {name: [str(p) for p in linter.run(getattr(ModuleDocFragment, name), lint)] for name in names}
    assert {name: found for name, found in problems.items() if found} == {}
    broken = "options: [\n"  # the linter is live: it finds a syntax error
    assert list(linter.run(broken, lint))


def test_every_module_that_extends_the_fragment_names_an_attribute_it_has():
    modules = Path(rest_api.__file__).parents[1] / "modules"
    named = set()
    for path in modules.glob("*.py"):
        named |= set(re.findall(r"dataflywheel\.blueprint\.rest_api\.(\w+)", path.read_text()))
    assert named and {n.upper() for n in named} <= {n for n in vars(ModuleDocFragment) if n.isupper()}, named


# (module, args that get it to the client, the former option, canonical option, the former variable)
MODULES = [
    ("flywheel_job", {"workload_id": "w", "client_id": "c"}, "api_url", "flywheel_url", "FLYWHEEL_API_URL"),
    ("flywheel_job_info", {}, "api_url", "flywheel_url", "FLYWHEEL_API_URL"),
    ("flywheel_logs_info", {}, None, "es_url", "FLYWHEEL_ES_URL"),
    ("flywheel_logs_info", {}, None, "es_url", "ELASTICSEARCH_URL"),
    ("nemo_deployment", {"name": "d", "namespace": "n", "model": "m"}, "nemo_base_url", "nemo_url", "NEMO_BASE_URL"),
    ("nemo_evaluation_job", {"job_id": "eval-1"}, "nemo_base_url", "nemo_url", "NEMO_BASE_URL"),
    ("nemo_customization_job_info", {"job_id": "cust-1"}, "nemo_base_url", "nemo_url", "NEMO_BASE_URL"),
    (
        "nemo_model",
        {"namespace": "m", "name": "n", "api_endpoint_url": "http://n/v1"},
        None,
        "entity_store_url",
        "NEMO_ENTITY_STORE_URL",
    ),
    ("nim_smoke_test", {"model": "m"}, None, "nim_url", "NIM_BASE_URL"),
]


@pytest.mark.parametrize(("module", "base", "former", "option", "variable"), MODULES)
def test_former_option_names_and_variables_still_set_the_url(module, base, former, option, variable):
    """Each way of giving the URL reaches the module's check, which names the canonical option;
    no request is sent (the URL has no scheme)."""
    ways = [
        ({option: "svc.example"}, {}),
        ({}, {"DFW_" + option.upper(): "svc.example"}),
        ({}, {variable: "svc.example"}),
    ]
    if former:
        ways.append(({former: "svc.example"}, {}))
    for args, env in ways:
        result = run_main(module, dict(base, **args), env)
        assert result["failed"], (args, env)
        assert result["msg"].startswith(f"{option}='svc.example' must start with http:// or https://"), result["msg"]
    missing = run_main(module, base)
    assert missing["failed"] and missing["msg"].startswith(f"{option}"), missing["msg"]
    assert "DFW_" + option.upper() in missing["msg"], missing["msg"]


@pytest.mark.parametrize("service", sorted(ro.SERVICES))
def test_former_names_reach_the_client(service, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    info = ro.SERVICES[service]
    spec = ro.argument_spec(service)
    args = {f"{service}_url": "https://svc.example"}
    former = info["aliases"]
    args.update({former["token"][0]: "t0k"} if "token" in former else {f"{service}_token": "t0k"})
    args.update(
        {former["headers"][0]: {"X-Key": "k"}} if "headers" in former else {f"{service}_headers": {"X-Key": "k"}}
    )
    args.update(ca_path=str(ca), validate_certs=False)
    _module, client, warned = build(spec, args, service=service)
    assert (client.base_url, client.token, client.headers) == ("https://svc.example", "t0k", {"X-Key": "k"})
    assert client.ca_path == str(ca)
    assert client.validate_certs is False
    assert any("also turns off certificate verification of" in w for w in warned), warned
    assert client.timeout == info["request_timeout"] and client.retries == ro.DEFAULT_RETRIES
    assert f"{service}_ca_path" in client.tls_hint

    env = {
        n: v
        for field, v in (("token", "env-t"), ("validate_certs", "false"), ("ca_path", str(ca)))
        for n in info["legacy_env"].get(field, [])[:1]
    }
    _module, client, warned = build(spec, {f"{service}_url": "https://svc.example"}, env, service=service)
    if "token" in info["legacy_env"]:
        assert client.token == "env-t"
    if "validate_certs" in info["legacy_env"]:
        assert client.validate_certs is False and not warned
    if "ca_path" in info["legacy_env"]:
        assert client.ca_path == str(ca)


def test_certificates_are_verified_unless_someone_says_otherwise():
    spec = ro.argument_spec("flywheel", "nemo")
    url = {"flywheel_url": "https://df.example", "nemo_url": "https://nemo.example"}
    _m, client, warned = build(spec, url, service="flywheel")
    assert client.validate_certs is True and not warned
    _m, client, warned = build(spec, dict(url, flywheel_validate_certs=False), service="flywheel")
    assert client.validate_certs is False and not warned
    # the second service takes the first one's TLS settings unless it has its own
    _m, client, _w = build(
        spec, dict(url, flywheel_validate_certs=False, ca_path="/ca.pem"), service="nemo", tls_from="flywheel"
    )
    assert (client.validate_certs, client.ca_path) == (False, "/ca.pem")
    _m, client, _w = build(
        spec, dict(url, flywheel_validate_certs=False, nemo_validate_certs=True), service="nemo", tls_from="flywheel"
    )
    assert client.validate_certs is True
    _m, client, _w = build(spec, url, {"DFW_NEMO_VALIDATE_CERTS": "no"}, service="nemo")
    assert client.validate_certs is False


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("http://a:1", True),
        ("https://nemo.example.com/v1", True),
        ("nemo.test", False),
        ("http://", False),
        ("ftp://x", False),
        ("http://a b", False),
        ("", False),
        (None, False),
        (5, False),
    ],
)
def test_one_url_check_for_modules_and_roles(value, ok):
    assert (ro.url_problem(value) is None) is ok
    assert HttpUrlTests().tests()["http_url"](value) is ok


def test_rest_modules_and_the_url_test_plugin_do_not_import_the_kubernetes_library():
    """Importing the kubernetes client costs about 0.3 CPU-s per process: a REST module run that names no
    Service, and every Ansible worker that templates the http_url test, must not pay it (kubernetes_lazy)."""
    code = (
        "import importlib, sys\n"
        "for name in %r:\n"
        "    importlib.import_module('ansible_collections.dataflywheel.blueprint.plugins.' + name)\n"
        "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.')))\n"
    ) % (
        [
            "modules.flywheel_job",
            "modules.flywheel_job_info",
            "modules.nemo_evaluation_job",
            "modules.nemo_model",
            "modules.nim_smoke_test",
            "test.http_url",
            "module_utils.k8s_service",
            "module_utils.k8s_connection",
        ],
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(root / "collections")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout[:300]
