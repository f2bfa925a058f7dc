"""An inventory whose cluster token lives in an ansible-vault file (README "Secrets"): with the vault
password file the preflight authenticates with that token (nothing else gives access: no kubeconfig,
no K8S_AUTH_*), without it the run stops at decryption; the token is in no output and only encrypted
on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.harness import BIN, ROOT, PlaybookRun, ansible_env, run_playbook
from tests.integration.automation import awx_credential_env, delete_account, make_account, token

pytestmark = pytest.mark.cluster


def playbook(inventory: Path, home: Path, *args: str) -> PlaybookRun:
    unset = {k: None for k in os.environ if k.startswith(("K8S_AUTH_", "KUBECONFIG"))}
    return run_playbook(
        "playbooks/preflight.yml",
        inventory=inventory,
        args=args,
        env={**unset, "HOME": str(home), "PROFILE": "vanilla"},
    )


def test_vaulted_cluster_token(vanilla_kubeconfig, vanilla, tool_env, tmp_path):
    tag = uuid.uuid4().hex[:6]
    names = {
        "data-flywheel": f"vault-df-{tag}",
        "nemo": f"vault-nemo-{tag}",
        "dataflywheel-automation": f"vault-sa-{tag}",
    }
    core = client.CoreV1Api(vanilla)
    for key in ("data-flywheel", "nemo"):  # the runner Role lives in existing namespaces
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=names[key])))
    account = make_account(vanilla_kubeconfig, tool_env, ["inspect.yml", "runner.yml"], names)
    try:
        sa_token = token(vanilla, account)
        creds = awx_credential_env(vanilla_kubeconfig, sa_token, tmp_path)
        inventory = tmp_path / "inventory"
        shutil.copytree(ROOT / "inventories" / "local", inventory)
        host_vars = inventory / "host_vars" / "local-cluster"
        host_vars.mkdir(parents=True)
        (host_vars / "main.yml").write_text(
            yaml.safe_dump(
                {
                    "flywheel_k8s_host": creds["K8S_AUTH_HOST"],
                    "flywheel_k8s_api_key": "{{ vault_flywheel_k8s_api_key }}",
                    "flywheel_k8s_ca_cert": creds["K8S_AUTH_SSL_CA_CERT"],
                    "flywheel_prereqs_namespace": names["data-flywheel"],
                    "remediate_namespace": names["nemo"],
                    "preflight_installs": False,
                }
            )
        )
        vault = host_vars / "vault.yml"
        vault.write_text(yaml.safe_dump({"vault_flywheel_k8s_api_key": sa_token}))
        password = tmp_path / "vault-pass"
        password.write_text(uuid.uuid4().hex)
        password.chmod(0o600)
        encrypted = subprocess.run(
            [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password), str(vault)],
            capture_output=True,
            text=True,
            env=ansible_env(),
            check=False,
        )
        assert encrypted.returncode == 0, encrypted.stderr
        on_disk = vault.read_text()
        assert on_disk.startswith("$ANSIBLE_VAULT;1.1;AES256") and sa_token not in on_disk

        ok = playbook(inventory, tmp_path / "home", "--vault-password-file", str(password))
        assert ok.returncode == 0, ok.stdout[-4000:] + ok.stderr
        assert "local-cluster: vanilla (Kubernetes 1.34)" in ok.stdout
        assert "the credentials may do all" in ok.stdout
        assert sa_token not in ok.stdout + ok.stderr

        locked = playbook(inventory, tmp_path / "home")
        assert locked.returncode != 0
        assert "no vault secrets" in locked.stdout + locked.stderr
        assert sa_token not in locked.stdout + locked.stderr
    finally:
        delete_account(vanilla_kubeconfig, tool_env, account)
        for key in ("data-flywheel", "nemo"):
            core.delete_namespace(names[key])
