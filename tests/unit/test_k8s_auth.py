"""module_utils/k8s_auth: which credentials a module uses, and the errors that name the fix."""

from pathlib import Path

import pytest
import yaml

from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_auth import (
    K8S_AUTH_ARG_SPEC,
    K8sAuthError,
    api_client,
    describe,
)


def params(**kw):
    out = dict.fromkeys(K8S_AUTH_ARG_SPEC)
    out.update(kw)
    return out


def kubeconfig(tmp_path: Path, server="https://kubeconfig.example:6443") -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": {"token": "kubeconfig-token"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


def test_env_fallbacks_are_the_awx_credential_variables():
    fallbacks = {name: spec.get("fallback", (None, []))[1] for name, spec in K8S_AUTH_ARG_SPEC.items()}
    assert fallbacks["host"] == ["K8S_AUTH_HOST"]
    assert fallbacks["api_key"] == ["K8S_AUTH_API_KEY"]
    assert fallbacks["validate_certs"] == ["K8S_AUTH_VERIFY_SSL"]
    assert fallbacks["ca_cert"] == ["K8S_AUTH_SSL_CA_CERT"]
    assert K8S_AUTH_ARG_SPEC["api_key"]["no_log"] is True


def test_host_and_token_win_over_a_kubeconfig(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {"KUBECONFIG": str(kubeconfig(tmp_path))}
    api = api_client(
        params(host="https://api.example:6443/", api_key="sa-token", ca_cert=str(ca), validate_certs=True), env
    )
    cfg = api.configuration
    assert cfg.host == "https://api.example:6443"
    assert cfg.api_key == {"authorization": "Bearer sa-token"}
    assert cfg.ssl_ca_cert == str(ca)
    assert cfg.verify_ssl is True
    assert describe(params(host="https://api.example:6443", api_key="sa-token")) == (
        "bearer token for https://api.example:6443"
    )


def test_verify_ssl_false_is_honoured():
    api = api_client(params(host="https://api.example:6443", api_key="t", validate_certs=False), {})
    assert api.configuration.verify_ssl is False


def test_kubeconfig_from_the_environment_when_no_token(tmp_path):
    path = kubeconfig(tmp_path, server="https://from-kubeconfig.example:6443")
    for env in ({"K8S_AUTH_KUBECONFIG": str(path)}, {"KUBECONFIG": str(path)}):
        api = api_client(params(), env)
        assert api.configuration.host == "https://from-kubeconfig.example:6443"
        assert describe(params(), env) == f"kubeconfig {path}"


@pytest.mark.parametrize(
    ("given", "missing"),
    [({"host": "https://api.example:6443"}, "K8S_AUTH_API_KEY"), ({"api_key": "t"}, "K8S_AUTH_HOST")],
)
def test_half_a_token_credential_names_the_missing_variable(given, missing):
    with pytest.raises(K8sAuthError, match=missing):
        api_client(params(**given), {})


def test_missing_ca_file_and_missing_kubeconfig_are_named(tmp_path):
    with pytest.raises(K8sAuthError, match="K8S_AUTH_SSL_CA_CERT"):
        api_client(params(host="https://a:6443", api_key="t", ca_cert=str(tmp_path / "nope.pem")), {})
    with pytest.raises(K8sAuthError, match="kubeconfig /nonexistent/kc does not exist"):
        api_client(params(kubeconfig="/nonexistent/kc"), {})
