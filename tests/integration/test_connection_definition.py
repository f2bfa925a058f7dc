"""One way to reach Kubernetes: every play that talks to a cluster loads playbooks/vars/kubernetes.yml and
points module_defaults at it; no role task passes connection settings; the definition covers every
kubernetes.core connection option (the helm modules get the subset they accept); and on the local
cluster a host's settings really reach a k8s module and a helm module through it (one run, three hosts)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.helm_args_common import HELM_AUTH_ARG_SPEC

from tests.integration.playbook_runner import play

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "playbooks" / "vars" / "kubernetes.yml"
MODULE_DEFAULTS = {
    "group/dataflywheel.blueprint.k8s": "{{ flywheel_k8s_module_defaults }}",
    "group/kubernetes.core.helm": "{{ flywheel_helm_module_defaults }}",
}
CONNECTION_OPTIONS = set(AUTH_ARG_SPEC) | set(HELM_AUTH_ARG_SPEC) - {"binary_path"}


def _plays():
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        for play_ in yaml.safe_load(path.read_text()):
            if "hosts" in play_:
                yield path, play_


def test_every_cluster_play_uses_the_one_definition():
    seen = 0
    for path, play_ in _plays():
        if "gpu_hosts" in str(play_["hosts"]):  # SSH to GPU machines, no Kubernetes
            assert "module_defaults" not in play_, path.name
            continue
        seen += 1
        assert play_.get("vars_files") == ["vars/kubernetes.yml"], f"{path.name}: {play_['name']}"
        assert play_.get("module_defaults") == MODULE_DEFAULTS, f"{path.name}: {play_['name']}"
    assert seen >= 7


def test_the_definition_maps_every_kubernetes_core_connection_option():
    definition = yaml.safe_load(DEFINITION.read_text())
    k8s, helm = definition["flywheel_k8s_module_defaults"], definition["flywheel_helm_module_defaults"]
    assert set(k8s) == set(AUTH_ARG_SPEC), sorted(set(AUTH_ARG_SPEC) ^ set(k8s))
    assert set(helm) == set(HELM_AUTH_ARG_SPEC) - {"binary_path"}
    for option, value in {**k8s, **helm}.items():
        # each one a host variable, omitted when the inventory does not set it
        assert re.fullmatch(r"\{\{ flywheel_(k8s|kube)\w* \| default\(omit\) \}\}", value), (option, value)
        assert helm.get(option, value) == k8s.get(option, value), option


def test_no_role_task_passes_connection_settings():
    offenders = []
    for path in sorted((ROOT / "roles").glob("*/tasks/**/*.yml")):
        for task in _tasks(yaml.safe_load(path.read_text()) or []):
            for module, args in task.items():
                if module.startswith(("kubernetes.core.", "dataflywheel.blueprint.")) and isinstance(args, dict):
                    passed = CONNECTION_OPTIONS & set(args)
                    if passed:
                        offenders.append(f"{path.relative_to(ROOT)}: {task.get('name')}: {sorted(passed)}")
    assert offenders == []
    assert not re.search(r"^\s*kubeconfig:", "".join(p.read_text() for p in (ROOT / "roles").rglob("*.yml")), re.M)


def _tasks(items):
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            yield item
            for key in ("block", "rescue", "always"):
                yield from _tasks(item.get(key))


@pytest.mark.cluster
def test_host_settings_reach_k8s_and_helm_modules_through_the_definition(vanilla_kubeconfig, tool_env, tmp_path):
    base = {"ansible_connection": "local", "ansible_python_interpreter": str(Path(os.sys.executable))}
    hosts = {
        # the kubeconfig only from the inventory (the environment has none): both groups must get it
        "plain": {**base, "flywheel_kubeconfig": vanilla_kubeconfig},
        # a kubernetes.core-only option: the k8s module acts as that user (denied), helm is untouched
        "impersonating": {
            **base,
            "flywheel_kubeconfig": vanilla_kubeconfig,
            "flywheel_k8s_impersonate_user": "system:serviceaccount:default:dfw-nobody",
        },
        # an option both groups take: both must fail on it
        "wrong-context": {**base, "flywheel_kubeconfig": vanilla_kubeconfig, "flywheel_kube_context": "dfw-no-context"},
    }
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"flywheel_clusters": {"hosts": hosts}}))
    env = {k: v for k, v in tool_env.items() if k in ("PATH", "HELM_PLUGINS")}
    env.update(K8S_AUTH_KUBECONFIG="", KUBECONFIG="/nonexistent/kubeconfig")
    run = play(
        "tests/integration/data/connection_probe.yml",
        {"probe_dir": str(tmp_path)},
        tmp_path / "probe.tasks",
        inventory=str(inventory),
        env=env,
    )
    assert run.returncode == 0, run.output[-3000:]
    seen = {host: json.loads((tmp_path / f"{host}.json").read_text()) for host in hosts}
    assert seen["plain"]["k8s"]["msg"] == "" and seen["plain"]["k8s"]["count"] > 0, seen["plain"]
    assert seen["plain"]["helm"]["msg"] == "", seen["plain"]
    denied = seen["impersonating"]["k8s"]["msg"]
    assert "dfw-nobody" in denied and "forbidden" in denied.lower(), seen["impersonating"]
    assert seen["impersonating"]["helm"]["msg"] == "", seen["impersonating"]
    for side in ("k8s", "helm"):
        assert "dfw-no-context" in seen["wrong-context"][side]["msg"], (side, seen["wrong-context"])
