"""Run the remediate role (whole role or one entry point) with the json callback, for the tests."""

from __future__ import annotations

import uuid
from pathlib import Path

from kubernetes import client, config

from tests.harness import ROOT, ansible_tmp, run_playbook


class RoleRun:
    def __init__(self, proc):
        self.proc = proc
        self.out = proc.json
        self.stats = self.out["stats"]["localhost"]
        self.tasks = [
            (t["task"]["name"], t["hosts"].get("localhost", {})) for p in self.out["plays"] for t in p["tasks"]
        ]

    @property
    def ok(self):
        return self.proc.returncode == 0 and self.stats["failures"] == 0

    @property
    def changed(self):
        return self.stats["changed"]

    def failure_msg(self):
        return " | ".join(r.get("msg", "") for _n, r in self.tasks if r.get("failed"))

    def ran(self, name_part):
        """Names of tasks whose name contains name_part and that were not skipped."""
        return [n for n, r in self.tasks if name_part in n and not r.get("skipped")]

    def fact(self, name):
        for _n, r in reversed(self.tasks):
            facts = r.get("ansible_facts") or {}
            if name in facts:
                return facts[name]
        return None

    def text(self):
        return self.proc.stdout + self.proc.stderr


CONNECTION = ROOT / "playbooks" / "vars" / "kubernetes.yml"


def _playbook(tmp_dir, role, entry_points):
    """A one-play playbook on localhost running the role's entry points in order, connected through the
    collection's one connection definition (playbooks/vars/kubernetes.yml)."""
    tasks = "".join(
        f"    - ansible.builtin.include_role:\n        name: dataflywheel.blueprint.{role}\n"
        f"        tasks_from: {entry}\n"
        for entry in entry_points
    )
    path = Path(tmp_dir) / f"{role}-{'-'.join(entry_points).replace('/', '-')}-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
        f"  vars_files: [{CONNECTION}]\n"
        "  module_defaults:\n"
        '    group/dataflywheel.blueprint.k8s: "{{ flywheel_k8s_module_defaults }}"\n'
        '    group/kubernetes.core.helm: "{{ flywheel_helm_module_defaults }}"\n'
        f"  tasks:\n{tasks}"
    )
    return str(path)


def run_role(extra, kubeconfig=None, tasks_from=None, tmp_path=None, role="remediate", extra_env=None):
    """The remediate role as site.yml runs it (entry point admission, then main) on localhost, or one
    entry point (tasks_from) of `role`. kubeconfig goes where an inventory puts it (flywheel_kubeconfig)."""
    env = dict(extra_env or {})
    extra = dict(extra)
    if kubeconfig:
        env["K8S_AUTH_KUBECONFIG"] = kubeconfig
        extra["flywheel_kubeconfig"] = kubeconfig
    entry_points = [tasks_from] if tasks_from else ["admission", "main"]
    playbook = _playbook(tmp_path or ansible_tmp(), role, entry_points)
    return RoleRun(run_playbook(playbook, extra, env=env, json_output=True))


def fresh_namespace(kubeconfig, prefix):
    api = config.new_client_from_config(config_file=kubeconfig)
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    return api, ns


def drop_namespace(api, ns):
    client.CoreV1Api(api).delete_namespace(ns)
    custom = client.CustomObjectsApi(api)
    for group, version, plural in (
        ("admissionregistration.k8s.io", "v1beta1", "mutatingadmissionpolicybindings"),
        ("admissionregistration.k8s.io", "v1beta1", "mutatingadmissionpolicies"),
    ):
        try:
            custom.delete_cluster_custom_object(group, version, plural, f"dfw-scratch-{ns}")
        except client.ApiException as exc:
            if exc.status != 404:
                raise
