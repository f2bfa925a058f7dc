"""module_utils/k8s_connection: the modules that talk to Kubernetes take kubernetes.core's connection
options, hand every one of them to kubernetes.core's client, and say which credentials failed and why."""

from __future__ import annotations

import importlib
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import k8s_connection as kc
from tests.unit.test_rest_options import Exited, module_env

K8S_MODULES = ("platform_info", "access_review", "release_state_info")
EVERY_OPTION = {
    "kubeconfig": "/kc",
    "context": "ctx",
    "host": "https://api.example:6443",
    "api_key": "sa-token",
    "username": "u",
    "password": "p",
    "validate_certs": True,
    "ca_cert": "/ca.pem",
    "client_cert": "/tls.crt",
    "client_key": "/tls.key",
    "proxy": "http://proxy.example:3128",
    "no_proxy": "10.0.0.0/8",
    "proxy_headers": {"proxy_basic_auth": "a:b", "basic_auth": None, "user_agent": None},
    "persist_config": False,
    "impersonate_user": "dfw-runner",
    "impersonate_groups": ["system:authenticated"],
}


def test_every_kubernetes_core_option_is_covered_here():
    assert sorted(EVERY_OPTION) == sorted(AUTH_ARG_SPEC)


@pytest.mark.parametrize("name", K8S_MODULES)
def test_every_option_reaches_kubernetes_core_client(name):
    """The module's own main() in-process with every kubernetes.core option set: they all reach
    get_api_client unchanged (kubernetes.core turns them into its configuration)."""
    main = importlib.import_module(f"ansible_collections.dataflywheel.blueprint.plugins.modules.{name}").main
    args = dict(EVERY_OPTION, checks=[{"verb": "get", "resource": "pods"}]) if name == "access_review" else EVERY_OPTION
    seen = {}

    def fake_client(**kwargs):
        seen.update(kwargs)
        raise kc.CoreException("stop here")

    with (
        module_env(args),
        mock.patch.object(kc, "get_api_client", fake_client),
        mock.patch.object(kc, "check", lambda params: None),
        pytest.raises(Exited) as out,
    ):
        main()
    assert seen == EVERY_OPTION
    msg = out.value.result["msg"]
    assert out.value.result["failed"] and "stop here" in msg, msg
    assert "bearer token for https://api.example:6443 through proxy http://proxy.example:3128 as dfw-runner" in msg
    assert "sa-token" not in msg


@pytest.mark.parametrize("name", K8S_MODULES)
def test_an_unknown_connection_option_is_still_refused(name):
    main = importlib.import_module(f"ansible_collections.dataflywheel.blueprint.plugins.modules.{name}").main
    with module_env({"proxi": "http://x", "checks": []}), pytest.raises(Exited) as out:
        main()
    assert "Unsupported parameters" in out.value.result["msg"] and "proxi" in out.value.result["msg"]


def test_describe_names_the_credentials_never_the_secret():
    env = {}
    assert kc.describe({"kubeconfig": "/etc/kc", "context": "prod"}, env) == "kubeconfig /etc/kc (context prod)"
    assert kc.describe({}, {"K8S_AUTH_HOST": "https://h", "K8S_AUTH_API_KEY": "s3cret"}) == "bearer token for https://h"
    assert kc.describe({"host": "https://h", "client_cert": "/c", "client_key": "/k"}, env) == (
        "client certificate /c for https://h"
    )
    assert kc.describe({}, {"KUBECONFIG": "/x"}) == "the in-cluster service account, else /x"
    assert kc.describe({"kubeconfig": {"clusters": []}}, env) == "the kubeconfig given inline"


def test_files_that_are_not_there_are_named_with_their_variable(tmp_path):
    with pytest.raises(kc.K8sConnectionError, match="kubeconfig /nonexistent/kc does not exist"):
        kc.check({"kubeconfig": "/nonexistent/kc"}, {})
    with pytest.raises(kc.K8sConnectionError, match="kubeconfig /nonexistent/kc does not exist"):
        kc.check({}, {"K8S_AUTH_KUBECONFIG": "/nonexistent/kc"})
    with pytest.raises(kc.K8sConnectionError, match=r"ca_cert .*nope.pem \(K8S_AUTH_SSL_CA_CERT\)"):
        kc.check({"host": "https://a:6443", "api_key": "t", "ca_cert": str(tmp_path / "nope.pem")}, {})
    with pytest.raises(kc.K8sConnectionError, match=r"client_key /k \(K8S_AUTH_KEY_FILE\)"):
        kc.check({}, {"K8S_AUTH_KEY_FILE": "/k"})
    # a token for a host makes the kubeconfig irrelevant, as in kubernetes.core
    kc.check({"host": "https://a:6443", "api_key": "t", "kubeconfig": "/nonexistent/kc"}, {})


def test_the_spec_is_kubernetes_cores_own():
    spec = kc.argument_spec(force=dict(type="str"))
    for name, opt in AUTH_ARG_SPEC.items():
        assert spec[name] == opt, name
    assert spec["force"] == {"type": "str"}
    assert spec is not AUTH_ARG_SPEC and spec["proxy_headers"] is not AUTH_ARG_SPEC["proxy_headers"]


def test_k8s_module_is_kubernetes_cores_module_class():
    with module_env({}):
        module = kc.k8s_module(argument_spec={})
    assert type(module).__name__ == "AnsibleK8SModule"
    assert isinstance(module._module, basic.AnsibleModule)
