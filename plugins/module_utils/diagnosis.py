# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The doctor: find a Data Flywheel deployment and say what is wrong with it, read-only.

`CATALOGUE` is the findings catalogue as data (id, severity, symptom, cause, fix); the checks are
functions over a `scene` (the objects `gather()` read through the Kubernetes API, and the answers of
the REST services the controller can reach). A check returns findings, each with its evidence (the
object, event, log line or API answer it is based on). What needs something the controller was not
given is reported in `not_checked`, with what to pass. Secrets are never read (Secret *names* only,
as metadata) and every text that leaves this module goes through `redact()`.

Shared with the remediate role: its evaluator-secret-delete unit checks its effect with
`flywheel_diagnose` (`checks: [evaluator-secret-delete]`); the doctor runs the preflight's and the remediate
role's own check task files (role diagnose); failed job parts are read with the flywheel and NeMo modules'
own diagnosis (flywheel_summary.summarize, nemo_jobs.enrich_summary/needle_for).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import nemo_jobs

SEVERITIES = ("critical", "error", "warning", "info")
FLYWHEEL_API_DEPLOYMENT = "df-api-deployment"
UPSTREAM_SECRET_NAMESPACE = "nv-nvidia-blueprint-data-flywheel"  # noqa: S105 - a namespace name
NVIDIA_GROUP = "apps.nvidia.com"
ENTITY_HANDLER = "entity-handler"
SCRATCH_POLICY = "dfw-scratch-%s"
UID_RANGE = "openshift.io/sa.scc.uid-range"

# The findings catalogue, as text: a block an entry, `<id> <severity>` and then what a person needs to act, one field
# a line (symptom: what they see, cause:, and the fix: role:, unit:, variable:, manual:); a deeper indented line
# continues the field above it. parse_catalogue() turns it into CATALOGUE.
CATALOGUE_TEXT = """
deployment-not-found critical
  symptom: No Data Flywheel or NeMo microservices deployment was found in the namespaces read.
  cause: The credentials see other namespaces, the deployment is elsewhere, or it was never installed.
  manual: Pass diagnose_namespaces with the flywheel and NeMo namespaces, or check the kubeconfig/context.

chart-secrets-namespace critical
  symptom: The flywheel API and workers cannot start: their Secrets (nvidia-api, hf-secret, ...) are not in the
    release namespace.
  cause: The flywheel chart renders its Secrets into `.Values.namespace` (default
    nv-nvidia-blueprint-data-flywheel), not the release namespace; installed with the chart's defaults into
    another namespace, the Deployments reference Secrets that are elsewhere.
  role: dataflywheel.blueprint.flywheel
  variable: flywheel_namespace
  manual: helm upgrade <release> -n <namespace> --reuse-values --set namespace=<namespace> (the chart's namespace
    value must be the release namespace); the flywheel role always sets it so.

image-pull-credentials critical
  symptom: Pods pulling nvcr.io images fail with ErrImagePull/ImagePullBackOff (401 Unauthorized).
  cause: The image pull Secret the Pods name does not exist (the chart creates it only when the NGC API key is
    given), or no pull Secret is named at all.
  role: dataflywheel.blueprint.flywheel
  variable: flywheel_ngc_api_key
  manual: set flywheel_ngc_api_key (vault or NGC_API_KEY) and rerun site.yml, or create the
    kubernetes.io/dockerconfigjson Secret for nvcr.io ($oauthtoken / NGC key) the Pods name.

evaluator-secret-delete error
  symptom: Evaluation jobs fail cleaning up: secrets "..." is forbidden: ... cannot delete resource "secrets".
  cause: The NIM operator's NemoEvaluator Role grants secrets get/watch/list/create but no delete; patching that
    operator-owned Role is undone by the next reconcile.
  role: dataflywheel.blueprint.remediate
  unit: evaluator-secret-delete
  variable: remediate_evaluator_name

evaluator-entity-store-url error
  symptom: base-eval fails with 404 from the Entity Store; the evaluator calls an Entity Store that does not exist
    (ENTITY_STORE_URL back to the default after a reconcile).
  cause: spec.entitystore.endpoint of the NemoEvaluator CR names no Service of this cluster; `oc set env` on the
    operator-owned Deployment is overwritten.
  role: dataflywheel.blueprint.remediate
  unit: evaluator-entity-store-url
  variable: remediate_evaluator_entity_store_endpoint

entity-store-404 error
  symptom: base-eval fails: the evaluator's GET /v1/models/<namespace>/<model> answers 404.
  cause: Base NIMs deployed by the NIM operator are never registered in the Entity Store.
  role: dataflywheel.blueprint.remediate
  unit: entity-store-registration
  variable: remediate_nemo_models, remediate_entity_store_url

scratch-volume error
  symptom: Customizer entity-handler Jobs fail: PermissionError: [Errno 13] Permission denied: '/scratch'; the
    customization never starts (The training job is pending).
  cause: The entity-handler Jobs the NeMo operator creates mount no writable /scratch, and no admission policy
    (MutatingAdmissionPolicy or Kyverno dfw-scratch-<namespace>) adds it.
  role: dataflywheel.blueprint.remediate
  unit: scratch-volume
  variable: remediate_scratch_mechanism

training-pending error
  symptom: A customization failed with "The training job is pending".
  cause: The entity-handler Job that downloads the dataset did not finish (most often: no /scratch).
  role: dataflywheel.blueprint.remediate
  unit: scratch-volume
  manual: then start the flywheel job again (dataflywheel.blueprint.flywheel_run).

customizer-keyerror-state error
  symptom: The customizer logs KeyError: 'state' and the customization never progresses.
  cause: The customizer read a NemoTrainingJob without status: an entity-handler Job was re-created by hand, or
    the NeMo operator does not watch this namespace.
  role: dataflywheel.blueprint.remediate
  unit: scratch-volume
  manual: delete the hand-made entity-handler Jobs, restart the customizer (its watcher of the broken job lives
    in that process; the doctor reads the running container's log), apply the scratch unit and start the
    customization again.

training-not-enough-resources warning
  symptom: A customization stays pending: NotEnoughResources.
  cause: The scheduler cannot place the training Pod (GPUs, node selector, Volcano queue).
  manual: free GPUs or lower num_gpus in the customization config; check the Volcano queue.

training-out-of-memory error
  symptom: Training failed: CUDA out of memory.
  cause: The training configuration does not fit the GPU memory.
  manual: lower micro_batch_size or max_seq_length, or use more GPUs.

flywheel-job-failed-parts error
  symptom: A flywheel job reports "completed" but some of its parts failed.
  cause: The flywheel marks a job completed even when a NIM, an evaluation or a customization failed; the failed
    part's own error is the evidence.
  role: dataflywheel.blueprint.flywheel_run
  manual: fix the cause the part's error names, then start the job again.

embedding-dimension error
  symptom: The flywheel fails with "Elasticsearch Bulk Indexing Error" for some embedding models.
  cause: The embedding model returns vectors of another size than the index's dense_vector field (2048).
  role: dataflywheel.blueprint.preflight
  unit: embedding dimension
  variable: preflight_embedding_model (flywheel embedding model), preflight_embedding_dimension

hf-gated-model error
  symptom: Model download Jobs fail with 403 (gated repo, not in the authorized list), 401 or 404.
  cause: The Hugging Face token's account has not accepted the model licence, or the token is invalid.
  role: dataflywheel.blueprint.preflight
  unit: Hugging Face token
  variable: flywheel_hf_token / preflight_hf_token
  manual: open the model page with the token's account and accept the licence.

nfs-name-resolution error
  symptom: NFS PVC mounts fail: Failed to resolve server <name>.
  cause: The kubelet mounts with the node's own resolver (not CoreDNS), which lacks the Files server's search
    domain.
  role: dataflywheel.blueprint.preflight
  unit: nutanix_resolver (on the GPU hosts)
  manual: add the Files server's domain to the nodes' DNS search domains, or create a StorageClass whose nfsServer
    is the FQDN or IP.

model-pvc-ownership error
  symptom: A Pod cannot read or write its files on a PVC: Permission denied (training Pods reading the base model
    after a redeploy, a NIM writing its model cache).
  cause: The files on the PVC belong to a UID the Pods no longer run as (1000, from an earlier deployment):
    OpenShift runs them with a UID of the namespace's openshift.io/sa.scc.uid-range.
  role: dataflywheel.blueprint.remediate
  unit: openshift-model-ownership
  variable: remediate_model_pvc

preflight-check-failed error
  symptom: A read-only check of the collection failed.
  cause: See the evidence: the check's own message names the cause.
  manual: follow the fix the check's message names.
"""
FIX_FIELDS = ("role", "unit", "variable", "manual")


def parse_catalogue(text):
    """{id: {severity, symptom, cause, fix: {role, unit, variable, manual}}} from CATALOGUE_TEXT's form; a
    ValueError names the line of anything else."""
    catalogue = {}
    entry = target = name = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("    ") and target is not None:
            target[name] += " " + line.strip()
            continue
        if not line.startswith(" "):
            head = line.split()
            if len(head) != 2 or head[1] not in SEVERITIES or head[0] in catalogue:
                raise ValueError(
                    "catalogue line %d: want a new `<id> <severity>` (%s), got %r"
                    % (number, "|".join(SEVERITIES), line)
                )
            entry = catalogue[head[0]] = dict(severity=head[1], fix={})
            target = None
            continue
        name, sep, value = line.strip().partition(": ")
        if entry is None or not sep or name not in ("symptom", "cause") + FIX_FIELDS:
            raise ValueError(
                "catalogue line %d: want `symptom|cause|%s: <text>`, got %r" % (number, "|".join(FIX_FIELDS), line)
            )
        target = entry["fix"] if name in FIX_FIELDS else entry
        target[name] = value
    for check_id, entry in catalogue.items():
        if not (
            entry.get("symptom") and entry.get("cause") and (entry["fix"].get("role") or entry["fix"].get("manual"))
        ):
            raise ValueError("catalogue entry %s: a symptom, a cause and a role or manual fix are required" % check_id)
    return catalogue


CATALOGUE = parse_catalogue(CATALOGUE_TEXT)

# image pull Secrets outside the flywheel's namespace (NeMo, NIMs) come from flywheel_prereqs
NEMO_PULL_FIX = dict(
    role="dataflywheel.blueprint.flywheel_prereqs",
    unit="credentials",
    variable="flywheel_ngc_api_key, flywheel_prereqs_credential_namespaces",
)

# nemo_jobs.HINTS needles -> the catalogue entry a failed job part is filed under
NEEDLE_IDS = {
    "NotEnoughResources": "training-not-enough-resources",
    "The training job is pending": "training-pending",
    "Permission denied: '/scratch'": "scratch-volume",
    "KeyError: 'state'": "customizer-keyerror-state",
    'cannot delete resource "secrets"': "evaluator-secret-delete",
    "/v1/models/": "entity-store-404",
    "out of memory": "training-out-of-memory",
}

# the checks that read the platform facts (platform_info's discovery)
PLATFORM_CHECKS = ("discovery", "scratch-volume", "model-pvc-ownership")

# what only a customization's failure can mean
CUSTOMIZER_IDS = (
    "training-pending",
    "customizer-keyerror-state",
    "training-not-enough-resources",
    "training-out-of-memory",
    "scratch-volume",
)

CHECKS = (
    "discovery",
    "chart-secrets-namespace",
    "image-pull-credentials",
    "evaluator-secret-delete",
    "evaluator-entity-store-url",
    "entity-store-404",
    "scratch-volume",
    "model-pvc-ownership",
    "nfs-name-resolution",
    "customizer-logs",
    "flywheel-jobs",
)

# ------------------------------------------------------------------------------ redaction
SECRET_PATTERNS = (
    re.compile(r"nvapi-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r'(?i)("?(?:password|token|api[_-]?key|secret)"?\s*[:=]\s*"?)[^",\s}]{4,}'),
)


def redact(value, secrets=()):
    """`value` (str, list, dict) with known secret values and secret-looking strings replaced."""
    if isinstance(value, dict):
        return dict((k, redact(v, secrets)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    if not isinstance(value, str):
        return value
    text = value
    for secret in secrets or ():
        if secret and len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    for pattern in SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "<redacted>", text)
        else:
            text = pattern.sub("<redacted>", text)
    return text


# ------------------------------------------------------------------------------ findings
def finding(check_id, evidence, where=None, detail=None, severity=None, fix=None):
    entry = CATALOGUE[check_id]
    out = dict(
        id=check_id,
        severity=severity or entry["severity"],
        symptom=entry["symptom"],
        evidence=list(evidence) if isinstance(evidence, (list, tuple)) else [evidence],
        cause=entry["cause"] + (" " + detail if detail else ""),
        fix=dict(fix or entry["fix"]),
    )
    if where:
        out["where"] = where
    return out


def fix_text(fix):
    parts = []
    if fix.get("role"):
        parts.append("role %s" % fix["role"])
    if fix.get("unit"):
        parts.append("unit %s" % fix["unit"])
    if fix.get("variable"):
        parts.append("variable %s" % fix["variable"])
    text = ", ".join(parts)
    if fix.get("manual"):
        text = (text + "; " if text else "") + fix["manual"]
    return text


def _meta(obj):
    return obj.get("metadata") or {}


def _name(obj):
    return _meta(obj).get("name")


def _ns(obj):
    return _meta(obj).get("namespace")


def _objects(scene, namespace, kind):
    return ((scene.get("objects") or {}).get(namespace) or {}).get(kind) or []


def _pod_specs(scene, namespace):
    """(kind/name, pod spec) of every Pod and every Deployment's Pod template in the namespace."""
    out = []
    for dep in _objects(scene, namespace, "deployments"):
        out.append(
            (
                "Deployment %s/%s" % (namespace, _name(dep)),
                ((dep.get("spec") or {}).get("template") or {}).get("spec") or {},
            )
        )
    for pod in _objects(scene, namespace, "pods"):
        if (_meta(pod).get("ownerReferences") or [{}])[0].get("kind") in ("ReplicaSet",):
            continue  # its Deployment is read already
        out.append(("Pod %s/%s" % (namespace, _name(pod)), pod.get("spec") or {}))
    return out


# ------------------------------------------------------------------------------ discovery
def discover(scene):
    """What was found: namespaces, helm releases, operator CRs, versions."""
    releases = {}
    for ns, kinds in (scene.get("objects") or {}).items():
        for kind in ("deployments", "services", "secrets", "jobs"):
            for obj in kinds.get(kind) or []:
                ann = _meta(obj).get("annotations") or {}
                labels = _meta(obj).get("labels") or {}
                name = ann.get("meta.helm.sh/release-name")
                if not name:
                    continue
                key = "%s/%s" % (ann.get("meta.helm.sh/release-namespace") or ns, name)
                rel = releases.setdefault(
                    key,
                    dict(
                        name=name,
                        namespace=ann.get("meta.helm.sh/release-namespace") or ns,
                        charts=[],
                        object_namespaces=[],
                    ),
                )
                chart = labels.get("helm.sh/chart")
                if chart and chart not in rel["charts"]:
                    rel["charts"].append(chart)
                if ns not in rel["object_namespaces"]:
                    rel["object_namespaces"].append(ns)
    flywheel = []
    for ns, kinds in (scene.get("objects") or {}).items():
        for dep in kinds.get("deployments") or []:
            if _name(dep) == FLYWHEEL_API_DEPLOYMENT:
                containers = ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
                flywheel.append(dict(namespace=ns, image=containers[0].get("image")))
    crs = {}
    for kind, items in (scene.get("crs") or {}).items():
        crs[kind] = [
            dict(
                namespace=_ns(i),
                name=_name(i),
                version=((i.get("spec") or {}).get("image") or {}).get("tag"),
                state=(i.get("status") or {}).get("state"),
            )
            for i in items
        ]
    return dict(
        platform=(scene.get("platform") or {}).get("platform"),
        server_version=(scene.get("platform") or {}).get("server_version"),
        namespaces=sorted((scene.get("objects") or {}).keys()),
        flywheel=flywheel,
        helm_releases=sorted(releases.values(), key=lambda r: (r["namespace"], r["name"])),
        operator_resources=crs,
    )


def check_discovery(scene):
    found = discover(scene)
    if found["flywheel"] or any(found["operator_resources"].values()) or found["helm_releases"]:
        return []
    return [
        finding(
            "deployment-not-found",
            "namespaces read: %s; no Deployment %s, no %s custom resource, no helm-managed object"
            % (", ".join(found["namespaces"]) or "none", FLYWHEEL_API_DEPLOYMENT, NVIDIA_GROUP),
        )
    ]


# ------------------------------------------------------------------------------ checks
def _secret_refs(spec):
    """Secret names a pod spec needs: env secretKeyRef, envFrom, volumes."""
    refs = []
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for env in c.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
            if ref:
                refs.append((ref, "env %s of container %s" % (env.get("name"), c.get("name"))))
        for src in c.get("envFrom") or []:
            ref = (src.get("secretRef") or {}).get("name")
            if ref:
                refs.append((ref, "envFrom of container %s" % c.get("name")))
    for vol in spec.get("volumes") or []:
        ref = (vol.get("secret") or {}).get("secretName")
        if ref:
            refs.append((ref, "volume %s" % vol.get("name")))
    return refs


def _secret_names(scene, namespace):
    names = (scene.get("secrets") or {}).get(namespace)
    return None if names is None else set(names)


def _secret_namespaces(scene, name):
    return sorted(ns for ns, names in (scene.get("secrets") or {}).items() if names is not None and name in names)


def check_chart_secrets_namespace(scene):
    out = []
    for fw in discover(scene)["flywheel"]:
        ns = fw["namespace"]
        have = _secret_names(scene, ns)
        if have is None:
            continue  # reported as not checked by gather()
        evidence = []
        for where, spec in _pod_specs(scene, ns):
            for ref, how in _secret_refs(spec):
                if ref in have:
                    continue
                elsewhere = _secret_namespaces(scene, ref)
                evidence.append(
                    "%s: %s needs Secret %s, which is not in namespace %s%s"
                    % (where, how, ref, ns, " but in %s" % ", ".join(elsewhere) if elsewhere else "")
                )
        if evidence:
            landed = [n for n in (scene.get("secrets") or {}) if n != ns and scene["secrets"].get(n)]
            detail = ""
            if UPSTREAM_SECRET_NAMESPACE in landed:
                detail = "Here they landed in %s." % UPSTREAM_SECRET_NAMESPACE
            out.append(finding("chart-secrets-namespace", sorted(set(evidence)), where=ns, detail=detail))
    return out


def _is_ngc_image(image):
    return str(image or "").startswith("nvcr.io/")


def check_image_pull_credentials(scene):
    out = []
    for ns in sorted((scene.get("objects") or {}).keys()):
        have = _secret_names(scene, ns)
        accounts = dict((_name(sa), sa) for sa in _objects(scene, ns, "serviceaccounts"))
        evidence = []
        for where, spec in _pod_specs(scene, ns):
            images = [c.get("image") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
            ngc = [i for i in images if _is_ngc_image(i)]
            if not ngc:
                continue
            pull = [s.get("name") for s in spec.get("imagePullSecrets") or [] if s.get("name")]
            sa = accounts.get(spec.get("serviceAccountName") or "default") or {}
            pull += [s.get("name") for s in sa.get("imagePullSecrets") or [] if s.get("name")]
            if not pull:
                evidence.append("%s pulls %s with no image pull Secret" % (where, ", ".join(sorted(set(ngc)))))
            elif have is not None:
                missing = [p for p in pull if p not in have]
                if missing and len(missing) == len(pull):
                    evidence.append(
                        "%s pulls %s with image pull Secret %s, which does not exist in %s"
                        % (where, ", ".join(sorted(set(ngc))), ", ".join(missing), ns)
                    )
        for pod in _objects(scene, ns, "pods"):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (status.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff") and _is_ngc_image(status.get("image")):
                    evidence.append(
                        "Pod %s/%s container %s: %s %s"
                        % (ns, _name(pod), status.get("name"), waiting.get("reason"), waiting.get("message") or "")
                    )
        for event in _objects(scene, ns, "events"):
            message = event.get("message") or ""
            if event.get("reason") in ("Failed", "ErrImagePull") and "nvcr.io" in message and "pull" in message.lower():
                evidence.append("Event %s %s: %s" % (ns, event.get("reason"), message))
        if evidence:
            flywheel = any(_name(d) == FLYWHEEL_API_DEPLOYMENT for d in _objects(scene, ns, "deployments"))
            out.append(finding("image-pull-credentials", evidence, where=ns, fix=None if flywheel else NEMO_PULL_FIX))
    return out


def _rules_allow(rules, verb, resource, group=""):
    for rule in rules or []:
        if group not in (rule.get("apiGroups") or []) and "*" not in (rule.get("apiGroups") or []):
            continue
        if resource not in (rule.get("resources") or []) and "*" not in (rule.get("resources") or []):
            continue
        if rule.get("resourceNames"):
            continue
        if verb in (rule.get("verbs") or []) or "*" in (rule.get("verbs") or []):
            return True
    return False


def _subject_is(subject, namespace, account):
    return (
        subject.get("kind") == "ServiceAccount"
        and subject.get("name") == account
        and (subject.get("namespace") or namespace) == namespace
    ) or (
        subject.get("kind") == "Group"
        and subject.get("name") in ("system:serviceaccounts", "system:serviceaccounts:%s" % namespace)
    )


def rbac_allows(scene, namespace, account, verb, resource, group=""):
    """(allowed, [evidence]) from the namespace's RoleBindings (to Roles and ClusterRoles) and the cluster's
    ClusterRoleBindings, as the RBAC authorizer adds them up."""
    roles = dict((_name(r), r.get("rules") or []) for r in _objects(scene, namespace, "roles"))
    cluster_roles = scene.get("cluster_roles") or {}
    evidence = []
    bindings = [(b, namespace) for b in _objects(scene, namespace, "rolebindings")] + [
        (b, None) for b in scene.get("cluster_role_bindings") or []
    ]
    for binding, bns in bindings:
        if not any(_subject_is(s, namespace, account) for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        rules = roles.get(ref.get("name")) if ref.get("kind") == "Role" else cluster_roles.get(ref.get("name"))
        kind = "RoleBinding %s/%s" % (bns, _name(binding)) if bns else "ClusterRoleBinding %s" % _name(binding)
        if rules is None:
            evidence.append("%s -> %s %s (not readable or missing)" % (kind, ref.get("kind"), ref.get("name")))
            continue
        granted = sorted(set(v for r in rules if resource in (r.get("resources") or []) for v in r.get("verbs") or []))
        if _rules_allow(rules, verb, resource, group):
            return True, ["%s -> %s %s grants %s %s" % (kind, ref.get("kind"), ref.get("name"), verb, resource)]
        evidence.append(
            "%s -> %s %s grants %s: %s (no %s)"
            % (kind, ref.get("kind"), ref.get("name"), resource, ", ".join(granted) or "nothing", verb)
        )
    return False, evidence


def evaluators(scene):
    """(namespace, name, service account) of each NeMo evaluator: those given (the remediate role's unit check
    names its own), and the NemoEvaluator CRs (the operator names the ServiceAccount after the CR)."""
    out = [
        (e["namespace"], e.get("name") or e["service_account"], e["service_account"])
        for e in scene.get("evaluators") or []
    ]
    for cr in (scene.get("crs") or {}).get("NemoEvaluator") or []:
        if not any(o[0] == _ns(cr) and o[2] == _name(cr) for o in out):
            out.append((_ns(cr), _name(cr), _name(cr)))
    return out


def check_evaluator_secret_delete(scene):
    out = []
    for ns, name, account in evaluators(scene):
        if ns not in (scene.get("objects") or {}) or "rolebindings" not in scene["objects"][ns]:
            continue
        allowed, evidence = rbac_allows(scene, ns, account, "delete", "secrets")
        if not allowed:
            out.append(
                finding(
                    "evaluator-secret-delete",
                    ["ServiceAccount %s/%s may not delete secrets" % (ns, account)] + evidence,
                    where="%s/%s" % (ns, name),
                )
            )
    return out


def _service_of(url):
    match = re.match(r"^https?://([^/:]+)", str(url or ""))
    return match.group(1) if match else None


def check_evaluator_entity_store_url(scene):
    out = []
    services = scene.get("service_index") or {}
    for cr in (scene.get("crs") or {}).get("NemoEvaluator") or []:
        endpoint = ((cr.get("spec") or {}).get("entitystore") or {}).get("endpoint")
        host = _service_of(endpoint)
        if not host or re.match(r"^\d+\.\d+\.\d+\.\d+$", host):
            continue
        labels = host.split(".")
        if len(labels) > 2 and labels[2] != "svc":
            continue  # a name outside the cluster: the controller cannot tell
        svc_ns = labels[1] if len(labels) > 1 else _ns(cr)
        if svc_ns not in services:
            continue  # namespace not read
        if labels[0] in services[svc_ns]:
            continue
        near = sorted(s for s in services[svc_ns] if "entity" in s)
        out.append(
            finding(
                "evaluator-entity-store-url",
                [
                    "NemoEvaluator %s/%s spec.entitystore.endpoint=%s" % (_ns(cr), _name(cr), endpoint),
                    "no Service %s in namespace %s (Entity Store Services there: %s)"
                    % (labels[0], svc_ns, ", ".join(near) or "none"),
                ],
                where="%s/%s" % (_ns(cr), _name(cr)),
            )
        )
    return out


def nim_models(scene):
    """Model names of the NIMServices (`<namespace>/<model>`, from the image `nvcr.io/nim/<ns>/<model>`) plus the
    ones given."""
    models = list(scene.get("models") or [])
    for nim in (scene.get("crs") or {}).get("NIMService") or []:
        repo = ((nim.get("spec") or {}).get("image") or {}).get("repository") or ""
        match = re.search(r"/nim/([^/]+/[^/:]+)$", repo)
        if match and match.group(1) not in models:
            models.append(match.group(1))
    return models


def check_entity_store(scene):
    answers = scene.get("entity_store_models")
    if answers is None:
        return []
    missing = [(m, a) for m, a in sorted(answers.items()) if a.get("status") == 404]
    if not missing:
        return []
    return [
        finding(
            "entity-store-404",
            [
                "GET %s/v1/models/%s -> 404: %s" % (scene.get("entity_store_url"), m, a.get("detail") or "")
                for m, a in missing
            ],
            where=scene.get("entity_store_url"),
        )
    ]


def _has_scratch(spec, path="/scratch"):
    vols = [v.get("name") for v in spec.get("volumes") or []]
    mounts = [m.get("mountPath") for c in spec.get("containers") or [] for m in c.get("volumeMounts") or []]
    return "scratch" in vols and path in mounts


def nemo_namespaces(scene):
    names = set()
    for kind in ("NemoCustomizer", "NemoEvaluator", "NemoEntitystore"):
        names.update(_ns(cr) for cr in (scene.get("crs") or {}).get(kind) or [])
    for ns, kinds in (scene.get("objects") or {}).items():
        if any(
            ENTITY_HANDLER in ((_meta(p).get("labels") or {}).get("job-name") or "") for p in kinds.get("pods") or []
        ):
            names.add(ns)
    return sorted(n for n in names if n and n in (scene.get("objects") or {}))  # only the namespaces read


def scratch_policy(scene, namespace):
    """The remediate role's scratch policy for the namespace: ('MutatingAdmissionPolicy'|'Kyverno ClusterPolicy', name)
    or None."""
    name = SCRATCH_POLICY % namespace
    policies = scene.get("scratch_policies") or {}
    if name in (policies.get("map") or []) and name in (policies.get("map_bindings") or []):
        return ("MutatingAdmissionPolicy", name)
    if name in (policies.get("kyverno") or []):
        return ("Kyverno ClusterPolicy", name)
    return None


def check_scratch_volume(scene):
    out = []
    policies = scene.get("scratch_policies") or {}
    for ns in nemo_namespaces(scene):
        if scratch_policy(scene, ns):
            continue
        handlers = [
            p
            for p in _objects(scene, ns, "pods")
            if ENTITY_HANDLER in ((_meta(p).get("labels") or {}).get("job-name") or "")
        ]
        if handlers and all(_has_scratch(p.get("spec") or {}) for p in handlers):
            continue  # the customizer mounts it itself
        evidence = [
            "no MutatingAdmissionPolicy+binding or Kyverno ClusterPolicy %s (mechanisms served: %s)"
            % (SCRATCH_POLICY % ns, ", ".join(policies.get("served") or []) or "none")
        ]
        for pod in handlers:
            if not _has_scratch(pod.get("spec") or {}):
                evidence.append(
                    "Pod %s/%s (job-name=%s) has no /scratch volume"
                    % (ns, _name(pod), (_meta(pod).get("labels") or {}).get("job-name"))
                )
        for event in _objects(scene, ns, "events"):
            if "/scratch" in (event.get("message") or ""):
                evidence.append("Event %s: %s" % (event.get("reason"), event.get("message")))
        out.append(finding("scratch-volume", evidence, where=ns))
    return out


def pvc_mounts(pod):
    """{container: [(claim, mount path)]} of the Pod's PersistentVolumeClaim volumes."""
    spec = pod.get("spec") or {}
    claims = dict(
        (v.get("name"), v["persistentVolumeClaim"].get("claimName"))
        for v in spec.get("volumes") or []
        if v.get("persistentVolumeClaim")
    )
    return dict(
        (
            c.get("name"),
            [
                (claims[m.get("name")], m.get("mountPath"))
                for m in c.get("volumeMounts") or []
                if m.get("name") in claims
            ],
        )
        for c in spec.get("containers") or []
    )


def log_entry(line):
    """(time to the second or "", text) of a log line read with timestamps (RFC 3339, UTC) or without."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\S*Z (.*)$", line)
    return (match.group(1), match.group(2)) if match else ("", line)


def _second(value):
    return str(value or "")[:19]  # the API's times are UTC; to the second, as the log times are compared


def _denials(scene, ns, pod):
    """(container, how it was seen, when, text) of each "Permission denied" of the Pod: the termination message of
    a container's current or last run, and the lines of the container logs gather() read."""
    out = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (status.get("lastState") or {}).get("terminated") or (status.get("state") or {}).get("terminated") or {}
        if "Permission denied" in (term.get("message") or ""):
            out.append((status.get("name"), "terminated", _second(term.get("finishedAt")), term["message"].strip()))
    for (log_ns, log_pod, container), lines in sorted((scene.get("logs") or {}).items()):
        if (log_ns, log_pod) == (ns, _name(pod)):
            for when, text in map(log_entry, lines):
                if "Permission denied" in text:
                    out.append((container, "log", when, text.strip()))
    return out


def _ownership_jobs(jobs):
    """{claim: [(Job name, completion time or None)]} of the remediate unit's ownership Jobs."""
    out = {}
    for job in jobs:
        if not (_name(job) or "").startswith("dfw-model-perms-"):
            continue
        done = [
            c
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("type") == "Complete" and c.get("status") == "True"
        ]
        at = (
            _second((job.get("status") or {}).get("completionTime") or done[0].get("lastTransitionTime"))
            if done
            else None
        )
        spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
        for vol in spec.get("volumes") or []:
            if vol.get("persistentVolumeClaim"):
                out.setdefault(vol["persistentVolumeClaim"].get("claimName"), []).append((_name(job), at))
    return out


def _under(path, text):
    return bool(path) and re.search(re.escape(path.rstrip("/")) + r"(?:[/'\"\s:]|$)", text) is not None


def _run_as(pod, container):
    """The UID the Pod spec sets for the container, or what OpenShift does when it sets none."""
    spec = pod.get("spec") or {}
    own = [c.get("securityContext") or {} for c in spec.get("containers") or [] if c.get("name") == container]
    uid = (own[0] if own else {}).get("runAsUser", (spec.get("securityContext") or {}).get("runAsUser"))
    return "UID %s" % uid if uid is not None else "the UID OpenShift picks from the range (the spec sets none)"


def check_model_pvc_ownership(scene):
    """On OpenShift: a container that was denied a path under a PVC it mounts, and no ownership Job that completed
    after that denial (a denial from before the Job ran is what the Job fixed)."""
    if (scene.get("platform") or {}).get("platform") != "openshift":
        return []
    out = []
    for ns, kinds in sorted((scene.get("objects") or {}).items()):
        uid_range = (((scene.get("namespaces") or {}).get(ns) or {}).get("annotations") or {}).get(UID_RANGE)
        owners = _ownership_jobs(kinds.get("jobs") or [])
        for pod in kinds.get("pods") or []:
            mounts = pvc_mounts(pod)
            last = {}
            for container, how, when, text in _denials(scene, ns, pod):
                hits = [(claim, path) for claim, path in mounts.get(container) or [] if _under(path, text)]
                if not hits:
                    continue  # not under a PVC of this container (/scratch is the scratch-volume check's)
                jobs = owners.get(hits[0][0]) or []
                if not any(at and (not when or when <= at) for _job, at in jobs):
                    last[(container,) + hits[0]] = (how, when, text, jobs)
            for (container, claim, path), (how, when, text, jobs) in sorted(last.items()):
                ran = [
                    "ownership Job %s %s" % (j, "completed at %sZ, before this denial" % at if at else "not completed")
                    for j, at in jobs
                ]
                evidence = [
                    "Pod %s/%s container %s %s%s: %s"
                    % (ns, _name(pod), container, how, " at %sZ" % when if when else "", text),
                    "PVC %s mounted at %s; the container runs as %s; namespace %s has %s %s"
                    % (claim, path, _run_as(pod, container), ns, UID_RANGE, uid_range),
                    "; ".join(ran) or "no ownership Job for PVC %s (dfw-model-perms-%s-*)" % (claim, claim[:37]),
                ]
                out.append(finding("model-pvc-ownership", evidence, where="%s/%s" % (ns, _name(pod))))
    return out


def check_nfs_name_resolution(scene):
    out = []
    for ns, kinds in sorted((scene.get("objects") or {}).items()):
        evidence = [
            "Event %s %s %s: %s"
            % (
                ns,
                ((e.get("involvedObject") or {}).get("kind")),
                (e.get("involvedObject") or {}).get("name"),
                e.get("message"),
            )
            for e in kinds.get("events") or []
            if "Failed to resolve server" in (e.get("message") or "")
        ]
        if evidence:
            out.append(finding("nfs-name-resolution", evidence, where=ns))
    return out


def check_customizer_logs(scene):
    """The customizer's KeyError: 'state' (nemo_jobs' needle), with the error line before it that names the
    customization whose watcher failed."""
    out = []
    for (ns, pod, container), lines in sorted((scene.get("logs") or {}).items()):
        texts = [log_entry(line)[1].strip() for line in lines]
        for i, text in enumerate(texts):
            needle = nemo_jobs.needle_for(text)
            if needle and NEEDLE_IDS.get(needle) == "customizer-keyerror-state":
                evidence = ["Pod %s/%s container %s log: %s" % (ns, pod, container, text)]
                before = [t for t in texts[max(0, i - 12) : i] if "ERROR" in t]
                if before:
                    evidence.append("the error it follows: %s" % before[-1])
                out.append(finding("customizer-keyerror-state", evidence, where="%s/%s" % (ns, pod)))
                break
    return out


def check_flywheel_jobs(scene):
    """The newest job of each workload/client: its failed parts, with the NeMo services' own diagnosis
    (enriched by the module with nemo_jobs.enrich_summary), each filed under the catalogue entry its text names."""
    out = []
    for summary in scene.get("flywheel_jobs") or []:
        for failure in summary.get("failures") or []:
            diagnosis = failure.get("diagnosis") or {}
            texts = [failure.get("error"), diagnosis.get("cause"), diagnosis.get("message")] + list(
                diagnosis.get("log_tail") or []
            )
            needle = nemo_jobs.needle_for(*texts)
            check_id = NEEDLE_IDS.get(needle, "flywheel-job-failed-parts")
            if check_id in CUSTOMIZER_IDS and not str(failure.get("part") or "").endswith("customization"):
                check_id = "flywheel-job-failed-parts"  # an evaluation's error text, not the customizer's
            evidence = [
                "flywheel job %s (%s/%s, status %s): %s failed: %s"
                % (
                    summary.get("id"),
                    summary.get("workload_id"),
                    summary.get("client_id"),
                    summary.get("status"),
                    failure.get("part"),
                    failure.get("error"),
                )
            ]
            if diagnosis.get("hint"):
                evidence.append(
                    "NeMo %s %s hint: %s" % (diagnosis.get("kind"), diagnosis.get("job_id"), diagnosis["hint"])
                )
            out.append(finding(check_id, evidence, where="flywheel job %s" % summary.get("id")))
    return out


CHECK_FUNCTIONS = dict(
    discovery=check_discovery,
    **{
        "chart-secrets-namespace": check_chart_secrets_namespace,
        "image-pull-credentials": check_image_pull_credentials,
        "evaluator-secret-delete": check_evaluator_secret_delete,
        "evaluator-entity-store-url": check_evaluator_entity_store_url,
        "entity-store-404": check_entity_store,
        "scratch-volume": check_scratch_volume,
        "model-pvc-ownership": check_model_pvc_ownership,
        "nfs-name-resolution": check_nfs_name_resolution,
        "customizer-logs": check_customizer_logs,
        "flywheel-jobs": check_flywheel_jobs,
    },
)


def external_finding(item):
    """A finding from a check the playbook ran (a unit's or the preflight's own check task that failed):
    {id, evidence}."""
    check_id = item.get("id") if item.get("id") in CATALOGUE else "preflight-check-failed"
    return finding(check_id, item.get("evidence") or "", where=item.get("where"))


def diagnose(scene, checks=None, external=(), secrets=()):
    """Run the checks over the scene. Returns the report dict (redacted)."""
    wanted = list(checks or CHECKS)
    findings = []
    for name in wanted:
        findings.extend(CHECK_FUNCTIONS[name](scene))
    findings.extend(external_finding(e) for e in external or ())
    findings.sort(key=lambda f: (SEVERITIES.index(f["severity"]), f["id"], f.get("where") or ""))
    report = dict(
        healthy=not findings,
        discovered=discover(scene),
        checks=wanted,
        findings=findings,
        not_checked=list(scene.get("not_checked") or []),
        counts=dict((s, sum(1 for f in findings if f["severity"] == s)) for s in SEVERITIES),
    )
    return redact(report, secrets)


# ------------------------------------------------------------------------------ reports
def summary_lines(report):
    d = report["discovered"]
    lines = [
        "Data Flywheel doctor: %s (%s)"
        % (
            "healthy, no finding" if report["healthy"] else "%d finding(s)" % len(report["findings"]),
            ", ".join("%d %s" % (n, s) for s, n in report["counts"].items() if n) or "0",
        ),
        "Found: platform %s; flywheel in %s; helm releases %s; operator resources %s"
        % (
            d.get("platform") or "unknown",
            ", ".join(f["namespace"] for f in d["flywheel"]) or "no namespace",
            ", ".join(
                "%s/%s (%s)" % (r["namespace"], r["name"], ", ".join(r["charts"]) or "chart unknown")
                for r in d["helm_releases"]
            )
            or "none",
            ", ".join("%s %d" % (k, len(v)) for k, v in sorted(d["operator_resources"].items()) if v) or "none",
        ),
    ]
    for i, f in enumerate(report["findings"], 1):
        lines.append(
            "%d. [%s] %s%s" % (i, f["severity"].upper(), f["id"], " (%s)" % f["where"] if f.get("where") else "")
        )
        lines.append("   symptom:  %s" % f["symptom"])
        for e in f["evidence"]:
            lines.append("   evidence: %s" % e)
        lines.append("   cause:    %s" % f["cause"])
        lines.append("   fix:      %s" % fix_text(f["fix"]))
    for n in report["not_checked"]:
        lines.append("not checked: %s" % n)
    return lines


def _md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report, title="Data Flywheel diagnosis"):
    d = report["discovered"]
    out = ["# %s" % title, ""]
    out.append("**%s**" % ("Healthy: no finding." if report["healthy"] else "%d finding(s)." % len(report["findings"])))
    out += ["", "## Deployment found", ""]
    out.append("- platform: %s" % (d.get("platform") or "unknown"))
    out.append("- namespaces read: %s" % (", ".join(d["namespaces"]) or "none"))
    for f in d["flywheel"]:
        out.append("- flywheel API in `%s` (image `%s`)" % (f["namespace"], f["image"]))
    for r in d["helm_releases"]:
        out.append(
            "- helm release `%s/%s` (%s), objects in %s"
            % (r["namespace"], r["name"], ", ".join(r["charts"]) or "chart unknown", ", ".join(r["object_namespaces"]))
        )
    for kind, items in sorted(d["operator_resources"].items()):
        for i in items:
            out.append("- %s `%s/%s` version %s state %s" % (kind, i["namespace"], i["name"], i["version"], i["state"]))
    out += ["", "## Findings", ""]
    if not report["findings"]:
        out.append("None.")
    for i, f in enumerate(report["findings"], 1):
        out += ["### %d. %s: %s%s" % (i, f["severity"], f["id"], " (%s)" % f["where"] if f.get("where") else ""), ""]
        out.append("| | |")
        out.append("|---|---|")
        out.append("| symptom | %s |" % _md_escape(f["symptom"]))
        out.append("| evidence | %s |" % "<br>".join(_md_escape(e) for e in f["evidence"]))
        out.append("| cause | %s |" % _md_escape(f["cause"]))
        out.append("| fix | %s |" % _md_escape(fix_text(f["fix"])))
        out.append("")
    out += ["", "## Not checked", ""]
    out += ["- %s" % n for n in report["not_checked"]] or ["Every check ran."]
    out += ["", "Checks run: %s" % ", ".join(report["checks"]), ""]
    return "\n".join(out)


def _h(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def html(report, title="Data Flywheel diagnosis"):
    rows = []
    for i, f in enumerate(report["findings"], 1):
        rows.append(
            '<tr class="%s"><td>%d</td><td>%s</td><td><code>%s</code><br>%s</td><td>%s</td>'
            "<td><ul>%s</ul></td><td>%s</td><td>%s</td></tr>"
            % (
                _h(f["severity"]),
                i,
                _h(f["severity"]),
                _h(f["id"]),
                _h(f.get("where") or ""),
                _h(f["symptom"]),
                "".join("<li>%s</li>" % _h(e) for e in f["evidence"]),
                _h(f["cause"]),
                _h(fix_text(f["fix"])),
            )
        )
    d = report["discovered"]
    found = "".join(
        "<li>helm release <code>%s/%s</code> (%s)</li>"
        % (_h(r["namespace"]), _h(r["name"]), _h(", ".join(r["charts"])))
        for r in d["helm_releases"]
    ) + "".join(
        "<li>flywheel API in <code>%s</code> (<code>%s</code>)</li>" % (_h(f["namespace"]), _h(f["image"]))
        for f in d["flywheel"]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>%s</title>\n<style>\n'
        "body { font-family: sans-serif; margin: 2em; color: #222; }\n"
        "table { border-collapse: collapse; margin: 1em 0; }\n"
        "th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }\n"
        "th { background: #f4f4f4; }\n.critical, .error { color: #b00020; }\n.warning { color: #8a5300; }\n"
        "</style>\n</head>\n<body>\n<h1>%s</h1>\n<p><strong>%s</strong> Platform %s.</p>\n"
        "<h2>Deployment found</h2>\n<ul>%s</ul>\n<h2>Findings</h2>\n<table>\n<tr><th>#</th><th>severity</th>"
        "<th>finding</th><th>symptom</th><th>evidence</th><th>cause</th><th>fix</th></tr>\n%s\n</table>\n"
        "<h2>Not checked</h2>\n<ul>%s</ul>\n</body>\n</html>\n"
        % (
            _h(title),
            _h(title),
            "Healthy: no finding." if report["healthy"] else "%d finding(s)." % len(report["findings"]),
            _h(d.get("platform") or "unknown"),
            found or "<li>nothing</li>",
            "\n".join(rows),
            "".join("<li>%s</li>" % _h(n) for n in report["not_checked"]) or "<li>every check ran</li>",
        )
    )


def as_json(report):
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


# ------------------------------------------------------------------------------ reading the cluster
NAMESPACED_READS = (
    # (scene key, kubernetes client API class, list method)
    ("pods", "CoreV1Api", "list_namespaced_pod"),
    ("deployments", "AppsV1Api", "list_namespaced_deployment"),
    ("jobs", "BatchV1Api", "list_namespaced_job"),
    ("services", "CoreV1Api", "list_namespaced_service"),
    ("serviceaccounts", "CoreV1Api", "list_namespaced_service_account"),
    ("roles", "RbacAuthorizationV1Api", "list_namespaced_role"),
    ("rolebindings", "RbacAuthorizationV1Api", "list_namespaced_role_binding"),
    ("events", "CoreV1Api", "list_namespaced_event"),
)
CR_KINDS = {
    "NemoEvaluator": "nemoevaluators",
    "NemoCustomizer": "nemocustomizers",
    "NemoEntitystore": "nemoentitystores",
    "NIMService": "nimservices",
}
FLYWHEEL_MARKERS = ("df-api-deployment", "df-celery-worker-deployment")


def _k8s():
    from kubernetes import client as k8s  # noqa: PLC0415 - kubernetes.core's module class checks the library

    return k8s


def _plain(api, obj):
    return api.sanitize_for_serialization(obj)


def _served(api, group):
    k8s = _k8s()
    for g in k8s.ApisApi(api).get_api_versions().groups:
        if g.name == group:
            return g.preferred_version.version
    return None


def read_secret_names(api, namespace):
    """The Secrets of the namespace as PartialObjectMetadata (the values never leave the API server), reduced to
    what _secret_meta keeps."""
    data = api.call_api(
        "/api/v1/namespaces/%s/secrets" % namespace,
        "GET",
        header_params={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"},
        response_type="object",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )
    return [_secret_meta(i.get("metadata") or {}) for i in data.get("items") or []]


def _secret_meta(meta):
    """What the doctor keeps of a Secret: name, namespace, labels and helm's ownership annotations. Nothing else:
    kubectl's last-applied-configuration annotation would carry the values."""
    return dict(
        name=meta.get("name"),
        namespace=meta.get("namespace"),
        labels=dict(meta.get("labels") or {}),
        annotations=dict((k, v) for k, v in (meta.get("annotations") or {}).items() if k.startswith("meta.helm.sh/")),
    )


def find_namespaces(api, crs, wanted=None):
    """The namespaces of the deployment: `wanted`, else those with a flywheel Deployment, a NeMo/NIM custom
    resource or the upstream chart's Secret namespace."""
    k8s = _k8s()
    if wanted:
        return list(wanted)
    names = set()
    for dep in (
        k8s.AppsV1Api(api).list_deployment_for_all_namespaces(field_selector="metadata.namespace!=kube-system").items
    ):
        if dep.metadata.name in FLYWHEEL_MARKERS:
            names.add(dep.metadata.namespace)
    for items in crs.values():
        names.update(_ns(i) for i in items)
    existing = set(n.metadata.name for n in k8s.CoreV1Api(api).list_namespace().items)
    if UPSTREAM_SECRET_NAMESPACE in existing:
        names.add(UPSTREAM_SECRET_NAMESPACE)
    return sorted(n for n in names if n in existing)


def log_containers(pod, platform=None):
    """The containers whose log the doctor reads: the customizer API's (KeyError: 'state'; not its entity-handler
    Jobs), and on OpenShift every container that mounts a PVC (Permission denied under it)."""
    name = _name(pod) or ""
    if "customizer" in name and ENTITY_HANDLER not in name:
        return [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    if platform == "openshift":
        return [c for c, mounts in sorted(pvc_mounts(pod).items()) if mounts]
    return []


def gather(api, namespaces=None, platform_facts=None, log_lines=200):  # noqa: PLR0912, PLR0915 - one read per kind
    """The scene the checks read: objects of the deployment's namespaces, operator CRs, RBAC, admission
    policies; what could not be read goes to `not_checked`. Namespaced objects being deleted are left out: they
    are from before the restart or fix that replaces them (a Pod terminates for up to its grace period, and its
    log and status still show what that fix removed)."""
    k8s = _k8s()
    from kubernetes.client.rest import ApiException  # noqa: PLC0415

    scene = dict(platform=platform_facts or {}, objects={}, secrets={}, crs={}, not_checked=[], logs={})
    version = _served(api, NVIDIA_GROUP)
    custom = k8s.CustomObjectsApi(api)
    for kind, plural in CR_KINDS.items():
        scene["crs"][kind] = []
        if not version:
            continue
        try:
            scene["crs"][kind] = custom.list_cluster_custom_object(NVIDIA_GROUP, version, plural).get("items") or []
        except ApiException as exc:
            if exc.status != 404:
                scene["not_checked"].append(
                    "%s custom resources: %s %s (grant list %s.%s)"
                    % (kind, exc.status, exc.reason, plural, NVIDIA_GROUP)
                )
    wanted = find_namespaces(api, scene["crs"], namespaces)
    core = k8s.CoreV1Api(api)
    scene["namespaces"] = {}
    for ns in core.list_namespace().items:
        if ns.metadata.name in wanted:
            scene["namespaces"][ns.metadata.name] = dict(
                annotations=ns.metadata.annotations or {}, labels=ns.metadata.labels or {}
            )
    for ns in wanted:
        kinds = scene["objects"].setdefault(ns, {})
        for key, cls, method in NAMESPACED_READS:
            try:
                items = getattr(getattr(k8s, cls)(api), method)(ns).items
                kinds[key] = [_plain(api, i) for i in items if not i.metadata.deletion_timestamp]
            except ApiException as exc:
                scene["not_checked"].append(
                    "%s in %s: the API answered %s %s (rbac/inspect.yml grants it)" % (key, ns, exc.status, exc.reason)
                )
        try:
            metas = read_secret_names(api, ns)
            scene["secrets"][ns] = sorted(m["name"] for m in metas)
            kinds["secrets"] = [dict(metadata=m) for m in metas]
        except ApiException as exc:
            scene["secrets"][ns] = None
            scene["not_checked"].append(
                "Secret names in %s (chart-secrets-namespace, image-pull-credentials): the API answered %s %s; "
                "bind rbac/inspect.yml's dataflywheel-blueprint:inspect-secret-names (metadata only is read)"
                % (ns, exc.status, exc.reason)
            )
        for pod in kinds.get("pods") or []:
            for container in log_containers(pod, (platform_facts or {}).get("platform")):
                try:
                    text = core.read_namespaced_pod_log(
                        _name(pod), ns, container=container, tail_lines=log_lines, timestamps=True
                    )
                    scene["logs"][(ns, _name(pod), container)] = str(text or "").splitlines()
                except ApiException as exc:
                    scene["not_checked"].append(
                        "log of Pod %s/%s container %s: %s %s" % (ns, _name(pod), container, exc.status, exc.reason)
                    )
    scene["service_index"] = dict(
        (ns, [_name(s) for s in kinds.get("services") or []]) for ns, kinds in scene["objects"].items()
    )
    rbac = k8s.RbacAuthorizationV1Api(api)
    scene["cluster_roles"] = {}
    refs = set(
        (b.get("roleRef") or {}).get("name")
        for kinds in scene["objects"].values()
        for b in kinds.get("rolebindings") or []
        if (b.get("roleRef") or {}).get("kind") == "ClusterRole"
    )
    try:
        scene["cluster_role_bindings"] = [
            _plain(api, b)
            for b in rbac.list_cluster_role_binding().items
            if any(s.kind == "ServiceAccount" and s.namespace in wanted for s in b.subjects or [])
        ]
        refs.update(b["roleRef"]["name"] for b in scene["cluster_role_bindings"])
        for name in sorted(r for r in refs if r):
            try:
                scene["cluster_roles"][name] = _plain(api, rbac.read_cluster_role(name)).get("rules") or []
            except ApiException as exc:
                if exc.status != 404:
                    raise
    except ApiException as exc:
        scene["cluster_role_bindings"] = []
        scene["not_checked"].append(
            "ClusterRoles and ClusterRoleBindings: %s %s (rbac/inspect.yml grants it)" % (exc.status, exc.reason)
        )
    policies = dict(map=[], map_bindings=[], kyverno=[], served=[])
    map_version = (platform_facts or {}).get("mutating_admission_policy")
    if map_version:
        group, ver = map_version.split("/")
        policies["served"].append("MutatingAdmissionPolicy %s" % ver)
        for key, plural in (("map", "mutatingadmissionpolicies"), ("map_bindings", "mutatingadmissionpolicybindings")):
            try:
                policies[key] = [
                    _name(i) for i in custom.list_cluster_custom_object(group, ver, plural).get("items") or []
                ]
            except ApiException as exc:
                scene["not_checked"].append("%s: %s %s (rbac/inspect.yml grants it)" % (plural, exc.status, exc.reason))
    kyverno = _served(api, "kyverno.io")
    if kyverno:
        policies["served"].append("Kyverno")
        try:
            policies["kyverno"] = [
                _name(i)
                for i in custom.list_cluster_custom_object("kyverno.io", kyverno, "clusterpolicies").get("items") or []
            ]
        except ApiException as exc:
            scene["not_checked"].append("Kyverno ClusterPolicies: %s %s" % (exc.status, exc.reason))
    scene["scratch_policies"] = policies
    return scene


def read_entity_store(scene, rest, models):
    """GET /v1/models/<ns>/<name> of each model: {model: {status, detail}}."""
    from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError  # noqa: PLC0415

    answers = {}
    for model in models:
        try:
            status, _data = rest.request("GET", "/v1/models/%s" % model)
            answers[model] = dict(status=status)
        except RestError as err:
            answers[model] = dict(status=err.status, detail=err.detail or str(err))
    scene["entity_store_models"] = answers
    scene["entity_store_url"] = rest.base_url
    return answers


def read_flywheel_jobs(scene, flywheel, nemo=None):
    """The newest job of each workload/client, summarized by flywheel_summary and, with a NeMo client, enriched
    with the NeMo services' own diagnosis (nemo_jobs.enrich_summary)."""
    from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_summary import summarize  # noqa: PLC0415

    newest = {}
    for job in flywheel.list_jobs():
        key = (job.get("workload_id"), job.get("client_id"))
        if key not in newest or str(job.get("started_at") or "") > str(newest[key].get("started_at") or ""):
            newest[key] = job
    summaries = []
    for key in sorted(newest, key=lambda k: (str(k[0]), str(k[1]))):
        detail = flywheel.get_job(newest[key]["id"]) or newest[key]
        summary = summarize(detail)
        if nemo is not None and summary["failures"]:
            nemo_jobs.enrich_summary(summary, detail, nemo)
        summaries.append(summary)
    scene["flywheel_jobs"] = summaries
    return summaries


# ------------------------------------------------------------------------------ the module
def _given(params, service):
    return bool(params.get("%s_url" % service) or params.get("%s_service" % service))


def write_reports(report, directory):
    import os  # noqa: PLC0415

    os.makedirs(directory, exist_ok=True)
    files = []
    for name, text in (
        ("diagnosis.md", markdown(report)),
        ("diagnosis.json", as_json(report)),
        ("diagnosis.html", html(report)),
    ):
        path = os.path.join(directory, name)
        with open(path, "w") as handle:
            handle.write(text)
        os.chmod(path, 0o600)
        files.append(path)
    return files


def run_module(module):  # noqa: PLR0912 - one branch per optional service
    """flywheel_diagnose: read, check, report. Never writes to the cluster or the services."""
    from ansible_collections.dataflywheel.blueprint.plugins.module_utils import platform  # noqa: PLC0415
    from ansible_collections.dataflywheel.blueprint.plugins.module_utils.flywheel_client import FlywheelClient  # noqa: PLC0415
    from ansible_collections.dataflywheel.blueprint.plugins.module_utils.k8s_connection import call_api  # noqa: PLC0415
    from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest import RestError  # noqa: PLC0415
    from ansible_collections.dataflywheel.blueprint.plugins.module_utils.rest_options import rest_client  # noqa: PLC0415

    p = module.params
    checks = p["checks"] or list(CHECKS)

    def read(api):
        facts = None
        if set(checks) & set(PLATFORM_CHECKS):
            facts = platform.classify(platform.gather(api), force=p["platform"])
        return gather(api, p["namespaces"], facts)

    scene = call_api(
        module,
        read,
        "while reading the deployment; bind the account to rbac/inspect.yml (read-only)",
        expected=(platform.PlatformError,),
    )
    scene["models"] = list(p["models"])
    scene["evaluators"] = list(p["evaluators"])
    scene["not_checked"].extend(p["not_checked"])
    if "entity-store-404" in checks:
        models = nim_models(scene)
        if not _given(p, "entity_store"):
            scene["not_checked"].append(
                "Entity Store registration of %s: pass entity_store_url (the role: diagnose_entity_store_url) or "
                "entity_store_service" % (", ".join(models) or "the NIMServices' models")
            )
        elif models:
            try:
                read_entity_store(
                    scene,
                    rest_client(module, "entity_store", tls_from="flywheel", retries=min(p["retries"], 2)),
                    models,
                )
            except RestError as err:
                scene["not_checked"].append("Entity Store registration: %s" % err)
    if "flywheel-jobs" in checks:
        if not _given(p, "flywheel"):
            scene["not_checked"].append(
                "flywheel jobs (failed parts, training pending, KeyError 'state'): pass flywheel_url "
                "(the role: diagnose_flywheel_url) or flywheel_service, and nemo_url for the NeMo services' "
                "own diagnosis"
            )
        else:
            nemo = None
            if _given(p, "nemo"):
                nemo = nemo_jobs.NemoJobsClient(
                    rest_client(module, "nemo", tls_from="flywheel", retries=min(p["retries"], 2))
                )
            else:
                scene["not_checked"].append(
                    "the NeMo services' diagnosis of failed job parts: pass nemo_url (diagnose_nemo_url)"
                )
            try:
                read_flywheel_jobs(scene, FlywheelClient(rest_client(module, "flywheel")), nemo)
            except RestError as err:
                scene["not_checked"].append("flywheel jobs: %s" % err)
    secrets = [s for s in p["redact"] if s]
    for key in ("flywheel_token", "nemo_token", "entity_store_token"):
        if p.get(key):
            secrets.append(p[key])
    report = diagnose(scene, checks, p["external_findings"], secrets)
    files = write_reports(report, p["report_dir"]) if p["report_dir"] else []
    lines = summary_lines(report)
    threshold = p["fail_on_findings"]
    if threshold != "never":
        worst = [f for f in report["findings"] if SEVERITIES.index(f["severity"]) <= SEVERITIES.index(threshold)]
        if worst:
            module.fail_json(msg="\n".join(lines), report=report, summary=lines, files=files)
    module.exit_json(changed=False, report=report, summary=lines, files=files)
