"""Every Kubernetes task the playbooks run is bounded (issue: a hung API server must not hang a run forever).

- Each play that loads the connection definition (playbooks/vars/kubernetes.yml) sets the task keyword `timeout` from
  flywheel_k8s_task_timeout and runs its tasks in one block whose rescue names the API server (cluster_common,
  tasks_from stage_failed).
- Each role task with a wait of its own carries its own `timeout`: that wait plus flywheel_k8s_request_timeout, with
  the same default as the connection definition, so no long wait is cut by the per-task bound.
- flywheel_k8s_task_timeout turns bad input into an error naming the variable.
- The lookup k8s_api_server names the server the settings point at, as kubernetes.core would pick it.
The run itself (a paused API server) is tests/integration/test_faults.py::test_hung_api_server_*."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.dataflywheel.blueprint.plugins.lookup.k8s_api_server import api_server

ROOT = Path(__file__).resolve().parents[2]
CONNECTION = yaml.safe_load((ROOT / "playbooks" / "vars" / "kubernetes.yml").read_text())
DEFAULT = re.search(r"flywheel_k8s_request_timeout \| default\((\d+)\)", CONNECTION["flywheel_k8s_task_timeout"])


def _plays():
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(path.read_text()):
            if "vars/kubernetes.yml" in (play.get("vars_files") or []):
                yield path.name, play


def _tasks(items, where):
    for task in items or []:
        yield task, where
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key), where)


@functools.cache
def _role_tasks():
    return [
        found
        for path in sorted((ROOT / "roles").glob("*/tasks/**/*.yml"))
        for found in _tasks(yaml.safe_load(path.read_text()), str(path.relative_to(ROOT)))
    ]


def test_the_default_bound_is_defined_once():
    assert DEFAULT, "flywheel_k8s_task_timeout must default flywheel_k8s_request_timeout"


@pytest.mark.parametrize("name", sorted({name for name, _play in _plays()}))
def test_every_cluster_play_bounds_its_tasks_and_rescues_naming_the_api_server(name):
    for _name, play in (p for p in _plays() if p[0] == name):
        assert play.get("timeout") == "{{ flywheel_k8s_task_timeout }}", (
            f"{name}: play {play['name']!r} sets no timeout"
        )
        assert "roles" not in play, f"{name}: roles run outside the rescued block"
        (task,) = play["tasks"]
        assert task.get("block"), f"{name}: the play's tasks are not one block"
        (rescue,) = task["rescue"]
        include = rescue["ansible.builtin.include_role"]
        assert include == {"name": "dataflywheel.blueprint.cluster_common", "tasks_from": "stage_failed"}
        assert rescue["vars"] == {"cluster_common_k8s_connection": "{{ flywheel_k8s_module_defaults }}"}


def _wait_of(task):
    """The seconds expression a task waits for on its own, or None when it does not wait."""
    module = next((k for k in task if k.startswith(("kubernetes.core.", "dataflywheel.blueprint."))), None)
    args = task.get(module) if module else None
    if not isinstance(args, dict) or not (args.get("wait") or "wait_timeout" in args) or args.get("wait") is False:
        return None
    return str(args.get("wait_timeout", "helm" if module.endswith(".helm") else "default"))


@pytest.mark.parametrize("where", sorted({where for task, where in _role_tasks() if _wait_of(task)}))
def test_every_waiting_task_is_bounded_by_its_wait_plus_the_request_bound(where):
    for task, found in _role_tasks():
        wait = _wait_of(task) if found == where else None
        if wait is None:
            continue
        bound = str(task.get("timeout", ""))
        assert f"flywheel_k8s_request_timeout | default({DEFAULT.group(1)}) | int" in bound, (
            where,
            task["name"],
            bound,
        )
        names = set(re.findall(r"[a-z_]+_(?:wait_timeout|timeout|interval)\b", wait)) - {"flywheel_k8s_request_timeout"}
        if names:  # the wait's own variable (a wait of the smaller of two names either)
            assert names & set(re.findall(r"[a-z_]+\b", bound)), (where, task["name"], wait, bound)
        else:  # helm's own 5 min, kubernetes.core's 120 s or a literal
            literal = {"helm": 300, "default": 120}.get(wait) or int(wait)
            assert re.search(rf"\b{literal}\b", bound), (where, task["name"], wait, bound)


@pytest.mark.parametrize(("given", "bound"), [(None, int(DEFAULT.group(1)) if DEFAULT else 0), (15, 15), ("20", 20)])
def test_task_timeout_from_the_variable(given, bound):
    assert _render_task_timeout(given) == bound


@pytest.mark.parametrize("given", ["abc", 0, "-5", "1.5", ""])
def test_task_timeout_refuses_what_is_not_seconds_naming_the_variable(given):
    out = _render_task_timeout(given)
    assert isinstance(out, str) and out.startswith("flywheel_k8s_request_timeout=") and "whole number" in out


def _render_task_timeout(given):
    from ansible.parsing.dataloader import DataLoader  # noqa: PLC0415 - ansible's templar is slow to import
    from ansible.template import Templar, trust_as_template  # noqa: PLC0415

    variables = {} if given is None else {"flywheel_k8s_request_timeout": given}
    templar = Templar(loader=DataLoader(), variables=variables)
    out = templar.template(trust_as_template(CONNECTION["flywheel_k8s_task_timeout"]))
    return int(out) if str(out).strip().isdigit() else out


# ---------------------------------------------------------------- lookup k8s_api_server

KUBECONFIG = {
    "current-context": "b",
    "contexts": [{"name": "a", "context": {"cluster": "one"}}, {"name": "b", "context": {"cluster": "two"}}],
    "clusters": [
        {"name": "one", "cluster": {"server": "https://one.example.test:6443"}},
        {"name": "two", "cluster": {"server": "https://two.example.test:6443"}},
    ],
}


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    return str(path)


def test_api_server_host_wins(kubeconfig):
    assert api_server({"host": "https://api.x:6443", "kubeconfig": kubeconfig}, {}) == "https://api.x:6443"
    assert api_server({}, {"K8S_AUTH_HOST": "https://env.x:6443"}) == "https://env.x:6443"


def test_api_server_from_the_kubeconfig_and_context(kubeconfig):
    assert api_server({"kubeconfig": kubeconfig}, {}) == "https://two.example.test:6443"
    assert api_server({"kubeconfig": kubeconfig, "context": "a"}, {}) == "https://one.example.test:6443"
    assert api_server({"kubeconfig": KUBECONFIG, "context": "a"}, {}) == "https://one.example.test:6443"
    assert (
        api_server({}, {"K8S_AUTH_KUBECONFIG": kubeconfig, "K8S_AUTH_CONTEXT": "a"}) == "https://one.example.test:6443"
    )


def test_api_server_from_kubeconfig_files_merged_as_kubectl_does(tmp_path, kubeconfig):
    first = tmp_path / "first"
    first.write_text(yaml.safe_dump({"current-context": "a"}))
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{kubeconfig}"}
    assert api_server({}, environ) == "https://one.example.test:6443"


def test_api_server_in_cluster_and_unknown(tmp_path):
    environ = {
        "KUBECONFIG": str(tmp_path / "none"),
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
    }
    assert api_server({}, environ) == "https://10.96.0.1:443"
    assert api_server({"kubeconfig": str(tmp_path / "none")}, {}) == ""
    assert api_server({"kubeconfig": KUBECONFIG, "context": "nope"}, {}) == ""


def test_api_server_ignores_omitted_settings(kubeconfig):
    """The playbooks' settings come templated with default(omit): an omitted host is no host."""
    from ansible._internal._templating._utils import Omit  # noqa: PLC0415 - the sentinel default(omit) gives

    assert api_server({"host": Omit, "kubeconfig": kubeconfig, "context": Omit}, {}) == "https://two.example.test:6443"
