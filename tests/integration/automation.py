"""Helpers for the tests that run the playbooks as an automation account, the way AWX does: the
rbac/ manifests applied to the local cluster, a ServiceAccount token from the TokenRequest API, the
four K8S_AUTH_* variables AWX's Kubernetes bearer-token credential injects (and no kubeconfig at
all), and ansible-runner, the library AWX runs playbooks with."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import yaml
from kubernetes import client

from tests.harness import TEST_WAITS, ansible_settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RBAC = ROOT / "rbac"
# names in the manifests that a test renames, so tests never share cluster-wide objects
NAMESPACE_PLACEHOLDERS = ("data-flywheel", "nemo", "dataflywheel-automation")
# variables that would let a run find credentials other than the K8S_AUTH_* ones under test
CREDENTIAL_ENV = ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY")


@dataclass
class Account:
    """A ServiceAccount bound to some of the rbac/ manifests, renamed for one test."""

    suffix: str
    namespaces: dict[str, str]  # placeholder -> real namespace
    manifests: list[str]
    objects: list[dict] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return self.namespaces["dataflywheel-automation"]

    name = "dataflywheel-automation"

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


def render(manifest: str, namespaces: dict[str, str], suffix: str) -> list[dict]:
    """The documents of rbac/<manifest> with the namespaces and cluster-wide names of this test."""
    docs = [d for d in yaml.safe_load_all((RBAC / manifest).read_text()) if d]
    out = []
    for doc in docs:
        text = json.dumps(doc)
        text = re.sub(r'"(dataflywheel-blueprint:[a-z]+)"', rf'"\1-{suffix}"', text)
        for placeholder, real in namespaces.items():
            text = text.replace(f'"namespace": "{placeholder}"', f'"namespace": "{real}"')
            if doc["kind"] == "Namespace":
                text = text.replace(f'"name": "{placeholder}"', f'"name": "{real}"')
        out.append(json.loads(text))
    return out


def kubectl(kubeconfig: str, tool_env: dict, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=tool_env,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def make_account(kubeconfig: str, tool_env: dict, manifests: list[str], namespaces: dict[str, str]) -> Account:
    suffix = uuid.uuid4().hex[:6]
    account = Account(suffix=suffix, namespaces=namespaces, manifests=manifests)
    for manifest in ["serviceaccount.yml", *manifests]:
        account.objects += render(manifest, namespaces, suffix)
    stream = "\n---\n".join(json.dumps(o) for o in account.objects)
    kubectl(kubeconfig, tool_env, "apply", "--server-side", "--field-manager=dfw-test", "-f", "-", stdin=stream)
    return account


def delete_account(kubeconfig: str, tool_env: dict, account: Account) -> None:
    stream = "\n---\n".join(json.dumps(o) for o in account.objects if o["kind"] != "Namespace")
    kubectl(kubeconfig, tool_env, "delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=stream)
    kubectl(kubeconfig, tool_env, "delete", "namespace", "--ignore-not-found", "--wait=false", account.namespace)


def token(admin: client.ApiClient, account: Account, seconds: int = 3600) -> str:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    return (
        client.CoreV1Api(admin)
        .create_namespaced_service_account_token(account.name, account.namespace, request)
        .status.token
    )


def awx_credential_env(kubeconfig: str, sa_token: str, workdir: Path) -> dict:
    """What AWX's "OpenShift or Kubernetes API Bearer Token" credential injects: the API URL, the token,
    verify_ssl, and the CA written to a file."""
    cfg = yaml.safe_load(Path(kubeconfig).read_text())
    cluster = cfg["clusters"][0]["cluster"]
    ca = workdir / "k8s-ca.pem"
    if "certificate-authority-data" in cluster:
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    else:
        ca.write_bytes(Path(cluster["certificate-authority"]).read_bytes())
    return {
        "K8S_AUTH_HOST": cluster["server"],
        "K8S_AUTH_API_KEY": sa_token,
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": str(ca),
    }


class _AwxYamlLoader(yaml.SafeLoader):
    """awx/configure.yml as data: `!unsafe` marks injector templates that Ansible must not render."""


_AwxYamlLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_mapping(node, deep=True))


def awx_credential_types() -> dict[str, dict]:
    """The custom credential types awx/configure.yml creates, by name (the name prefix left out)."""
    plays = yaml.load((ROOT / "awx" / "configure.yml").read_text(), Loader=_AwxYamlLoader)  # noqa: S506 - SafeLoader
    out = {}
    for task in plays[0]["tasks"]:
        spec = task.get("awx.awx.credential_type")
        if spec:
            out[spec["name"].replace("{{ dfw_awx_name_prefix }}", "")] = spec
    return out


def awx_custom_credential_env(type_name: str, inputs: dict) -> dict:
    """What AWX injects as environment for a credential of a custom type: each `env` injector rendered in
    a Jinja sandbox whose namespace holds the credential's inputs (fields left empty are undefined)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: PLC0415 - only the AWX tests need it

    spec = awx_credential_types()[type_name]
    fields = {f["id"] for f in spec["inputs"]["fields"]}
    assert set(inputs) <= fields, f"{type_name} has no field {set(inputs) - fields}"
    sandbox = ImmutableSandboxedEnvironment()
    return {name: sandbox.from_string(tmpl).render(**inputs) for name, tmpl in spec["injectors"]["env"].items()}


def clean_environ(monkeypatch, home: Path) -> None:
    """No kubeconfig anywhere: not in the environment, not in ~/.kube/config."""
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")


def run(
    workdir: Path,
    playbook: str,
    envvars: dict,
    extravars: dict | None = None,
    inventory: str | None = None,
) -> ansible_runner.Runner:
    """One playbook through ansible-runner with the project as AWX checks it out (the repository)."""
    private = workdir / f"runner-{uuid.uuid4().hex[:6]}"
    private.mkdir(parents=True)
    envvars = {**ansible_settings(), **envvars}
    return ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(ROOT),
        playbook=playbook,
        inventory=inventory,
        envvars=envvars,
        extravars={**TEST_WAITS, **(extravars or {})},
        quiet=True,
        suppress_env_files=True,  # AWX does not leave the credential's variables in files either
    )


def output(result: ansible_runner.Runner) -> str:
    return result.stdout.read()


def totals(result: ansible_runner.Runner) -> dict:
    stats = result.stats or {}
    return {key: sum(stats.get(key, {}).values()) for key in ("ok", "changed", "failures", "dark", "skipped")}


def task_failures(result: ansible_runner.Runner) -> list[str]:
    msgs = []
    for event in result.events:
        if event.get("event") == "runner_on_failed" and not event["event_data"].get("ignore_errors"):
            res = event["event_data"].get("res", {})
            msgs.append(str(res.get("msg") or res))
    return msgs
