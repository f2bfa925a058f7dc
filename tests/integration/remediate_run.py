"""Run the remediate role (whole role or one entry point) with the json callback, for the tests."""

from __future__ import annotations

import uuid
from pathlib import Path

from kubernetes import client, config

from tests.harness import ROOT, run_playbook


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


def run_role(extra, kubeconfig=None, tasks_from=None, tmp_path=None):
    env = {}
    extra = dict(extra)
    if kubeconfig:
        env["K8S_AUTH_KUBECONFIG"] = kubeconfig
        extra["remediate_kubeconfig"] = kubeconfig
    playbook = str(ROOT / "playbooks/remediate.yml")
    if tasks_from:
        path = Path(tmp_path) / f"remediate-{tasks_from}-{uuid.uuid4().hex[:6]}.yml"
        path.write_text(
            "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
            "    - ansible.builtin.include_role:\n        name: dataflywheel.blueprint.remediate\n"
            f"        tasks_from: {tasks_from}\n"
        )
        playbook = str(path)
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
