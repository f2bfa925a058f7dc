"""playbooks/cluster.yml and playbooks/uninstall.yml on the local cluster, with the fixture charts.

One converged stack per module. Its charts come from a chart repository on loopback that requires basic
authentication (a real HTTP server, tests/sim/chart_repo.py) and stands for NGC (flywheel_ngc_hosts), so
every run fetches them as `$oauthtoken` with the NGC key, as from helm.ngc.nvidia.com. The tests run in
order: no-op rerun (changed=0 although every chart is pulled again, same Pod UIDs, -vvv output kept),
--check --diff (nothing, then exactly one change), the charts came from the authenticated repository and
the Pods pull images with the key, secret hygiene (the -vvv output, every non-Secret API object, the
files the runs left, helm's configuration and cache), uninstall then reinstall from a chart repository
served over HTTP without authentication. Custom-resource status comes from the local cluster's
operator-status emulator (tests/sim/emulators.py), not from a real operator.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import re
import secrets as pysecrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.harness import ROOT, run_playbook
from tests.integration.secret_scan import scan_cluster, scan_files, scan_text
from tests.integration.services import resolve
from tests.sim import chart_repo as authenticated_repo

pytestmark = pytest.mark.cluster

INVENTORY = ROOT / "tests" / "fixtures" / "inventory"
NAMESPACES = ["data-flywheel", "gpu-operator", "nim-operator", "volcano-system"]
RELEASES = {
    "gpu-operator": "gpu-operator",
    "nim-operator": "nim-operator",
    "volcano": "volcano-system",
    "data-flywheel": "data-flywheel",
}


# the loopback repository stands for NGC: the roles' NGC default credentials ($oauthtoken, the NGC key) apply
NGC_STAND_IN = {"flywheel_ngc_hosts": ["127.0.0.1"]}
# fixture chart packages the stack installs (the NeMo chart is the flywheel chart's subchart)
STACK_CHARTS = {
    "gpu-operator-v26.7.0.tgz",
    "k8s-nim-operator-3.1.2.tgz",
    "volcano-1.9.0.tgz",
    "nvidia-blueprint-data-flywheel-0.3.1.tgz",
}


class Stack:
    def __init__(self, env: dict, secrets: dict, tmp: Path, repo):
        self.env = env
        self.secrets = secrets
        self.tmp = tmp
        self.repo = repo
        self.outputs: dict[str, str] = {}

    def run(
        self,
        playbook: str,
        *args: str,
        extra_env: dict | None = None,
        json_out: bool = False,
        extra_vars: dict | None = None,
    ):
        return run_playbook(
            f"playbooks/{playbook}",
            {**NGC_STAND_IN, **(extra_vars or {})},
            inventory=INVENTORY,
            args=args,
            env={**self.env, **(extra_env or {})},
            json_output=json_out,
        )

    def pulls(self) -> dict[str, int]:
        """Chart packages the authenticated repository served (with valid credentials), by file name."""
        served = self.repo.stats.items()
        return {key.split("/")[-1]: n for key, n in served if key.startswith("200 ") and key.endswith(".tgz")}


def recap_changed(out: str) -> int:
    found = re.search(r"local-cluster\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", out)
    assert found, f"the run failed or printed no recap:\n{out[-6000:]}"
    return int(found.group(1))


def pod_uids(api: client.ApiClient) -> dict[str, str]:
    pods = client.CoreV1Api(api).list_pod_for_all_namespaces().items
    return {
        f"{p.metadata.namespace}/{p.metadata.name}": p.metadata.uid for p in pods if p.metadata.namespace in NAMESPACES
    }


def changed_tasks(report: dict) -> list[tuple[str, dict]]:
    out = []
    for play in report["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get("local-cluster", {})
            if result.get("changed"):
                out.append((task["task"]["name"], result))
    return out


@pytest.fixture(scope="module")
def stack(vanilla_kubeconfig, tool_env, fixture_charts, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster-stack")
    charts = fixture_charts
    secrets = {
        "ngc": "nvapi-" + pysecrets.token_hex(20),
        "nvidia": "nvapi-" + pysecrets.token_hex(20),
        "hf": "hf_" + pysecrets.token_hex(16),
        "db": pysecrets.token_hex(16),
    }
    (tmp / "ansible-tmp").mkdir()
    repo = authenticated_repo.start(charts, username="$oauthtoken", password=secrets["ngc"])
    env = {
        **{k: v for k, v in tool_env.items() if k in ("PATH", "HELM_PLUGINS", "KUBECONFIG")},
        "DFW_KUBECONFIG": vanilla_kubeconfig,
        "DFW_FIXTURE_CHARTS": charts,
        "DFW_FIXTURE_REPO_URL": repo.url,
        "DFW_TEST_NGC_API_KEY": secrets["ngc"],
        "DFW_TEST_NVIDIA_API_KEY": secrets["nvidia"],
        "DFW_TEST_HF_TOKEN": secrets["hf"],
        "DFW_TEST_DB_PASSWORD": secrets["db"],
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
        "TMPDIR": str(tmp / "ansible-tmp"),
    }
    stack = Stack(env, secrets, tmp, repo)
    try:
        first = stack.run("cluster.yml")
        recap_changed(first.stdout)
        stack.outputs["converge"] = first.stdout + first.stderr
        yield stack
    finally:
        repo.shutdown()
        # leave the shared cluster as found: the tests after this module expect no releases
        gone = stack.run("uninstall.yml")
        assert gone.returncode == 0, gone.stdout[-4000:] + gone.stderr[-2000:]


def test_cluster_noop_rerun_changes_nothing_and_restarts_nothing(stack, vanilla):
    before = pod_uids(vanilla)
    assert any(name.startswith("data-flywheel/df-api-deployment-") for name in before), before
    pulled = stack.pulls()
    rerun = stack.run("cluster.yml", "-vvv")
    stack.outputs["rerun -vvv"] = rerun.stdout + rerun.stderr
    assert recap_changed(rerun.stdout) == 0, [line for line in rerun.stdout.splitlines() if line.startswith("changed")]
    assert pod_uids(vanilla) == before
    # every chart was pulled again from the authenticated repository, and helm saw no change in that
    assert {name for name, n in stack.pulls().items() if n > pulled.get(name, 0)} == STACK_CHARTS, stack.repo.stats
    # no release changed, and the CRDs and the ClusterPolicy were ready when platform detection read them at the
    # start of the run: the operator roles read neither again; nor does the gateway's resolver read the DNS Service
    for task in START_OF_RUN_READS:
        section = task_output(rerun.stdout, task)
        assert "skipping: [local-cluster]" in section and "ok: [local-cluster]" not in section, section[:2000]


# the roles' own reads of what platform detection read at the start of the run (skipped when that makes them redundant)
START_OF_RUN_READS = (
    "nim_operator : CRDs Established",
    "gpu_operator : ClusterPolicy cluster-policy reports state ready",
    "nemo_platform : The cluster DNS Service, first place",
)


def task_output(out: str, task: str) -> str:
    """The default callback's lines of the first task whose header names `task`, up to the next header."""
    start = out.index(f"TASK [dataflywheel.blueprint.{task}")
    end = out.find("\nTASK [", start + 1)
    return out[start : end if end > 0 else len(out)]


def test_cluster_roles_read_what_was_not_ready_at_the_start_of_the_run(stack, ansible_module):
    """A ClusterPolicy that was not ready, a NIM CRD that was not Established and a DNS Service platform detection
    did not find when the run began are read (and waited for) by their roles, even on a run that changes no
    release."""
    facts = ansible_module("platform_info", {"kubeconfig": stack.env["DFW_KUBECONFIG"]})["platform_info"]
    assert facts["gpu_cluster_policies"] == {"cluster-policy": "ready"}
    assert "nimcaches.apps.nvidia.com" in facts["crds_established"]
    facts["gpu_cluster_policies"] = {"cluster-policy": "notReady"}
    facts["crds_established"].remove("nimcaches.apps.nvidia.com")
    assert [s["metadata"]["name"] for s in facts["dns_services"]] == ["kube-dns"]
    facts["dns_services"] = []
    run = stack.run("cluster.yml", "-e", json.dumps({"remediate_facts": facts}), json_out=True)
    assert run.returncode == 0, run.stdout[-4000:]
    report = json.loads(run.stdout)
    assert report["stats"]["local-cluster"]["changed"] == 0
    ran = {
        task["task"]["name"]
        for play in report["plays"]
        for task in play["tasks"]
        if "local-cluster" in task["hosts"] and not task["hosts"]["local-cluster"].get("skipped", False)
    }
    for task in START_OF_RUN_READS:
        assert any(task in name for name in ran), (task, sorted(ran))


def test_cluster_subchart_mode_nemo_urls_resolve_and_pods_were_created_once(stack, vanilla):
    """NeMo as the flywheel chart's subchart: every NeMo URL of df-config and every upstream behind the NeMo
    gateway is an existing Service and port; the API and worker pods were created once (no second roll right
    after the first install) with the rendered config's checksum; one NIM Operator runs (the chart's own is off)."""
    core, apps = client.CoreV1Api(vanilla), client.AppsV1Api(vanilla)
    config = yaml.safe_load(core.read_namespaced_config_map("df-config", "data-flywheel").data["config.yaml"])
    nginx = core.read_namespaced_config_map("nemo-gateway", "data-flywheel").data["nginx.conf"]
    urls = [config["nmp_config"][k] for k in ("nemo_base_url", "nim_base_url", "datastore_base_url")]
    urls += re.findall(r'set \$upstream_\d+ "([^"]+)"', nginx)
    names = {resolve(core, url, "data-flywheel")[1] for url in urls}
    assert {
        "nemo-gateway",
        "data-flywheel-entity-store",
        "data-flywheel-customizer",
        "data-flywheel-nim-proxy",
    } <= names
    digest = hashlib.sha256(core.read_namespaced_config_map("df-config", "data-flywheel").data["config.yaml"].encode())
    for name in ("df-api-deployment", "df-celery-worker-deployment", "df-celery-parent-worker-deployment"):
        deployment = apps.read_namespaced_deployment(name, "data-flywheel")
        assert deployment.metadata.generation == 1, name
        annotations = deployment.spec.template.metadata.annotations or {}
        assert annotations.get("dataflywheel.blueprint/config-sha256") == digest.hexdigest(), name
    operators = apps.list_deployment_for_all_namespaces(label_selector="app.kubernetes.io/name=k8s-nim-operator").items
    assert [d.metadata.namespace for d in operators] == ["nim-operator"]


def test_cluster_check_diff_reports_nothing_then_exactly_one_change(stack):
    quiet = stack.run("cluster.yml", "--check", "--diff", json_out=True)
    assert quiet.returncode == 0, quiet.stdout[-4000:]
    report = json.loads(quiet.stdout)
    assert changed_tasks(report) == []
    assert report["stats"]["local-cluster"]["changed"] == 0

    split = {
        "eval_size": 120,
        "val_ratio": 0.1,
        "min_total_records": 50,
        "random_seed": None,
        "limit": 1000,
        "parse_function_arguments": True,
    }
    one = stack.run("cluster.yml", "--check", "--diff", "-e", json.dumps({"flywheel_data_split": split}), json_out=True)
    assert one.returncode == 0, one.stdout[-4000:]
    stack.outputs["check --diff"] = one.stdout + one.stderr
    report = json.loads(one.stdout)
    changes = changed_tasks(report)
    # the json callback names a role's task "<role> : <name>"
    assert [name.rpartition(" : ")[2] for name, _result in changes] == ["Helm release: data-flywheel/data-flywheel"]
    # that task is censored (its parameters carry the API keys); the next one shows helm-diff's diff
    shown = [
        result.get("msg", "")
        for play in report["plays"]
        for task in play["tasks"]
        for result in [task["hosts"].get("local-cluster", {})]
        if task["task"]["name"].endswith(
            "what changed (helm-diff masks Secret data; the keys are masked again here): data-flywheel"
        )
        and not result.get("skipped")
    ]
    assert len(shown) == 1, shown
    diff_text = re.sub(r"\x1b\[[0-9;]*m", "", shown[0])
    # helm-diff marks removed / added lines with "-" / "+" in the first column, context with "  "
    edits = [re.sub(r"\s+", " ", line) for line in diff_text.splitlines() if re.match(r"^[-+]", line)]
    # the config change, and the roll it causes: the rendered config's new checksum on the three pod templates
    assert [e for e in edits if "config-sha256" not in e] == ["- eval_size: 100", "+ eval_size: 120"], diff_text[-3000:]
    assert len([e for e in edits if "dataflywheel.blueprint/config-sha256" in e]) == 6, diff_text[-3000:]
    assert "data-flywheel, df-config, ConfigMap (v1) has changed:" in diff_text, diff_text[:500]
    for name in ("df-api-deployment", "df-celery-worker-deployment", "df-celery-parent-worker-deployment"):
        assert f"data-flywheel, {name}, Deployment (apps) has changed:" in diff_text, diff_text[-3000:]
    assert diff_text.count("has changed:") == 4, diff_text


def test_cluster_charts_come_from_the_authenticated_repository_and_pods_pull_with_the_ngc_key(stack, vanilla):
    """Must show 2 (the success half): every chart of the stack came from the repository that refuses requests
    without the NGC key (401), fetched as $oauthtoken with it; the flywheel Pods pull their nvcr.io images with
    the chart's pull Secret, which carries that key. (Without the key, preflight stops naming flywheel_ngc_api_key:
    tests/integration/test_preflight.py::test_chart_repository_credentials_are_checked_before_any_change.)"""
    assert set(stack.pulls()) == STACK_CHARTS, stack.repo.stats
    assert not [key for key in stack.repo.stats if key.startswith("401 ")], stack.repo.stats
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{stack.repo.url}/index.yaml", timeout=10)  # noqa: S310 - loopback test server
    assert refused.value.code == 401
    core = client.CoreV1Api(vanilla)
    servers = "app in (df-api-deployment,df-celery-worker-deployment,df-celery-parent-worker-deployment)"
    pods = core.list_namespaced_pod("data-flywheel", label_selector=servers).items
    assert len({p.metadata.labels["app"] for p in pods}) == 3, [p.metadata.name for p in pods]
    secrets_of = {p.metadata.name: [s.name for s in p.spec.image_pull_secrets or []] for p in pods}
    assert {name for name, used in secrets_of.items() if used != ["nvcrimagepullsecret"]} == set(), secrets_of
    pull = core.read_namespaced_secret("nvcrimagepullsecret", "data-flywheel")
    assert pull.type == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(pull.data[".dockerconfigjson"]))["auths"]
    assert auths["nvcr.io"]["username"] == "$oauthtoken" and auths["nvcr.io"]["password"] == stack.secrets["ngc"]


def test_cluster_no_secret_value_in_output_objects_or_files(stack, vanilla):
    assert "rerun -vvv" in stack.outputs, "needs the -vvv rerun of the first test"
    leaks = []
    for what, text in stack.outputs.items():
        leaks += scan_text(text, stack.secrets, f"output of {what}")
    # every object that is not a Secret (ConfigMaps, Deployments, custom resources, events, and
    # whatever helm would store outside Secrets)
    leaks += scan_cluster(vanilla, stack.secrets)
    # the runs' files, and helm's configuration and cache, where `helm repo add` or `helm registry login`
    # would keep repository credentials
    helm_dirs = [Path.home() / ".config" / "helm", Path.home() / ".cache" / "helm"]
    leaks += scan_files([stack.tmp, Path.home() / ".ansible", *[d for d in helm_dirs if d.exists()]], stack.secrets)
    leaks += scan_files(
        [ROOT], stack.secrets, skip=[ROOT / ".venv", ROOT / ".git", ROOT / "collections", ROOT / ".cache"]
    )
    assert [str(x) for x in leaks] == []
    # the Secrets do carry them: the scan looked at the right values
    pull = client.CoreV1Api(vanilla).read_namespaced_secret("ngc-api", "data-flywheel")
    assert pull.data["NGC_API_KEY"]


def test_cluster_rotating_a_key_rolls_exactly_the_pods_that_read_it(stack, vanilla):
    """A new HF token changes Secret hf-secret, which only the API reads (the chart's env): the API Pod is
    replaced, every other Pod keeps its UID. The Pods carry a digest of the Secrets they read from the first
    render (helm post-renderer), so nothing is patched onto running Pods."""
    before = pod_uids(vanilla)
    apps = client.AppsV1Api(vanilla)
    key = "dataflywheel.blueprint/secrets-sha256"
    stamps = {
        d.metadata.name: (d.spec.template.metadata.annotations or {}).get(key)
        for d in apps.list_namespaced_deployment("data-flywheel").items
    }
    assert stamps["df-api-deployment"] and stamps["df-celery-worker-deployment"], stamps
    assert stamps["df-elasticsearch-deployment"] is None, "reads no Secret"
    rotated = "hf_" + pysecrets.token_hex(16)
    stack.secrets["hf rotated"] = rotated
    run = stack.run("cluster.yml", extra_env={"DFW_TEST_HF_TOKEN": rotated})
    stack.outputs["rotation"] = run.stdout + run.stderr
    assert recap_changed(run.stdout) > 0
    deadline = time.monotonic() + 90  # the rollout's old Pod may still be terminating
    while True:
        after = pod_uids(vanilla)
        replaced = sorted(p.rsplit("-", 2)[0] for p in before if p not in after)
        if replaced or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert replaced == ["data-flywheel/df-api-deployment"], replaced
    new = {
        d.metadata.name: (d.spec.template.metadata.annotations or {}).get(key)
        for d in apps.list_namespaced_deployment("data-flywheel").items
    }
    assert {n for n in new if new[n] != stamps[n]} == {"df-api-deployment"}
    secret = client.CoreV1Api(vanilla).read_namespaced_secret("hf-secret", "data-flywheel")
    assert base64.b64decode(secret.data["HF_TOKEN"]).decode() == rotated
    assert rotated not in json.dumps(new)


@pytest.fixture
def chart_repo(stack):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=stack.env["DFW_FIXTURE_CHARTS"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_cluster_uninstall_then_install_from_a_chart_repository(stack, vanilla, chart_repo, tool_env):
    core = client.CoreV1Api(vanilla)
    custom = client.CustomObjectsApi(vanilla)
    # a NIMService whose operator is gone keeps its finalizer: uninstall must clear it
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="nemo")))
    except client.ApiException as exc:
        assert exc.status == 409
    custom.create_namespaced_custom_object(
        "apps.nvidia.com",
        "v1alpha1",
        "nemo",
        "nimservices",
        {
            "apiVersion": "apps.nvidia.com/v1alpha1",
            "kind": "NIMService",
            "metadata": {"name": "leftover", "finalizers": ["finalizer.nimservice.apps.nvidia.com"]},
            # the real CRD requires image and authSecret
            "spec": {
                "image": {"repository": "nvcr.io/nim/meta/llama-3.2-1b-instruct", "tag": "1.8.3"},
                "authSecret": "ngc-api",
            },
        },
    )

    gone = stack.run("uninstall.yml")
    assert recap_changed(gone.stdout) > 0
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert not names & {"data-flywheel", "nemo"}, names
    releases = subprocess.run(
        ["helm", "list", "-A", "-o", "json"], env=tool_env, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(releases) == []

    # a repository that is not NGC and takes no credentials: the charts are installed from it directly
    not_ngc = {"flywheel_ngc_hosts": ["helm.ngc.nvidia.com", "nvcr.io"]}
    again = stack.run("cluster.yml", extra_env={"DFW_FIXTURE_REPO_URL": chart_repo}, extra_vars=not_ngc)
    assert recap_changed(again.stdout) > 0
    listed = json.loads(
        subprocess.run(
            ["helm", "list", "-A", "-o", "json"], env=tool_env, capture_output=True, text=True, check=True
        ).stdout
    )
    assert {r["name"]: r["namespace"] for r in listed} == RELEASES
    assert all(r["status"] == "deployed" for r in listed), listed
    stack.outputs["reinstall"] = again.stdout + again.stderr
