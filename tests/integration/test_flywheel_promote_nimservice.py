"""flywheel_promote with flywheel_promote_method=nimservice on the local cluster (real
kube-apiserver with the apps.nvidia.com CRDs): the NIMService is created with the Entity Store as
LoRA source, the role waits for the operator's Ready (no NIM Operator runs here: the test writes the
status the operator would, and says so), smoke-tests through the NIM proxy SIMULATOR, reruns with
changed=0, and a Failed NIMService stops the play with the operator's condition message. The NIMService's
Secrets (NGC key, nvcr.io pull Secret) must exist in its namespace, as flywheel_prereqs creates them: without
them the role stops before creating it, naming the fix."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests import upstream
from tests.harness import run_playbook
from tests.integration.nemo_sim import call, register_model, stats
from tests.sim.nemo_platform.simulator import start as start_nemo

ROOT = Path(__file__).resolve().parents[2]
RESULTS = json.loads((ROOT / "tests/fixtures/promotion/job_results.json").read_text())
WINNER = "dfwbp/customized-meta-llama-3.2-3b-instruct@cust-MBwhJ3rRdBDKMuoxeSPxkC"
NAME = "flywheel-promoted-meta-llama-3-2-3b-instruct"
GROUP, VERSION, PLURAL = "apps.nvidia.com", "v1alpha1", "nimservices"


@pytest.fixture(scope="module")
def crd(vanilla):
    """The NIM Operator's REAL NIMService CRD, which the local cluster serves (tests/sim/cluster.py)."""
    doc = upstream.crd("NIMService")
    ext = client.ApiextensionsV1Api(vanilla)
    for _attempt in range(100):
        conds = ext.read_custom_resource_definition(doc["metadata"]["name"]).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conds):
            return doc
        time.sleep(0.1)
    raise AssertionError("CRD not Established")


@pytest.fixture
def hands_off(vanilla, namespace):
    """The local cluster's operator-status emulator would also write this NIMService's status: this
    test plays the operator itself, so it switches the emulator off for its namespace."""
    body = {"metadata": {"labels": {"dfw-sim.emulation/operator-status": "off"}}}
    client.CoreV1Api(vanilla).patch_namespace(namespace, body)
    return namespace


@pytest.fixture
def nemo():
    server = start_nemo(unit_seconds=0.3)
    ns, name = WINNER.split("/", 1)
    register_model(server, ns, name, base_model="meta/llama-3.2-3b-instruct", peft={"finetuning_type": "lora"})
    call(server.url + "/_sim/stats", "DELETE")
    yield server
    server.shutdown()


class FakeOperator(threading.Thread):
    """What the NIM Operator would do, reduced to its visible effect: write the NIMService status
    (state Ready with a Ready condition, or Failed) and make its NIM answer (the NIM proxy simulator)."""

    def __init__(self, api, namespace, nemo, outcome="Ready"):
        super().__init__(daemon=True)
        self.api, self.namespace, self.nemo, self.outcome = api, namespace, nemo, outcome
        self.done = threading.Event()

    def run(self):
        custom = client.CustomObjectsApi(self.api)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                obj = custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, NAME)
            except ApiException:
                time.sleep(0.2)
                continue
            time.sleep(1.0)  # the role must wait for this, not find it ready at once
            ready = self.outcome == "Ready"
            status = {
                "state": self.outcome,
                "conditions": [
                    {
                        "type": "Ready" if ready else "Failed",
                        "status": "True",
                        "reason": "Ready" if ready else "NIMCacheNotFound",
                        "message": "deployment is ready" if ready else "NIMCache llama-3b not found",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
                # the real CRD requires name, clusterEndpoint and externalEndpoint
                "model": {
                    "name": obj["metadata"]["name"],
                    "clusterEndpoint": f"{NAME}.{self.namespace}.svc:8000",
                    "externalEndpoint": "",
                },
            }
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, NAME, {"status": status}
            )
            if ready:
                env = {e["name"]: e["value"] for e in obj["spec"].get("env", [])}
                call(
                    self.nemo.url + "/_sim/nims",
                    "POST",
                    {"name": NAME, "model": "meta/llama-3.2-3b-instruct", "peft_source": env.get("NIM_PEFT_SOURCE")},
                )
            self.done.set()
            return


def promote(tmp_path, kubeconfig, namespace, nemo):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "flywheel_clusters": {
                            "hosts": {
                                "local-cluster": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                                    "flywheel_kubeconfig": kubeconfig,
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    variables = {
        "flywheel_promote_results": RESULTS,
        "flywheel_promote_method": "nimservice",
        "flywheel_promote_approved": True,
        "flywheel_promote_k8s_namespace": namespace,
        "flywheel_promote_entity_store_url": "http://nemo-entity-store.nemo.svc:8000",
        "flywheel_promote_nim_url": nemo.nim.url,
        "flywheel_promote_artifacts_dir": str(tmp_path / "reports"),
        "flywheel_promote_wait_sleep": 1,
        "flywheel_promote_wait_timeout": 60,
    }
    return run_playbook(ROOT / "playbooks" / "flywheel_promote.yml", variables, inventory=inv)


def nim_secrets(api, namespace):
    """The Secrets flywheel_prereqs creates in a credential namespace, under the role's default names."""
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="ngc-api"), string_data={"NGC_API_KEY": "k"})
    )
    auths = json.dumps({"auths": {"nvcr.io": {"username": "$oauthtoken", "password": "k"}}})
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="nvcrimagepullsecret"),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": auths},
        ),
    )


def recap(proc) -> dict:
    line = next(x for x in proc.stdout.splitlines() if x.startswith("local-cluster") and "ok=" in x)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_nimservice_ready_smoke_test_and_rerun(tmp_path, vanilla, vanilla_kubeconfig, crd, hands_off, namespace, nemo):
    nim_secrets(vanilla, namespace)
    operator = FakeOperator(vanilla, namespace, nemo)
    operator.start()
    first = promote(tmp_path, vanilla_kubeconfig, namespace, nemo)
    assert first.returncode == 0, first.stdout[-3000:]
    assert operator.done.is_set()
    obj = client.CustomObjectsApi(vanilla).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    spec = obj["spec"]
    assert {e["name"]: e["value"] for e in spec["env"]} == {
        "NIM_PEFT_SOURCE": "http://nemo-entity-store.nemo.svc:8000",
        "NIM_PEFT_REFRESH_INTERVAL": "30",
    }
    assert spec["image"]["repository"] == "nvcr.io/nim/meta/llama-3.2-3b-instruct"
    assert spec["image"]["pullSecrets"] == ["nvcrimagepullsecret"] and spec["authSecret"] == "ngc-api"
    assert obj["metadata"]["annotations"]["dataflywheel.blueprint/promoted-model"] == WINNER
    assert stats(nemo.nim)["POST /v1/chat/completions"] == 1
    evidence = json.loads((tmp_path / "reports" / "promotion.json").read_text())
    assert evidence["deployment"] == {
        "method": "nimservice",
        "name": NAME,
        "namespace": namespace,
        "base_model": "meta/llama-3.2-3b-instruct",
        "status": "Ready",
        "url": f"{NAME}.{namespace}.svc:8000",
    }
    again = promote(tmp_path, vanilla_kubeconfig, namespace, nemo)
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-3000:]
    rv = client.CustomObjectsApi(vanilla).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    assert rv["metadata"]["generation"] == obj["metadata"]["generation"]  # spec untouched


def test_failed_nimservice_stops_with_the_operator_condition(
    tmp_path, vanilla, vanilla_kubeconfig, crd, hands_off, namespace, nemo
):
    # without the Secrets: stopped before the NIMService exists, naming what to set
    bare = promote(tmp_path, vanilla_kubeconfig, namespace, nemo)
    out = re.sub(r"\s+", " ", bare.stdout)
    assert bare.returncode != 0
    assert f"needs the Secret(s) ngc-api, nvcrimagepullsecret in namespace {namespace}" in out, out[-3000:]
    assert "flywheel_prereqs_credential_namespaces" in out and "Nothing was changed" in out
    custom = client.CustomObjectsApi(vanilla)
    assert custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"] == []
    nim_secrets(vanilla, namespace)
    FakeOperator(vanilla, namespace, nemo, outcome="Failed").start()
    proc = promote(tmp_path, vanilla_kubeconfig, namespace, nemo)
    out = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0
    assert f"NIMService {namespace}/{NAME} is Failed" in out and "NIMCacheNotFound NIMCache llama-3b not found" in out
    assert stats(nemo.nim).get("POST /v1/chat/completions", 0) == 0
