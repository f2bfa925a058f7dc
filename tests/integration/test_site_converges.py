"""site.yml on a bare OpenShift and a bare PCAI local cluster: one run converges, a rerun changes nothing, and
every fact a role documents as exported is set by that role.

Each profile is as the platform ships it: no MutatingAdmissionPolicy, OpenShift's SCC admission and PCAI's Istio
sidecar injection done by the local cluster's EMULATED admission webhooks (tests/sim/README.md), so a Pod that is
created before what it needs at admission (an SCC grant, the injection label, the mesh metadata) is refused or
created without it. The inventories are the shipped ones (inventories/openshift, inventories/pcai) with the
FIXTURE charts (tests/fixtures/package_charts.py) and the run stage against the Data Flywheel API SIMULATOR; on
OpenShift the operators come through OLM (the profile emulates what OLM writes), on PCAI through helm. Neither
profile has a /scratch mechanism and no customizer runs here: remediate_scratch_required is false (the /scratch
route is tested in test_remediate_kyverno.py and test_remediate_units.py).

"Bare": every namespace the run uses is new (random names), the OLM objects and the ClusterPolicy the roles
create on OpenShift are removed first (another test of the worker may have left them), and everything is
removed again at the end (playbooks/uninstall.yml, then the operator namespaces), so the test runs on the
worker's shared profile clusters. Both profiles run side by side (one converge, then one rerun each).

Must show (issue 15, 1): one run converges, the rerun reports changed=0, no Pod is recreated (same UIDs, one
ReplicaSet per Deployment, one revision per StatefulSet), every Pod was admitted at creation as the platform
requires: on OpenShift under the SCC granted to its ServiceAccount before the charts (the emulated admission's
decision, or the `openshift.io/scc` annotation on a real cluster), on PCAI with the sidecar and the mesh
metadata in the injected namespace, and no controller was ever refused a Pod (no FailedCreate event). With the
shipped default remediate_scratch_required (true) the same bare OpenShift cluster is refused naming the options,
before any stage created anything.

Must show (issue 17, 4): the test-only callback dfw_facts (tests/integration/callback_plugins) records which role
set which facts in these runs; every export in a role README's contract (tests/role_contracts.py) is set by that
role. flywheel_promote runs after the OpenShift site run, deciding on the job the run stage started (the
promotion workflow's first step). gpu_driver and container_toolkit (GPU hosts, molecule scenario gpu_host)
declare no exports; test_every_role_with_exports_ran_here says so and fails when one starts exporting.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubernetes import client, config

from tests import role_contracts
from tests.harness import CALLBACKS, ROOT, PlaybookRun, run_playbook
from tests.integration.conftest import kubeconfig_for
from tests.integration.flywheel_sim import control
from tests.integration.test_cluster_openshift_olm import forget_operators
from tests.sim.flywheel_api.simulator import start as start_flywheel_api

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PROFILES = ("openshift", "pcai")
HOST = {"openshift": "ocp-prod", "pcai": "pcai-prod"}  # the inventories' cluster hosts
CHARTS = {
    "gpu_operator_chart_ref": "gpu-operator-v26.7.0.tgz",
    "nim_operator_chart_ref": "k8s-nim-operator-3.1.2.tgz",
    "nemo_platform_volcano_chart_ref": "volcano-1.9.0.tgz",
    "nemo_platform_chart_ref": "nemo-microservices-helm-chart-25.8.0.tgz",
    "flywheel_chart_ref": "nvidia-blueprint-data-flywheel-0.3.1.tgz",
}
# roles that only run on GPU hosts (molecule scenario gpu_host, against a container): nothing to export
HOST_ROLES = {"gpu_driver", "container_toolkit"}
# what PCAI's mesh needs on every Pod of the injected namespace at creation (remediate_pod_metadata)
PCAI_POD_LABELS = {"hpe-ezua/type": "vendor-service"}
PCAI_POD_ANNOTATIONS = {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432,9200,6379,27017"}
SCC_DECISION = re.compile(r"scc: (\S+)/(\S+) \(sa (\S+)\) admitted under (\S+)")


@dataclass
class Site:
    """One profile's bare cluster, its site.yml runs and what they left."""

    profile: str
    kubeconfig: str
    api: client.ApiClient
    tmp: Path
    env: dict
    ns: str  # the flywheel namespace (NeMo runs there as the flywheel chart's subchart)
    namespaces: list[str]
    extra_vars: dict
    sim: object = None
    runs: dict[str, PlaybookRun] = field(default_factory=dict)
    pods: dict[str, dict] = field(default_factory=dict)  # run -> {ns/name: pod}
    facts_files: dict[str, Path] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return HOST[self.profile]

    def run(self, label: str, playbook: str = "site.yml", extra: dict | None = None) -> PlaybookRun:
        facts = self.tmp / f"{label}.facts.jsonl"
        self.facts_files[label] = facts
        run = run_playbook(
            playbook,
            {**self.extra_vars, **(extra or {})},
            inventory=ROOT / "inventories" / self.profile,
            env={
                **self.env,
                "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
                "ANSIBLE_CALLBACKS_ENABLED": "dfw_facts",
                "DFW_FACTS_FILE": str(facts),
            },
            timeout=1200,
        )
        self.runs[label] = run
        return run

    def snapshot(self, label: str) -> None:
        core = client.CoreV1Api(self.api)
        self.pods[label] = {
            f"{p.metadata.namespace}/{p.metadata.name}": p
            for ns in self.namespaces
            for p in core.list_namespaced_pod(ns).items
        }

    def recap(self, label: str) -> dict[str, int]:
        return self.runs[label].recap(self.host)

    def facts(self, label: str) -> tuple[dict[str, set[str]], set[str]]:
        """{role: facts it set on the cluster host}, and the roles that had a task started."""
        by_role: dict[str, set[str]] = {}
        ran: set[str] = set()
        path = self.facts_files[label]
        assert path.exists(), f"the dfw_facts callback wrote nothing for {label}: {self.runs[label].tail()}"
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "roles_ran" in record:
                ran |= set(record["roles_ran"])
            elif record["host"] == self.host:
                by_role.setdefault(record["role"], set()).update(record["facts"])
        return by_role, ran


def prepare(profile: str, charts: str, tool_env: dict, tmp: Path, *, clean: bool = True) -> Site:
    kubeconfig = kubeconfig_for(profile)
    api = config.new_client_from_config(config_file=kubeconfig)
    custom = client.CustomObjectsApi(api)
    if clean and profile == "openshift":
        forget_operators(custom)
    elif clean:
        # the GPU Operator chart's cluster-scoped ClusterPolicy: one another test's release may have left
        try:
            custom.delete_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", "cluster-policy")
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    ns = f"site-{profile[:3]}-{uuid.uuid4().hex[:5]}"
    namespaces = [ns, f"{ns}-gpu", f"{ns}-nimop", f"{ns}-volcano"]
    keys = {name: f"{prefix}{secrets.token_hex(12)}" for name, prefix in (("ngc", "nvapi-"), ("hf", "hf_"))}
    extra_vars = {
        "flywheel_kubeconfig": kubeconfig,
        "flywheel_prereqs_namespace": ns,
        "gpu_operator_namespace": namespaces[1],
        "nim_operator_namespace": namespaces[2],
        "nemo_platform_volcano_namespace": namespaces[3],
        **{var: f"{charts}/{chart}" for var, chart in CHARTS.items()},
        "flywheel_ngc_api_key": keys["ngc"],
        "flywheel_nvidia_api_key": keys["ngc"],
        "flywheel_hf_token": keys["hf"],
        "nemo_platform_db_password": secrets.token_hex(12),
        # neither platform as shipped serves MutatingAdmissionPolicy or Kyverno, and no customizer runs here
        "remediate_scratch_required": False,
        "flywheel_run_wait_sleep": 1,
        "flywheel_run_progress_interval": 2,
        "flywheel_run_wait_timeout": 300,
        "flywheel_run_artifacts_dir": str(tmp / "reports"),
    }
    env = {
        "PATH": tool_env["PATH"],
        "HELM_PLUGINS": tool_env.get("HELM_PLUGINS", ""),
        # the inventories' own key lookups, and no cluster of the test's environment
        "KUBECONFIG": None,
        "K8S_AUTH_KUBECONFIG": None,
    }
    return Site(profile, kubeconfig, api, tmp, env, ns, namespaces, extra_vars)


def converge_and_rerun(site: Site) -> None:
    site.sim = start_flywheel_api(unit_seconds=0.02)
    control(site.sim, "/_sim/config", {"workloads": {"primary_assistant/aiva-1": {"records": 300}}})
    site.extra_vars["flywheel_run_api_url"] = site.sim.url
    if site.run("converge").returncode != 0:
        return
    site.snapshot("converge")
    if site.run("rerun").returncode != 0:
        return
    site.snapshot("rerun")
    if site.profile == "openshift":
        # the promotion workflow's first step on the job the run stage started: decide, deploy nothing
        jobs = control(site.sim, "/_sim/jobs")["jobs"]
        site.run(
            "promote",
            "playbooks/flywheel_promote.yml",
            {
                "flywheel_promote_api_url": site.sim.url,
                "flywheel_promote_job_id": jobs[0]["id"] if jobs else "none",
                "flywheel_promote_artifacts_dir": str(site.tmp / "reports"),
            },
        )
        # the doctor (read-only) on the converged cluster
        site.run(
            "diagnose",
            "playbooks/diagnose.yml",
            {"diagnose_flywheel_url": site.sim.url, "diagnose_report_dir": str(site.tmp / "diagnosis")},
        )


def remove(site: Site) -> list[str]:
    """Leave the shared cluster as found: the stack (playbooks/uninstall.yml), the operator namespaces, the OLM
    objects and ClusterPolicy. Returns what could not be removed."""
    problems = []
    if site.sim is not None:
        site.sim.shutdown()
    gone = run_playbook(
        "playbooks/uninstall.yml",
        site.extra_vars,
        inventory=ROOT / "inventories" / site.profile,
        env=site.env,
        timeout=600,
    )
    if gone.returncode != 0:
        problems.append(f"{site.profile} uninstall: {gone.tail(2000)}")
    core = client.CoreV1Api(site.api)
    for ns in site.namespaces:
        try:
            core.delete_namespace(ns)
        except client.ApiException as exc:
            if exc.status != 404:
                problems.append(f"{site.profile} namespace {ns}: {exc.status}")
    if site.profile == "openshift":
        forget_operators(client.CustomObjectsApi(site.api))
    return problems


@pytest.fixture(scope="module")
def sites(tool_env, fixture_charts, tmp_path_factory):
    prepared = {p: prepare(p, fixture_charts, tool_env, tmp_path_factory.mktemp(f"site-{p}")) for p in PROFILES}
    try:
        # the profiles are independent clusters: side by side, their waits overlap
        with ThreadPoolExecutor(max_workers=len(PROFILES)) as pool:
            list(pool.map(converge_and_rerun, prepared.values()))
        yield prepared
    finally:
        with ThreadPoolExecutor(max_workers=len(PROFILES)) as pool:
            problems = [p for found in pool.map(remove, prepared.values()) for p in found]
        assert not problems, problems


def converged(sites: dict, profile: str) -> Site:
    site = sites[profile]
    first = site.runs["converge"]
    assert first.returncode == 0, f"site.yml did not converge the bare {profile} cluster in one run:\n{first.tail()}"
    return site


def workload_pods(site: Site, label: str) -> dict[str, client.V1Pod]:
    pods = site.pods[label]
    assert any(name.startswith(f"{site.ns}/df-api-deployment-") for name in pods), sorted(pods)
    return pods


@pytest.mark.parametrize("profile", PROFILES)
def test_site_converges_in_one_run_and_the_rerun_changes_nothing(sites, profile):
    site = converged(sites, profile)
    first = site.recap("converge")
    assert first["failed"] == 0 and first["changed"] > 0, first
    rerun = site.runs["rerun"]
    assert rerun.returncode == 0, rerun.tail()
    changed = [line for line in rerun.stdout.splitlines() if line.startswith("changed:")]
    assert site.recap("rerun")["changed"] == 0, (changed, rerun.tail())


@pytest.mark.parametrize("profile", PROFILES)
def test_the_rerun_recreated_no_pod_and_no_controller_rolled(sites, profile):
    site = converged(sites, profile)
    before, after = workload_pods(site, "converge"), workload_pods(site, "rerun")
    assert {n: p.metadata.uid for n, p in after.items()} == {n: p.metadata.uid for n, p in before.items()}
    apps = client.AppsV1Api(site.api)
    for ns in site.namespaces:
        sets = apps.list_namespaced_replica_set(ns).items
        per_deployment: dict[str, int] = {}
        for rs in sets:
            owner = (rs.metadata.owner_references or [None])[0]
            name = owner.name if owner else rs.metadata.name
            per_deployment[name] = per_deployment.get(name, 0) + 1
        assert {d: n for d, n in per_deployment.items() if n != 1} == {}, f"{ns}: a Deployment rolled"
        for sts in apps.list_namespaced_stateful_set(ns).items:
            assert sts.status.current_revision == sts.status.update_revision, f"{ns}/{sts.metadata.name} rolled"
            revisions = [
                r
                for r in apps.list_namespaced_controller_revision(ns).items
                if (r.metadata.owner_references or [None])[0] and r.metadata.owner_references[0].uid == sts.metadata.uid
            ]
            assert len(revisions) == 1, f"{ns}/{sts.metadata.name}: {len(revisions)} revisions"


@pytest.mark.parametrize("profile", PROFILES)
def test_no_pod_was_ever_refused_admission(sites, profile):
    """A Pod created before what it needs at admission is refused by the (emulated) platform admission; the
    controllers retry, so a late fix would still converge, but the refusal stays as a FailedCreate event."""
    site = converged(sites, profile)
    core = client.CoreV1Api(site.api)
    refused = [
        f"{e.involved_object.kind} {ns}/{e.involved_object.name}: {e.message}"
        for ns in site.namespaces
        for e in core.list_namespaced_event(ns, field_selector="type=Warning").items
        if e.reason == "FailedCreate"
    ]
    assert refused == []


def scc_decisions(site: Site) -> dict[str, tuple[str, str]]:
    """{ns/pod: (service account, SCC)} each Pod was admitted under: OpenShift's own annotation on a real
    cluster, else the emulated SCC admission's log (it does not write the annotation)."""
    from tests.sim import cluster  # noqa: PLC0415 - its state directory follows DFW_CLUSTERS_DIR (pytest-xdist)

    log = cluster.STATE / f"{cluster.cluster_name(site.profile)}.emulators.log"
    found = {}
    if log.exists():
        for ns, pod, sa, scc in SCC_DECISION.findall(log.read_text()):
            found[f"{ns}/{pod}"] = (sa, scc)
    for name, pod in site.pods["converge"].items():
        annotated = (pod.metadata.annotations or {}).get("openshift.io/scc")
        if annotated:
            found[name] = (pod.spec.service_account_name, annotated)
    return found


def test_openshift_pods_were_admitted_under_the_scc_granted_before_the_charts(sites):
    """inventories/openshift grants anyuid to the flywheel namespace's `default` ServiceAccount (the chart's Pods
    run as it): granted before the charts, every such Pod is admitted under anyuid from its creation on; granted
    after them, the first Pods would have been admitted under restricted-v2."""
    site = converged(sites, "openshift")
    pods = workload_pods(site, "converge")
    decisions = scc_decisions(site)
    ours = {name: decisions.get(name) for name, pod in pods.items() if name.startswith(f"{site.ns}/")}
    assert len(ours) >= 10, sorted(ours)
    wrong = {name: got for name, got in ours.items() if got != ("default", "anyuid")}
    assert wrong == {}, "Pods not admitted under the SCC granted to their ServiceAccount"
    # namespaces without a grant: the default SCC, so the decision above is the grant's doing
    others = {decisions.get(name) for name in pods if not name.startswith(f"{site.ns}/")}
    assert others and all(sa_scc is not None and sa_scc[1] == "restricted-v2" for sa_scc in others), others


def test_pcai_pods_in_the_injected_namespace_got_the_sidecar_and_mesh_metadata_at_creation(sites):
    """The injection label and the Pod metadata are applied before the charts (playbooks/admission.yml), so the
    first Pods, with the UIDs the rerun still finds, carry the sidecar (added only at CREATE) and the mesh
    settings; Pods of namespaces without the label have none (the emulation tells them apart)."""
    site = converged(sites, "pcai")
    core = client.CoreV1Api(site.api)
    labels = {ns: core.read_namespace(ns).metadata.labels or {} for ns in site.namespaces}
    injected = {ns for ns, found in labels.items() if found.get("istio-injection") == "enabled"}
    assert injected == {site.ns}
    pods = workload_pods(site, "converge")
    missing = {}
    for name, pod in pods.items():
        annotations, labels = pod.metadata.annotations or {}, pod.metadata.labels or {}
        containers = [c.name for c in pod.spec.containers]
        sidecar = "sidecar.istio.io/status" in annotations and "istio-proxy" in containers
        if name.split("/")[0] not in injected:
            if sidecar:
                missing[name] = "a sidecar outside the injected namespace"
            continue
        job_pod = any(o.kind == "Job" for o in pod.metadata.owner_references or [])
        wanted = {
            "sidecar": not job_pod,
            **{k: labels.get(k) == v for k, v in PCAI_POD_LABELS.items()},
            **{k: annotations.get(k) == v for k, v in PCAI_POD_ANNOTATIONS.items()},
        }
        if sidecar != wanted.pop("sidecar") or not all(wanted.values()):
            missing[name] = {"sidecar": sidecar, **wanted}
    assert len([n for n in pods if n.split("/")[0] in injected]) >= 10, sorted(pods)
    assert missing == {}


def test_a_cluster_without_a_scratch_mechanism_is_refused_before_anything_is_created(
    sites, tool_env, fixture_charts, tmp_path
):
    """OpenShift as shipped serves neither MutatingAdmissionPolicy nor Kyverno. With the shipped inventory's
    default (remediate_scratch_required true) site.yml stops naming the options, and the bare cluster stays bare:
    the remediate checks run before flywheel_prereqs creates the namespaces (playbooks/admission.yml)."""
    site = prepare(
        "openshift", fixture_charts, tool_env, tmp_path, clean=False
    )  # the scene above keeps its OLM objects
    run = run_playbook(
        "site.yml",
        {**site.extra_vars, "remediate_scratch_required": True, "flywheel_run_api_url": "http://127.0.0.1:9"},
        inventory=ROOT / "inventories" / "openshift",
        env=site.env,
        timeout=600,
    )
    text = re.sub(r"\s+", " ", run.output)
    assert run.returncode != 0 and "no MutatingAdmissionPolicy API" in text, run.tail()
    for option in ("install Kyverno", "remediate_scratch_required=false", "Nothing was changed"):
        assert option in text, run.tail()
    assert run.recap(site.host)["changed"] == 0, run.tail()
    existing = {ns.metadata.name for ns in client.CoreV1Api(site.api).list_namespace().items}
    assert set(site.namespaces) & existing == set()


def documented_exports() -> dict[str, dict[str, str]]:
    return {role: role_contracts.contract(role).exports for role in role_contracts.ROLES}


@pytest.mark.parametrize("run", ["converge", "rerun"])
@pytest.mark.parametrize("profile", PROFILES)
def test_every_documented_export_is_set_by_its_role_in_a_site_run(sites, profile, run):
    site = converged(sites, profile)
    assert site.runs[run].returncode == 0, site.runs[run].tail()
    by_role, ran = site.facts(run)
    exports = {role: facts for role, facts in documented_exports().items() if facts}
    site_roles = {"preflight", "remediate", "nemo_platform", "cluster_common", "flywheel_run"}
    assert site_roles <= ran, f"roles with exports that site.yml did not run: {sorted(site_roles - ran)}"
    unset = {role: sorted(set(facts) - by_role.get(role, set())) for role, facts in exports.items() if role in ran}
    assert {role: names for role, names in unset.items() if names} == {}


def test_flywheel_promote_sets_its_documented_export(sites):
    site = converged(sites, "openshift")
    promote = site.runs.get("promote")
    assert promote is not None, "the promotion run did not start (the site runs failed)"
    assert promote.returncode == 0, promote.tail()
    assert "NOT deployed: " in promote.stdout, promote.tail()  # decided, nothing approved
    by_role, ran = site.facts("promote")
    assert "flywheel_promote" in ran
    assert set(documented_exports()["flywheel_promote"]) <= by_role.get("flywheel_promote", set())


def test_diagnose_sets_its_documented_export_and_changes_nothing(sites):
    site = converged(sites, "openshift")
    run = site.runs.get("diagnose")
    assert run is not None, "the doctor did not run (the site runs failed)"
    assert run.returncode == 0 and run.recap(site.host)["changed"] == 0, run.tail()
    by_role, ran = site.facts("diagnose")
    assert "diagnose" in ran
    assert set(documented_exports()["diagnose"]) <= by_role.get("diagnose", set())
    assert (site.tmp / "diagnosis" / "diagnosis.json").exists(), run.tail()


def test_every_role_with_exports_ran_here():
    """The runs above cover every role that documents exports; the GPU host roles run only against GPU hosts
    (molecule scenario gpu_host, in a container) and document none. One that starts exporting a fact must be
    covered where it runs, and this test fails until it is listed."""
    covered = {
        "preflight",
        "remediate",
        "nemo_platform",
        "cluster_common",
        "flywheel_run",
        "flywheel_promote",
        "diagnose",
    }
    exporting = {role for role, facts in documented_exports().items() if facts}
    assert exporting <= covered, f"roles whose exports no run of this file checks: {sorted(exporting - covered)}"
    assert {role: facts for role, facts in documented_exports().items() if role in HOST_ROLES and facts} == {}
