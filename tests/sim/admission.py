"""EMULATED platform admission for the local test cluster: a webhook server of the tests' own that the
real kube-apiserver calls (tests/sim/cluster.py registers it; emulators.py runs it). Not the platforms'
code: each endpoint reproduces the admission decision the collection depends on, at least as strictly
as the platform makes it.

* /scc (openshift, validating): OpenShift's SecurityContextConstraints admission. A Pod is admitted
  only if some SCC both accepts its security context and may be used by the Pod's ServiceAccount:
  listed in the SCC's users/groups, or allowed the `use` verb on it by RBAC in the Pod's namespace
  (a SubjectAccessReview, as OpenShift asks). `openshift.io/required-scc` pins the SCC. Stricter than
  OpenShift in one way: the requesting user's own SCC rights do not count (every controller here acts
  as the cluster admin, so they could not be told apart from the Pod's ServiceAccount).
* /route-host (openshift, mutating): a Route created without spec.host gets
  `<name>-<namespace>.<apps domain>` (the domain of config.openshift.io Ingress `cluster`).
* /istio-inject (pcai, mutating): Istio's sidecar injector for namespaces labelled
  istio-injection=enabled: Pods get an `istio-proxy` container and `sidecar.istio.io/status`, unless
  the Pod opts out with the label or annotation sidecar.istio.io/inject: "false".
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client
from kubernetes.client.rest import ApiException

LOG = logging.getLogger("admission")
TAG = "EMULATED by the local test cluster (tests/sim/admission.py)"
SCC_GROUP, SCC_VERSION, SCC_PLURAL = "security.openshift.io", "v1", "securitycontextconstraints"
UID_RANGE = "openshift.io/sa.scc.uid-range"
GROUP_RANGE = "openshift.io/sa.scc.supplemental-groups"
MCS = "openshift.io/sa.scc.mcs"
REQUIRED_SCC = "openshift.io/required-scc"


# ---------------------------------------------------------------- certificates
def make_certificates(directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1, written once per cluster (ca.crt, tls.crt, tls.key)."""

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.timezone.utc)
    valid = {"not_valid_before": now - dt.timedelta(minutes=5), "not_valid_after": now + dt.timedelta(days=3650)}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(subject_name=name("dfw-sim emulated admission CA"), **valid)
        .issuer_name(name("dfw-sim emulated admission CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder(subject_name=name("127.0.0.1"), **valid)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "tls.crt").write_bytes(cert.public_bytes(pem))
    (directory / "tls.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


# ---------------------------------------------------------------- SCC evaluation (pure)
def _containers(spec: dict) -> list[dict]:
    return (spec.get("initContainers") or []) + (spec.get("containers") or []) + (spec.get("ephemeralContainers") or [])


def _range(annotation: str | None) -> tuple[int, int] | None:
    """'1000680000/10000' -> (1000680000, 1000689999)."""
    if not annotation or "/" not in annotation:
        return None
    start, size = annotation.split("/", 1)
    return int(start), int(start) + int(size) - 1


def _volume_type(volume: dict) -> str:
    return next((k for k in volume if k != "name"), "")


def _seccomp_names(profile: dict | None) -> str | None:
    if not profile:
        return None
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return "runtime/default"
    if kind == "Unconfined":
        return "unconfined"
    if kind == "Localhost":
        return f"localhost/{profile.get('localhostProfile', '')}"
    return str(kind)


def scc_problems(scc: dict, pod: dict, ns_annotations: dict) -> list[str]:
    """Why this SCC does not admit the Pod's security context (empty: it does). Field paths and wording
    follow OpenShift's messages."""
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    out: list[str] = []
    for field, allowed in (
        ("hostNetwork", "allowHostNetwork"),
        ("hostPID", "allowHostPID"),
        ("hostIPC", "allowHostIPC"),
    ):
        if spec.get(field) and not scc.get(allowed):
            out.append(f"spec.securityContext.{field}: Invalid value: true: {field} is not allowed to be used")
    allowed_volumes = set(scc.get("volumes") or [])
    for i, volume in enumerate(spec.get("volumes") or []):
        kind = _volume_type(volume)
        if "*" in allowed_volumes:
            continue
        if kind not in allowed_volumes or (kind == "hostPath" and not scc.get("allowHostDirVolumePlugin")):
            out.append(f"spec.volumes[{i}]: Invalid value: {kind!r}: {kind} volumes are not allowed to be used")

    uid_strategy = (scc.get("runAsUser") or {}).get("type", "RunAsAny")
    uid_range: tuple[int, int] | None = None
    if uid_strategy == "MustRunAsRange":
        rule = scc.get("runAsUser") or {}
        if rule.get("uidRangeMin") is not None:
            uid_range = (int(rule["uidRangeMin"]), int(rule.get("uidRangeMax", rule["uidRangeMin"])))
        else:
            uid_range = _range(ns_annotations.get(UID_RANGE))
            if uid_range is None:
                return [f"unable to find annotation {UID_RANGE} on the Pod's namespace"]
    group_strategies = {}
    for field in ("fsGroup", "supplementalGroups"):
        strategy = (scc.get(field) or {}).get("type", "RunAsAny")
        if strategy == "MustRunAs":
            ranges = (scc.get(field) or {}).get("ranges") or []
            if ranges:
                group_strategies[field] = [(int(r["min"]), int(r["max"])) for r in ranges]
            else:
                found = _range(ns_annotations.get(GROUP_RANGE) or ns_annotations.get(UID_RANGE))
                if found is None:
                    return [f"unable to find annotation {GROUP_RANGE} on the Pod's namespace"]
                group_strategies[field] = [found]
    for field, ranges in group_strategies.items():
        values = [psc["fsGroup"]] if field == "fsGroup" and psc.get("fsGroup") is not None else []
        if field == "supplementalGroups":
            values = list(psc.get("supplementalGroups") or [])
        for value in values:
            if not any(lo <= int(value) <= hi for lo, hi in ranges):
                shown = ", ".join(f"[{lo}, {hi}]" for lo, hi in ranges)
                out.append(f"spec.securityContext.{field}: Invalid value: {value}: must be in the ranges: {shown}")

    selinux = scc.get("seLinuxContext") or {}
    expected_selinux = dict(selinux.get("seLinuxOptions") or {})
    if selinux.get("type") == "MustRunAs":
        expected_selinux.setdefault("level", ns_annotations.get(MCS, ""))
    allowed_caps = set(scc.get("allowedCapabilities") or []) | set(scc.get("defaultAddCapabilities") or [])
    drop_caps = set(scc.get("requiredDropCapabilities") or [])
    seccomp = set(scc.get("seccompProfiles") or [])

    def check_selinux(where: str, options: dict | None) -> None:
        if not options or selinux.get("type") != "MustRunAs":
            return
        for key in ("user", "role", "type", "level"):
            if options.get(key) and options.get(key) != expected_selinux.get(key, ""):
                out.append(
                    f"{where}.seLinuxOptions.{key}: Invalid value: {options[key]!r}: "
                    f"must be {expected_selinux.get(key, '')!r}"
                )

    def check_seccomp(where: str, profile: dict | None) -> None:
        name = _seccomp_names(profile)
        if name is None or "*" in seccomp:
            return
        if not seccomp:
            out.append(f"{where}.seccompProfile: Forbidden: seccomp may not be set")
        elif name not in seccomp and not (name == "runtime/default" and "docker/default" in seccomp):
            out.append(f"{where}.seccompProfile.type: Forbidden: {name} is not an allowed seccomp profile")

    def check_uid(where: str, uid, non_root) -> None:
        if uid_strategy == "MustRunAsRange" and uid is not None and not (uid_range[0] <= int(uid) <= uid_range[1]):
            out.append(
                f"{where}.runAsUser: Invalid value: {uid}: must be in the ranges: [{uid_range[0]}, {uid_range[1]}]"
            )
        elif uid_strategy == "MustRunAs":
            want = (scc.get("runAsUser") or {}).get("uid")
            if uid is not None and int(uid) != int(want):
                out.append(f"{where}.runAsUser: Invalid value: {uid}: must be {want}")
        elif uid_strategy == "MustRunAsNonRoot":
            if uid is not None and int(uid) == 0:
                out.append(f"{where}.runAsUser: Invalid value: 0: running with the root UID is forbidden")
            if non_root is False:
                out.append(f"{where}.runAsNonRoot: Invalid value: false: must be true")

    check_uid("spec.securityContext", psc.get("runAsUser"), psc.get("runAsNonRoot"))
    check_selinux("spec.securityContext", psc.get("seLinuxOptions"))
    check_seccomp("spec.securityContext", psc.get("seccompProfile"))
    for i, container in enumerate(_containers(spec)):
        where = f"spec.containers[{container.get('name', i)}].securityContext"
        csc = container.get("securityContext") or {}
        if csc.get("privileged") and not scc.get("allowPrivilegedContainer"):
            out.append(f"{where}.privileged: Invalid value: true: Privileged containers are not allowed")
        escalation = csc.get("allowPrivilegeEscalation")
        if (escalation or csc.get("privileged")) and scc.get("allowPrivilegeEscalation") is False:
            out.append(
                f"{where}.allowPrivilegeEscalation: Invalid value: true: "
                "Allowing privilege escalation for containers is not allowed"
            )
        for cap in (csc.get("capabilities") or {}).get("add") or []:
            if cap in drop_caps:
                out.append(f"{where}.capabilities.add: Invalid value: {cap!r}: capability may not be added")
            elif "*" not in allowed_caps and cap not in allowed_caps:
                out.append(f"{where}.capabilities.add: Invalid value: {cap!r}: capability may not be added")
        if scc.get("readOnlyRootFilesystem") and csc.get("readOnlyRootFilesystem") is False:
            out.append(
                f"{where}.readOnlyRootFilesystem: Invalid value: false: ReadOnlyRootFilesystem must be set to true"
            )
        for port in container.get("ports") or []:
            if port.get("hostPort") and not scc.get("allowHostPorts"):
                out.append(
                    f"{where}.hostPort: Invalid value: {port['hostPort']}: Host ports are not allowed to be used"
                )
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        if "runAsUser" in csc or "runAsNonRoot" in csc:
            check_uid(where, uid, csc.get("runAsNonRoot", psc.get("runAsNonRoot")))
        check_selinux(where, csc.get("seLinuxOptions"))
        check_seccomp(where, csc.get("seccompProfile"))
    return out


def scc_order(sccs: list[dict]) -> list[dict]:
    """Highest priority first, then the most restrictive (fewest allowances), then by name: OpenShift's
    order, which decides the SCC a Pod is admitted under."""

    def allowances(scc):
        return (
            sum(
                bool(scc.get(k))
                for k in (
                    "allowPrivilegedContainer",
                    "allowHostDirVolumePlugin",
                    "allowHostNetwork",
                    "allowHostPID",
                    "allowHostIPC",
                    "allowHostPorts",
                )
            )
            + ((scc.get("runAsUser") or {}).get("type") == "RunAsAny")
            + ("*" in (scc.get("volumes") or []))
        )

    return sorted(sccs, key=lambda s: (-(s.get("priority") or 0), allowances(s), s["metadata"]["name"]))


def service_account_user(namespace: str, sa: str) -> tuple[str, list[str]]:
    return f"system:serviceaccount:{namespace}:{sa}", [
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    ]


# ---------------------------------------------------------------- the server
class Admission:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.authz = client.AuthorizationV1Api(api)

    # each handler gets the AdmissionReview request and returns (allowed, message, json_patch)
    def scc(self, request: dict):
        pod = request["object"]
        namespace = request["namespace"]
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        ns_annotations = self.core.read_namespace(namespace).metadata.annotations or {}
        sccs = scc_order(self.custom.list_cluster_custom_object(SCC_GROUP, SCC_VERSION, SCC_PLURAL)["items"])
        required = annotations.get(REQUIRED_SCC)
        if required:
            sccs = [s for s in sccs if s["metadata"]["name"] == required]
            if not sccs:
                return False, f"required scc/{required} not found", None
        user, groups = service_account_user(namespace, sa)
        errors = []
        for scc in sccs:
            name = scc["metadata"]["name"]
            problems = scc_problems(scc, pod, ns_annotations)
            if problems:
                errors += [f'provider "{name}": {p}' for p in problems]
                continue
            if self.may_use(scc, namespace, user, groups):
                LOG.info("scc: %s/%s (sa %s) admitted under %s", namespace, pod_name(pod), sa, name)
                return True, "", None
            errors.append(f'provider "{name}": Forbidden: not usable by user or serviceaccount')
        message = (
            f'pods "{pod_name(pod)}" is forbidden: unable to validate against any security context constraint: '
            f"[{', '.join(errors)}] (ServiceAccount {sa}; OpenShift SCC admission {TAG})"
        )
        LOG.info("scc: %s/%s rejected: %s", namespace, pod_name(pod), message)
        return False, message, None

    def may_use(self, scc: dict, namespace: str, user: str, groups: list[str]) -> bool:
        if user in (scc.get("users") or []) or set(groups) & set(scc.get("groups") or []):
            return True
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=groups,
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace,
                    verb="use",
                    group=SCC_GROUP,
                    resource=SCC_PLURAL,
                    name=scc["metadata"]["name"],
                ),
            )
        )
        return bool(self.authz.create_subject_access_review(review).status.allowed)

    def route_host(self, request: dict):
        route = request["object"]
        if (route.get("spec") or {}).get("host"):
            return True, "", None
        ingress = self.custom.get_cluster_custom_object("config.openshift.io", "v1", "ingresses", "cluster")
        host = f"{route['metadata']['name']}-{request['namespace']}.{ingress['spec']['domain']}"
        return True, "", [{"op": "add", "path": "/spec/host", "value": host}]

    def istio_inject(self, request: dict):
        pod = request["object"]
        meta = pod.get("metadata") or {}
        opt_out = (meta.get("labels") or {}).get(
            "sidecar.istio.io/inject", (meta.get("annotations") or {}).get("sidecar.istio.io/inject")
        )
        if str(opt_out).lower() == "false" or any(c.get("name") == "istio-proxy" for c in pod["spec"]["containers"]):
            return True, "", None
        patch = [
            {
                "op": "add",
                "path": "/spec/containers/-",
                "value": {
                    "name": "istio-proxy",
                    "image": "docker.io/istio/proxyv2:1.24.0-emulated",
                    "args": ["proxy", "sidecar"],
                },
            }
        ]
        if not meta.get("annotations"):
            patch.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        status = json.dumps({"containers": ["istio-proxy"], "emulated": True})
        patch.append({"op": "add", "path": "/metadata/annotations/sidecar.istio.io~1status", "value": status})
        return True, "", patch


def pod_name(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return meta.get("name") or meta.get("generateName") or ""


def handler_for(admission: Admission):
    routes = {"/scc": admission.scc, "/route-host": admission.route_host, "/istio-inject": admission.istio_inject}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # noqa: D401 - the emulator logs decisions itself
            return

        def do_POST(self):  # noqa: N802 - http.server's name
            review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            request = review["request"]
            response = {"uid": request["uid"], "allowed": True}
            try:
                allowed, message, patch = routes[self.path.split("?")[0]](request)
            except (ApiException, KeyError, ValueError) as exc:
                LOG.warning("%s: %s", self.path, exc)
                allowed, message, patch = False, f"{TAG}: {self.path} failed: {exc}", None
            response["allowed"] = allowed
            if not allowed:
                response["status"] = {"code": 403, "reason": "Forbidden", "message": message}
            if patch:
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
            body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

    return Handler


def serve(api: client.ApiClient, port: int, cert_dir: Path, stop: threading.Event) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(Admission(api)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=lambda: (stop.wait(), server.shutdown()), daemon=True).start()
    LOG.info("admission webhooks (%s) listening on https://127.0.0.1:%d", TAG, port)
    server.serve_forever()
