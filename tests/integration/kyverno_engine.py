"""The real Kyverno engine for the tests: the kyverno CLI (`kyverno apply`) built from Kyverno's Go module at the
version pinned in tests/sim/versions.env (tests/sim/build-binaries.sh kyverno; `make binaries` builds it), and
the customizer objects the remediate role's /scratch policy is applied to."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.sim import cluster

ROOT = Path(__file__).resolve().parents[2]
CUST = "cust-9hkmp47jdht6cpxga9s7pl"


def entity_handler_job(namespace: str, index: int = 0) -> dict:
    """The entity-handler Job the NeMo Operator creates for a customization (seeds/000: the PCAI copy, before
    the field's hand-added tmp and scratch volumes): one PVC volume at /pvc, the Data Store tools image."""
    name = f"{CUST}-entity-handler-{index}"
    labels = {"app": "nemo-k8s-operator", "app.kubernetes.io/name": CUST}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 5,
            "completions": 1,
            "parallelism": 1,
            "template": {
                "metadata": {
                    "labels": {**labels, "app.kubernetes.io/managed-by": "nemo-k8s-operator"},
                    "annotations": {"sidecar.istio.io/inject": "false"},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch"},
                    "imagePullSecrets": [{"name": "nvcrimagepullsecret"}],
                    "containers": [
                        {
                            "name": "main",
                            "image": "nvcr.io/nvidia/nemo-microservices/nds-v2-huggingface-cli:25.08",
                            "command": ["sh"],
                            "args": [
                                "-c",
                                "huggingface-cli download --repo-type dataset $ENTITY_NAME --local-dir /scratch/dataset"
                                " && mkdir -p $ENTITY_PATH && mv /scratch/dataset/* $ENTITY_PATH",
                            ],
                            "env": [
                                {"name": "ENTITY_TYPE", "value": "Dataset"},
                                {"name": "HF_ENDPOINT", "value": "http://nemo-data-store:3000/v1/hf"},
                                {"name": "HF_HOME", "value": "/tmp/hf_cache"},
                            ],
                            "volumeMounts": [{"name": "entity-volume", "mountPath": "/pvc"}],
                        }
                    ],
                    "volumes": [{"name": "entity-volume", "persistentVolumeClaim": {"claimName": CUST}}],
                },
            },
        },
    }


def training_job(namespace: str) -> dict:
    """The customizer's training Job (not an entity handler): the volumes the NIM Operator renders for
    training (models PVC read-only, /dev/shm), reference/nemo-nim.md section 1.2."""
    labels = {"app": "nemo-k8s-operator", "app.kubernetes.io/name": CUST}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{CUST}-training", "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "training",
                            "image": "nvcr.io/nvidia/nemo-microservices/customizer:25.08",
                            "resources": {"limits": {"nvidia.com/gpu": 1}},
                            "volumeMounts": [
                                {"name": "models", "mountPath": "/mount/models", "readOnly": True},
                                {"name": "dshm", "mountPath": "/dev/shm"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "models", "persistentVolumeClaim": {"claimName": "finetuning-ms-models-pvc"}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
                    ],
                },
            },
        },
    }


def pod_of(job: dict, suffix: str = "x7k2p") -> dict:
    """The Pod the Job controller creates from a Job: its template with the job-name and controller-uid labels
    the API server added to the stored Job, owned by the Job."""
    uid = "4f0b7c3e-5d1a-4c2b-9e8f-0a1b2c3d4e5f"
    name = job["metadata"]["name"]
    template = copy.deepcopy(job["spec"]["template"])
    labels = {
        **template["metadata"].get("labels", {}),
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{suffix}",
            "generateName": f"{name}-",
            "namespace": job["metadata"]["namespace"],
            "labels": labels,
            "annotations": template["metadata"].get("annotations", {}),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
    }


def with_own_scratch(pod: dict) -> dict:
    """An entity-handler Pod that already has a scratch volume (a customizer release that mounts one)."""
    pod = copy.deepcopy(pod)
    pod["metadata"]["name"] += "-own"
    pod["spec"]["volumes"].append({"name": "scratch", "persistentVolumeClaim": {"claimName": "scratch-pvc"}})
    pod["spec"]["containers"][0]["volumeMounts"].append({"name": "scratch", "mountPath": "/scratch"})
    return pod


def resources(namespace: str, other_namespace: str) -> tuple[list[dict], list[dict]]:
    """(must get /scratch, must stay unchanged) for a policy scoped to `namespace`."""
    job = entity_handler_job(namespace)
    mutate = [job, pod_of(job)]
    other_ns = entity_handler_job(other_namespace, index=1)
    training = training_job(namespace)
    keep = [training, pod_of(training), other_ns, pod_of(other_ns), with_own_scratch(pod_of(job, "q9w8e"))]
    return mutate, keep


# ---------------------------------------------------------------- the engine


def kyverno_cli() -> Path:
    """The kyverno CLI from the Go module, built (once, cached) if missing, as cluster.py builds its binaries."""
    path = cluster.binary("kyverno")
    if not path.exists():
        proc = subprocess.run(
            ["bash", str(ROOT / "tests" / "sim" / "build-binaries.sh"), "kyverno"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not path.exists():
            pytest.fail(
                f"the kyverno CLI could not be built (tests/sim/build-binaries.sh kyverno, rc={proc.returncode}):\n"
                f"{proc.stderr[-3000:]}"
            )
    return path


def kyverno_apply(cli: Path, policy: dict, objects: list[dict], work: Path) -> tuple[dict, str]:
    """`kyverno apply POLICY --resource R... -o DIR`: every resource as the engine left it, by name, and the
    CLI's output."""
    work.mkdir(parents=True, exist_ok=True)
    policy_file = work / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))
    cmd = [str(cli), "apply", str(policy_file), "--remove-color"]
    for obj in objects:
        path = work / f"{obj['kind'].lower()}-{obj['metadata']['namespace']}-{obj['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        cmd += ["--resource", str(path)]
    out_dir = work / "out"
    cmd += ["-o", str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    text = f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, text
    applied = {}
    for path in sorted(out_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                applied[(doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
    return applied, text


def key(obj: dict) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"] if obj["kind"] == "Job" else obj["spec"]


def scratch_problems(before: dict, after: dict | None, mount: str) -> list[str]:
    """What is wrong with `after` for an object that must get /scratch: exactly one emptyDir volume `scratch`,
    a mount of it at `mount` in every container, and nothing else changed.

    Kyverno's patchStrategicMerge drops the empty `emptyDir: {}` of the policy: the engine's output has a volume
    `scratch` with no source, which the API server defaults to an emptyDir after the webhook's patch (its
    mutating-webhook dispatcher runs the defaulters on the patched object; core/v1 SetDefaults_Volume). Both
    forms are accepted here; tests/integration/test_remediate_units.py sends the engine's output to the real
    API server (server-side dry run) and checks the stored volume is an emptyDir."""
    name = "/".join(key(before))
    if after is None:
        return [f"{name}: not in the engine's output"]
    problems = []
    spec = pod_spec(after)
    scratch = [v for v in spec.get("volumes", []) if v["name"] == "scratch"]
    if scratch not in ([{"name": "scratch"}], [{"name": "scratch", "emptyDir": {}}]):
        problems.append(f"{name}: scratch volumes {scratch}, want one emptyDir")
    for c in spec["containers"]:
        mounts = [m for m in c.get("volumeMounts", []) if m["name"] == "scratch"]
        if mounts != [{"name": "scratch", "mountPath": mount}]:
            problems.append(f"{name}: container {c['name']} scratch mounts {mounts}, want {mount}")
    # nothing else: remove what the policy adds and compare with the input
    stripped = copy.deepcopy(after)
    s = pod_spec(stripped)
    s["volumes"] = [v for v in s.get("volumes", []) if v["name"] != "scratch"]
    for c in s["containers"]:
        c["volumeMounts"] = [m for m in c.get("volumeMounts", []) if m["name"] != "scratch"]
    if stripped != before:
        problems.append(f"{name}: other fields changed")
    return problems


def check(applied: dict, mutate: list[dict], keep: list[dict], mount: str) -> list[str]:
    problems = []
    for obj in mutate:
        problems += scratch_problems(obj, applied.get(key(obj)), mount)
    for obj in keep:
        if applied.get(key(obj)) != obj:
            problems.append(f"{'/'.join(key(obj))}: changed, must be left alone: {applied.get(key(obj))}")
    return problems
