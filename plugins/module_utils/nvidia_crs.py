# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The NVIDIA custom resources the roles create, built as data (pure functions, no I/O).

NIM Operator (apps.nvidia.com/v1alpha1): NemoDatastore, NemoEntitystore, NemoCustomizer,
NemoEvaluator, NemoGuardrail, NIMCache, NIMService. GPU Operator (nvidia.com/v1): the ClusterPolicy
spec. Every required field of the real CRDs is filled from the caller's (typed, documented) role
variables; the shapes follow the NIM Operator release the CRs are meant for (CR_SHAPES).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

API_VERSION = "apps.nvidia.com/v1alpha1"

# NIM Operator release line -> what differs in the CRs this collection renders.
# 2.0.x (the NeMo 25.08 custom resources "match the capabilities of NIM Operator v2.0.2"): NemoGuardrail
# has no databaseConfig. 3.x: NemoGuardrail takes databaseConfig; spec-level CEL rules (scale.enabled
# excludes replicas, ingress excludes router) that these CRs respect in both shapes.
CR_SHAPES = {
    "2": {"releases": "2.0.x", "guardrail_database": False},
    "3": {"releases": "3.x", "guardrail_database": True},
}


class CRInputError(ValueError):
    """A role variable cannot make a valid custom resource; the message names the variable."""


def operator_shape(version, variable="nim_operator_version"):
    """'2' or '3': which CR shape goes with NIM Operator `version` (v2.0.2, 2.0.2, 3.1.2, v3.0.0...)."""
    found = re.match(r"^v?(\d+)\.(\d+)(\.\d+)?([-+].*)?$", str(version or "").strip())
    if not found:
        raise CRInputError("%s=%r is not a NIM Operator version: give one such as 3.1.2 or 2.0.2" % (variable, version))
    major, minor = int(found.group(1)), int(found.group(2))
    if major == 2 and minor == 0:
        return "2"
    if major == 3:
        return "3"
    raise CRInputError(
        "%s=%s: the collection renders custom resources for NIM Operator 2.0.x (NeMo 25.08) and 3.x; "
        "install one of those (nim_operator_chart_version) and set %s to it" % (variable, version, variable)
    )


def served_shape(crd_names):
    """The CR shape the cluster's apps.nvidia.com CRDs serve: NIMBuild exists from NIM Operator 3.0 on."""
    names = set(crd_names or [])
    if "nemocustomizers.apps.nvidia.com" not in names:
        return None
    return "3" if "nimbuilds.apps.nvidia.com" in names else "2"


def dns_label(model_name):
    """meta/llama-3.2-1b-instruct -> llama-3-2-1b-instruct (the object name of a NIM)."""
    name = re.sub(r"[^a-z0-9-]+", "-", str(model_name).rsplit("/", 1)[-1].lower()).strip("-")
    if not name:
        raise CRInputError("model_name %r gives no Kubernetes object name" % (model_name,))
    return name[:63].rstrip("-")


def service_url(name, namespace, port=8000, path=""):
    return "http://%s.%s.svc.cluster.local:%d%s" % (name, namespace, int(port), path)


def _meta(kind, name, namespace, labels=None, annotations=None):
    meta = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta}


def _image(repository, tag, pull_secrets):
    image = {"repository": repository, "tag": str(tag), "pullPolicy": "IfNotPresent"}
    if pull_secrets:
        image["pullSecrets"] = list(pull_secrets)
    return image


def _pvc(name, size, access_mode, storage_class):
    pvc = {"name": name, "create": True, "size": str(size), "volumeAccessMode": access_mode}
    if storage_class:
        pvc["storageClass"] = storage_class
    return pvc


def _workspace_pvc(size, access_mode, storage_class):
    pvc = {"size": str(size or "10Gi"), "volumeAccessMode": access_mode, "mountPath": "/pvc/workspace"}
    if storage_class:
        pvc["storageClass"] = storage_class
    return pvc


def _require(params, *names):
    missing = [n for n in names if params.get(n) in (None, "", [], {})]
    if missing:
        raise CRInputError(
            "nemo_platform: %s must be set for nemo_platform_style=operator"
            % ", ".join("nemo_platform_" + n for n in missing)
        )


def nemo_crs(params):
    """The NeMo microservices as NIM Operator CRs, in creation order (datastore first).

    params (the nemo_platform_ variables without the prefix): namespace, nim_operator_version,
    image_registry, image_tag, pull_secret, ngc_secret, database (host, port, user, secret,
    password_key), datastore_secrets (the five Secret names), storage_class, training_access_mode,
    datastore_pvc_size, customizer_models_pvc_size, customizer_workspace_pvc_size,
    customizer_mlflow_endpoint, customizer_wandb_secret, customizer_model_config,
    argo_workflows (endpoint, service_account), vector_db_endpoint, evaluation_images,
    guardrails_enabled, guardrails_nim_url.
    """
    p = dict(params)
    shape = CR_SHAPES[operator_shape(p.get("nim_operator_version"), "nemo_platform_nim_operator_version")]
    _require(
        p,
        "namespace",
        "image_registry",
        "image_tag",
        "database",
        "datastore_secrets",
        "customizer_mlflow_endpoint",
        "customizer_wandb_secret",
        "customizer_model_config",
        "argo_workflows",
        "vector_db_endpoint",
        "evaluation_images",
    )
    ns = p["namespace"]
    registry = p["image_registry"].rstrip("/")
    tag = str(p["image_tag"])
    pull = [p["pull_secret"]] if p.get("pull_secret") else []
    db = p["database"]
    secret_keys = (
        "datastoreConfigSecret",
        "datastoreInitSecret",
        "datastoreInlineConfigSecret",
        "giteaAdminSecret",
        "lfsJwtSecret",
    )
    secrets = dict(p["datastore_secrets"])
    missing = [k for k in secret_keys if not secrets.get(k)]
    if missing:
        raise CRInputError("nemo_platform_datastore_secrets lacks %s (the NemoDatastore's Secret names)" % missing)
    access = p.get("training_access_mode") or "ReadWriteOnce"
    storage_class = p.get("storage_class") or ""
    expose = {"service": {"type": "ClusterIP", "port": 8000}}
    datastore_url = service_url("nemodatastore", ns)
    entitystore_url = service_url("nemoentitystore", ns)

    def database(name):
        return {
            "host": db["host"],
            "port": int(db.get("port", 5432)),
            "databaseName": name,
            "credentials": {
                "user": db["user"],
                "secretName": db["secret"],
                "passwordKey": db.get("password_key", "password"),
            },
        }

    def cr(kind, name, spec):
        out = _meta(kind, name, ns, labels={"app.kubernetes.io/managed-by": "dataflywheel.blueprint"})
        out["spec"] = spec
        return out

    crs = [
        cr(
            "NemoDatastore",
            "nemodatastore",
            {
                "image": _image(registry + "/datastore", tag, pull),
                "expose": expose,
                "databaseConfig": database("datastore"),
                "secrets": dict((k, secrets[k]) for k in secret_keys),
                "pvc": _pvc(
                    "nemodatastore-data", p.get("datastore_pvc_size") or "10Gi", "ReadWriteOnce", storage_class
                ),
            },
        ),
        cr(
            "NemoEntitystore",
            "nemoentitystore",
            {
                "image": _image(registry + "/entity-store", tag, pull),
                "expose": expose,
                "databaseConfig": database("entitystore"),
                "datastore": {"endpoint": datastore_url},
            },
        ),
        cr(
            "NemoCustomizer",
            "nemocustomizer",
            {
                "image": _image(registry + "/customizer-api", tag, pull),
                "expose": expose,
                "databaseConfig": database("customizer"),
                "entitystore": {"endpoint": entitystore_url},
                "datastore": {"endpoint": datastore_url},
                "scheduler": {"type": "volcano"},
                "mlflow": {"endpoint": p["customizer_mlflow_endpoint"]},
                "wandb": {
                    "secretName": p["customizer_wandb_secret"],
                    "apiKeyKey": "apiKey",
                    "encryptionKey": "encryptionKey",
                },
                "nemoDatastoreTools": {"image": "%s/nds-v2-huggingface-cli:%s" % (registry, tag)},
                "modelDownloadJobs": {
                    "image": "%s/customizer-api:%s" % (registry, tag),
                    "ngcAPISecret": {"name": p.get("ngc_secret") or "ngc-api", "key": "NGC_API_KEY"},
                    "pollIntervalSeconds": 15,
                    "ttlSecondsAfterFinished": 600,
                    "securityContext": {"fsGroup": 1000, "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000},
                },
                "modelConfig": {"name": p["customizer_model_config"]},
                "trainingConfig": {
                    "image": {"repository": registry + "/customizer", "tag": tag},
                    "modelPVC": _pvc(
                        "nemocustomizer-models", p.get("customizer_models_pvc_size") or "50Gi", access, storage_class
                    ),
                    "workspacePVC": _workspace_pvc(p.get("customizer_workspace_pvc_size"), access, storage_class),
                    "ttlSecondsAfterFinished": 3600,
                    "timeout": 3600,
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                },
            },
        ),
        cr(
            "NemoEvaluator",
            "nemoevaluator",
            {
                "image": _image(registry + "/evaluator", tag, pull),
                "expose": expose,
                "databaseConfig": database("evaluator"),
                "argoWorkflows": {
                    "endpoint": p["argo_workflows"]["endpoint"],
                    "serviceAccount": p["argo_workflows"]["service_account"],
                },
                "vectorDB": {"endpoint": p["vector_db_endpoint"]},
                "datastore": {"endpoint": datastore_url + "/v1/hf"},
                # on the CR, so an operator reconcile keeps it (an `oc set env` was reset)
                "entitystore": {"endpoint": entitystore_url},
                "evaluationImages": dict(p["evaluation_images"]),
            },
        ),
    ]
    if p.get("guardrails_enabled"):
        spec = {
            "image": _image(registry + "/guardrails", tag, pull),
            "expose": expose,
            "configStore": {"pvc": _pvc("nemoguardrail-config", "1Gi", "ReadWriteOnce", storage_class)},
            "nimEndpoint": {"baseURL": p.get("guardrails_nim_url") or "http://nim.invalid/v1"},
        }
        if shape["guardrail_database"]:
            spec["databaseConfig"] = database("guardrail")
        crs.append(cr("NemoGuardrail", "nemoguardrail", spec))
    return crs


def nim_cache(name, namespace, model_puller, auth_secret, pull_secret, size, storage_class=""):
    """A NIMCache that downloads one NIM's model from NGC into a PVC it creates."""
    out = _meta("NIMCache", name, namespace, labels={"app.kubernetes.io/managed-by": "dataflywheel.blueprint"})
    out["spec"] = {
        "source": {"ngc": {"authSecret": auth_secret, "modelPuller": model_puller, "pullSecret": pull_secret}},
        "storage": {"pvc": _pvc(name, size, "ReadWriteOnce", storage_class)},
    }
    return out


def nim_service(
    name,
    namespace,
    repository,
    tag,
    auth_secret,
    pull_secrets,
    gpus=1,
    port=8000,
    nim_cache_name=None,
    pvc_size=None,
    env=None,
    labels=None,
    annotations=None,
):
    """A NIMService: the NIM image, its model from a NIMCache (nim_cache_name) or a PVC it creates
    (pvc_size), GPUs, a ClusterIP Service on `port` named like the NIMService."""
    if bool(nim_cache_name) == bool(pvc_size):
        raise CRInputError("NIMService %s: give either a NIMCache name or a PVC size for its model" % name)
    out = _meta(
        "NIMService",
        name,
        namespace,
        labels=dict({"app.kubernetes.io/managed-by": "dataflywheel.blueprint"}, **(labels or {})),
        annotations=annotations,
    )
    storage = (
        {"nimCache": {"name": nim_cache_name}} if nim_cache_name else {"pvc": _pvc(name, pvc_size, "ReadWriteOnce", "")}
    )
    spec = {
        "image": _image(repository, tag, pull_secrets),
        "authSecret": auth_secret,
        "storage": storage,
        "replicas": 1,
        "resources": {"limits": {"nvidia.com/gpu": int(gpus)}},
        "expose": {"service": {"type": "ClusterIP", "port": int(port)}},
    }
    if env:
        spec["env"] = [{"name": str(e["name"]), "value": str(e["value"])} for e in env]
    out["spec"] = spec
    return out


def nim_objects(nims, namespace, default_storage_size, storage_class="", ngc_secret="ngc-api", pull_secret=""):  # noqa: S107
    """NIMCache + NIMService per entry of nemo_platform_nims (model_name, tag, image, gpus, storage_size)."""
    out = []
    seen = {}
    for index, nim in enumerate(nims or []):
        model = (nim or {}).get("model_name")
        if not isinstance(model, str) or not model:
            raise CRInputError("nemo_platform_nims[%d] has no model_name (e.g. meta/llama-3.2-1b-instruct)" % index)
        name = dns_label(model)
        if name in seen:
            raise CRInputError("nemo_platform_nims: %s and %s give the same object name %s" % (seen[name], model, name))
        seen[name] = model
        repository = nim.get("image") or "nvcr.io/nim/" + model
        tag = str(nim.get("tag") or "latest")
        cache = nim_cache(
            name,
            namespace,
            "%s:%s" % (repository, tag),
            ngc_secret,
            pull_secret,
            nim.get("storage_size") or default_storage_size,
            storage_class,
        )
        service = nim_service(
            name,
            namespace,
            repository,
            tag,
            ngc_secret,
            [pull_secret] if pull_secret else [],
            gpus=nim.get("gpus", 1),
            nim_cache_name=name,
        )
        out.append({"model_name": model, "name": name, "nimcache": cache, "nimservice": service})
    return out


# ---------------------------------------------------------------- GPU Operator

KERNEL_MODULE_TYPES = ("auto", "open", "proprietary")


def cluster_policy_spec(manage_host_software, driver_version, kernel_module_type="auto"):
    """The ClusterPolicy spec for an OLM install (OLM creates no ClusterPolicy): the nine sections the
    CRD requires (daemonsets, dcgm, dcgmExporter, devicePlugin, driver, gfd, nodeStatusExporter,
    operator, toolkit), enabled as the chart's defaults enable them; driver and toolkit follow
    manage_host_software (false: the hosts bring their own)."""
    if kernel_module_type not in KERNEL_MODULE_TYPES:
        raise CRInputError(
            "gpu_operator_kernel_module_type=%r: choose one of %s"
            % (kernel_module_type, ", ".join(KERNEL_MODULE_TYPES))
        )
    manage = bool(manage_host_software)
    return {
        "operator": {"runtimeClass": "nvidia", "use_ocp_driver_toolkit": False},
        "daemonsets": {
            "priorityClassName": "system-node-critical",
            "updateStrategy": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "1"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "driver": {"enabled": manage, "version": str(driver_version), "kernelModuleType": kernel_module_type},
        "toolkit": {"enabled": manage},
        "devicePlugin": {"enabled": True},
        "dcgm": {"enabled": False},
        "dcgmExporter": {"enabled": True},
        "gfd": {"enabled": True},
        "nodeStatusExporter": {"enabled": False},
    }
