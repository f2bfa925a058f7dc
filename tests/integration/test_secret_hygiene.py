"""Secret hygiene of a full demo run: site.yml against inventories/local at -vvv.

Recognisable random secret values (NGC API key, NVIDIA API key, Hugging Face token, judge API key,
embedding API key, the flywheel API bearer token) are given the way an operator gives them (a vars
file as ansible-vault would decrypt it, and the environment variables AWX credentials inject), under
the variables the roles declare (SECRET_VARS). In this run they really travel: flywheel_prereqs
writes the NGC key and HF token into its credential Secrets, remediate's preflights send the HF
token to the Hugging Face Hub SIMULATOR (a gated repository only that token may read) and the
embedding key to the embedding NIM SIMULATOR (401 without it), flywheel_run sends the bearer token
to the Data Flywheel API SIMULATOR. Then the -vvv output, every non-Secret object of the cluster,
every helm release's values and every file the run left on disk (the repo tree, ~/.ansible, /tmp,
reports/, the local cluster's logs) are searched for them, raw and base64-encoded.

As `make demo` does, the run installs the whole cluster stack from the FIXTURE charts (stand-ins for
NVIDIA's NGC charts: GPU and NIM operators, NeMo microservices, the flywheel chart), so the keys also
pass through helm. Here the charts come from a chart repository on loopback that requires basic
authentication (a real HTTP server, tests/sim/chart_repo.py) and stands for NGC (flywheel_ngc_hosts):
the roles fetch them as `$oauthtoken` with the NGC key, which therefore also travels to helm; ~/.config/helm
and ~/.cache/helm are scanned with the other files. The upstream flywheel chart takes them only as
plain values (secrets.*) and renders its Secrets from them: helm keeps release values in its release
record, which must be a Secret (the default storage driver; a ConfigMap driver would expose them), and
outside the chart's secrets.* keys no release value may hold one. The stack is uninstalled afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as pysecrets
import stat
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client

from tests.harness import ansible_tmp
from tests.integration.flywheel_sim import control
from tests.integration.playbook_runner import ROOT, play
from tests.integration.secret_scan import scan_cluster, scan_text
from tests.sim import chart_repo
from tests.sim.embedding_nim.simulator import start as start_embedding
from tests.sim.flywheel_api.simulator import start as start_flywheel_api
from tests.sim.hf_hub.simulator import start as start_hub
from tests.sim.sample_logs import write as write_logs
from tests.sim.services import DEMO

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# secret -> (variables it is given under, environment variables it is given under)
SECRET_VARS = {
    "ngc_api_key": (["flywheel_ngc_api_key"], ["NGC_API_KEY"]),  # flywheel_prereqs_ngc_api_key defaults to it
    "nvidia_api_key": (["flywheel_nvidia_api_key"], ["NVIDIA_API_KEY"]),
    "hf_token": (["flywheel_hf_token", "preflight_hf_token"], ["HF_TOKEN"]),  # and flywheel_prereqs_hf_token
    "judge_api_key": (["flywheel_llm_judge_api_key"], []),
    "embedding_api_key": (["flywheel_emb_api_key", "preflight_embedding_api_key"], []),
    "flywheel_api_token": (["flywheel_run_api_token"], ["FLYWHEEL_API_TOKEN"]),
}
PREFIX = {
    "ngc_api_key": "nvapi-",
    "nvidia_api_key": "nvapi-",
    "hf_token": "hf_",
    "judge_api_key": "judge-",
    "embedding_api_key": "nvapi-emb-",
    "flywheel_api_token": "fwtok-",
}
GATED = "meta-llama/Llama-3.2-1B-Instruct"
# the flywheel chart's values under `secrets` that carry the keys (the upstream chart's only way to take them)
CHART_SECRETS = {
    "ngcApiKey": "ngc_api_key",
    "nvidiaApiKey": "nvidia_api_key",
    "hfToken": "hf_token",
    "llmJudgeApiKey": "judge_api_key",
    "embApiKey": "embedding_api_key",
}
SKIP_DIRS = {".git", ".venv", "collections", ".cache", "node_modules", "__pycache__"}


def walk_recent(root: Path, since: float, skip: set[Path]):
    """Files under root modified at or after `since` (whole tree for the repo), readable ones only."""
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda _e: None):
        # mount points below the roots are other filesystems (a chroot's /proc, whose kmsg blocks a read)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in SKIP_DIRS and Path(dirpath, d) not in skip and not os.path.ismount(Path(dirpath, d))
        ]
        for name in filenames:
            path = Path(dirpath, name)
            try:
                if path.is_symlink() or not stat.S_ISREG(path.stat().st_mode) or path.stat().st_mtime < since:
                    continue
                if path.stat().st_size > 50_000_000:
                    continue
                yield path
            except OSError:
                continue


def scan_paths(roots: list[tuple[Path, float]], secrets: dict[str, str], skip: set[Path]) -> tuple[list, int]:
    leaks, count = [], 0
    for root, since in roots:
        if not root.exists():
            continue
        for path in walk_recent(root, since, skip):
            try:
                text = path.read_bytes().decode("utf-8", errors="ignore")
            except OSError:
                continue
            count += 1
            leaks += scan_text(text, secrets, str(path))
    return leaks, count


@pytest.fixture
def demo_api(search_engine):
    """As make demo: the API simulator counting records in the real search engine the run loads."""
    server = start_flywheel_api(unit_seconds=0.05, es_url=search_engine.url)
    control(server, "/_sim/config", {"workloads": DEMO["workloads"]})
    server.es_url = search_engine.url
    yield server
    server.shutdown()


def test_demo_run_at_vvv_leaks_no_secret(vanilla, vanilla_kubeconfig, tool_env, fixture_charts, demo_api, tmp_path):
    started = time.time() - 1
    secrets = {name: PREFIX[name] + pysecrets.token_hex(20) for name in SECRET_VARS}
    hub, embedding = start_hub(), start_embedding(api_key=secrets["embedding_api_key"])
    repo = chart_repo.start(fixture_charts, username="$oauthtoken", password=secrets["ngc_api_key"])
    hub.state.tokens[secrets["hf_token"]] = "granted-user"
    hub.state.add_repo(GATED, gated="manual", granted={"granted-user"})
    creds_ns = f"hygiene-{pysecrets.token_hex(3)}"  # where an operator-style NeMo would pull with the NGC key
    env = {
        "K8S_AUTH_KUBECONFIG": vanilla_kubeconfig,
        "KUBECONFIG": vanilla_kubeconfig,
        "PATH": tool_env["PATH"],
        "HELM_PLUGINS": tool_env.get("HELM_PLUGINS", ""),
        "FLYWHEEL_FIXTURE_CHARTS": fixture_charts,
        "FLYWHEEL_API_URL": demo_api.url,
        "FLYWHEEL_ES_URL": demo_api.es_url,
        "FLYWHEEL_DEMO_LOGS": str(
            write_logs(tmp_path / "demo-logs.jsonl", 1000, workload_id="primary_assistant", client_id="aiva")
        ),
    }
    try:
        _demo_run_and_scan(vanilla, env, tool_env, demo_api, tmp_path, started, secrets, hub, embedding, creds_ns, repo)
    finally:
        repo.shutdown()
        hub.shutdown()
        embedding.shutdown()
        # leave the shared cluster as found: later tests expect no releases
        gone = play("playbooks/uninstall.yml", {}, tmp_path / "uninstall.tasks", inventory="inventories/local", env=env)
        assert gone.returncode == 0, gone.output[-4000:]
        try:
            client.CoreV1Api(vanilla).delete_namespace(creds_ns)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


# role variable prefix -> the fixture chart (name-version.tgz) it installs from the repository
REPO_CHARTS = {
    "gpu_operator": "gpu-operator",
    "nim_operator": "k8s-nim-operator",
    "nemo_platform_volcano": "volcano",
    "flywheel": "nvidia-blueprint-data-flywheel",
}


def _demo_run_and_scan(vanilla, env, tool_env, demo_api, tmp_path, started, secrets, hub, embedding, creds_ns, repo):
    vars_file = tmp_path / "vault-decrypted.yml"  # the operator's input, removed before the scan
    vars_file.write_text(
        json.dumps({var: secrets[name] for name, (names, _env) in SECRET_VARS.items() for var in names})
    )
    env = {**env, **{var: secrets[name] for name, (_names, envs) in SECRET_VARS.items() for var in envs}}
    result = play(
        "site.yml",
        {
            "flywheel_run_wait_sleep": 1,
            "flywheel_run_progress_interval": 1,
            "preflight_hf_endpoint": hub.url,
            "preflight_hf_models": [GATED],
            "preflight_embedding_url": embedding.url + "/v1",
            "flywheel_prereqs_credential_namespaces": [creds_ns],
            # the charts from the authenticated repository standing for NGC: no credentials given but the key
            "flywheel_ngc_hosts": ["127.0.0.1"],
            **{f"{prefix}_chart_ref": chart for prefix, chart in REPO_CHARTS.items()},
            **{f"{prefix}_chart_repo_url": repo.url for prefix in REPO_CHARTS},
        },
        tmp_path / "demo.tasks",
        inventory="inventories/local",
        env=env,
        extra_args=["-e", f"@{vars_file}"],
        verbosity=3,
    )
    vars_file.unlink()
    assert result.returncode == 0, result.output[-4000:]
    assert "<127.0.0.1> EXEC" in result.output or "ESTABLISH LOCAL CONNECTION" in result.output, "not -vvv output"
    # the bearer token really went to the API (so the no_log path was exercised, not skipped)
    assert control(demo_api, "/_sim/stats").get("with Authorization header", 0) > 0
    # the HF token read the gated repository (only it may) and the embedding key passed the simulator's check
    assert "1 of 1 repositories readable" in result.output, result.output[-3000:]
    assert embedding.stats.get("POST /v1/embeddings", 0) == 1
    # every chart came from the repository that requires the NGC key, with it (preflight read its index too)
    served = sorted(k.split()[1] for k, n in repo.stats.items() if k.startswith("200 ") and k.endswith(".tgz") and n)
    assert [name.split("/")[-1].rsplit("-", 1)[0] for name in served] == sorted(REPO_CHARTS.values()), repo.stats
    assert repo.stats["200 /index.yaml"] >= 1 and not [k for k in repo.stats if k.startswith("401")], repo.stats
    # the NGC key and HF token are in the credential Secrets flywheel_prereqs wrote (and nowhere else)
    stored = [
        base64.b64decode(v).decode()
        for sec in client.CoreV1Api(vanilla).list_namespaced_secret(creds_ns).items
        for v in (sec.data or {}).values()
    ]
    assert any(secrets["ngc_api_key"] in v for v in stored), "flywheel_prereqs wrote no NGC credential Secret"
    assert any(secrets["hf_token"] in v for v in stored), "flywheel_prereqs wrote no Hugging Face Secret"

    leaks = scan_text(result.output, secrets, "ansible-playbook -vvv output")
    leaks += scan_cluster(vanilla, secrets)

    releases = json.loads(
        subprocess.run(
            ["helm", "list", "-A", "-a", "-o", "json"], capture_output=True, text=True, env=tool_env, check=True
        ).stdout
        or "[]"
    )
    assert "data-flywheel" in {r["name"] for r in releases}, f"the demo installed no flywheel chart: {releases}"
    core = client.CoreV1Api(vanilla)
    helm_configmaps = core.list_config_map_for_all_namespaces(label_selector="owner=helm").items
    assert not helm_configmaps, "helm keeps release records (with their values) in ConfigMaps"
    for rel in releases:
        records = core.list_namespaced_secret(rel["namespace"], label_selector=f"owner=helm,name={rel['name']}").items
        assert records and all(r.type == "helm.sh/release.v1" for r in records), f"{rel['name']}: no release Secret"
        values = json.loads(
            subprocess.run(
                ["helm", "get", "values", "-a", "-o", "json", "-n", rel["namespace"], rel["name"]],
                capture_output=True,
                text=True,
                env=tool_env,
                check=True,
            ).stdout
        )
        if rel["name"] == "data-flywheel":
            for key, name in CHART_SECRETS.items():
                assert values["secrets"].pop(key) == secrets[name], f"the chart did not get {name} as secrets.{key}"
        leaks += scan_text(json.dumps(values), secrets, f"helm values of {rel['namespace']}/{rel['name']}")

    clusters_dir = Path(os.environ.get("DFW_CLUSTERS_DIR") or Path.home() / ".cache/dataflywheel-blueprint/clusters")
    roots = [
        (ROOT, 0),  # the whole work tree (reports/ included), whatever its age
        (Path.home() / ".ansible", started),
        (Path("/tmp"), started),  # noqa: S108 - scanning, not writing
        (clusters_dir, started),  # kube-apiserver, etcd and kwok logs of the local cluster
        (Path.home() / ".config" / "helm", started),  # helm's repositories.yaml and registry config.json
        (Path.home() / ".cache" / "helm", started),  # helm's repository index cache
    ]
    if not ansible_tmp().startswith("/tmp/"):  # noqa: S108 - the runs' TMPDIR (tests/harness.py) elsewhere
        roots.append((Path(ansible_tmp()), started))
    file_leaks, scanned = scan_paths(
        roots,
        secrets,
        # etcd's data is where the API server keeps Secret objects themselves (the local cluster has no
        # encryption at rest); what is NOT a Secret was scanned through the API above
        skip=set(clusters_dir.glob("kwok/clusters/*/etcd")),
    )
    leaks += file_leaks
    assert (ROOT / "reports" / "local-cluster" / "report.json").exists(), "the demo wrote no report"
    assert scanned > 10, f"only {scanned} files scanned"
    assert not leaks, "\n".join(str(x) for x in leaks)
