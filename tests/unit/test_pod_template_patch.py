"""The helm post-renderer roles/cluster_common/files/pod_template_patch.py: Pod metadata at creation, env of
named workloads, and a digest of exactly the Secrets each Pod reads (run as helm runs it: stdin to stdout)."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "cluster_common" / "files" / "pod_template_patch.py"
SPEC = importlib.util.spec_from_file_location("pod_template_patch", SCRIPT)
ptp = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ptp)

PCAI = {
    "labels": {"hpe-ezua/app": "data-flywheel"},
    "annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432,9200,6379,27017"},
    "job_annotations": {"sidecar.istio.io/inject": "false"},
    "env": {"workloads": ["df-api-deployment"], "vars": {"HOME": "/tmp"}},
    "secret_checksums": True,
}


def deployment(name, env=None, env_from=None, labels=None):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, **(labels or {})}},
                "spec": {"containers": [{"name": "main", "image": "x", "env": env or [], "envFrom": env_from or []}]},
            },
        },
    }


def secret(name, value):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": {"KEY": value}}


def key_ref(secret_name):
    return [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "KEY"}}}]


def manifests(ngc="bmdj", nvidia="bnZpZGlh"):
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"containers": [{"name": "m", "image": "x"}]}}},
    }
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cleanup"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}},
    }
    return [
        secret("ngc-api", ngc),
        secret("nvidia-api", nvidia),
        deployment("df-api-deployment", env=key_ref("nvidia-api") + [{"name": "HOME", "value": "/"}]),
        deployment("nemo-customizer", env_from=[{"secretRef": {"name": "ngc-api"}}]),
        deployment("df-elasticsearch-deployment"),
        job,
        cron,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "df-config"}, "data": {"a": "b"}},
    ]


def by_name(docs):
    return {d["metadata"]["name"]: d for d in docs}


def template(doc):
    return ptp.pod_template(doc)


def test_metadata_on_every_pod_template_job_annotations_only_on_jobs():
    docs = by_name(ptp.patch(manifests(), PCAI))
    for name in ("df-api-deployment", "nemo-customizer", "df-elasticsearch-deployment", "migrate", "cleanup"):
        meta = template(docs[name])["metadata"]
        assert meta["labels"]["hpe-ezua/app"] == "data-flywheel", name
        assert meta["annotations"]["traffic.sidecar.istio.io/excludeOutboundPorts"] == "5432,9200,6379,27017", name
        jobby = name in ("migrate", "cleanup")
        assert (meta["annotations"].get("sidecar.istio.io/inject") == "false") is jobby, name
    assert template(docs["df-api-deployment"])["metadata"]["labels"]["app"] == "df-api-deployment", "labels kept"
    assert "annotations" not in docs["df-config"]["metadata"], "not a workload: untouched"


def test_env_set_on_the_named_workloads_only_replacing_a_value_of_the_chart():
    docs = by_name(ptp.patch(manifests(), PCAI))
    api_env = template(docs["df-api-deployment"])["spec"]["containers"][0]["env"]
    assert [e for e in api_env if e["name"] == "HOME"] == [{"name": "HOME", "value": "/tmp"}]
    assert any(e["name"] == "KEY" for e in api_env), "the chart's own env is kept"
    es_env = template(docs["df-elasticsearch-deployment"])["spec"]["containers"][0]["env"]
    assert es_env == []


def test_secret_digest_covers_exactly_the_secrets_a_pod_reads():
    first = by_name(ptp.patch(manifests(), PCAI))
    rotated = by_name(ptp.patch(manifests(ngc="cm90YXRlZA=="), PCAI))
    again = by_name(ptp.patch(manifests(), PCAI))

    def digest(docs, name):
        return (template(docs[name])["metadata"].get("annotations") or {}).get(ptp.CHECKSUM)

    assert digest(first, "nemo-customizer") and digest(first, "df-api-deployment")
    assert digest(first, "df-elasticsearch-deployment") is None, "reads no Secret: nothing to roll it"
    assert digest(rotated, "nemo-customizer") != digest(first, "nemo-customizer"), "rotated NGC key rolls its reader"
    assert digest(rotated, "df-api-deployment") == digest(first, "df-api-deployment"), "other readers untouched"
    assert digest(again, "nemo-customizer") == digest(first, "nemo-customizer"), "same keys, same manifests"
    assert "bmdj" not in json.dumps([template(d)["metadata"] for d in first.values() if template(d)])


def test_empty_settings_change_nothing():
    assert ptp.patch(manifests(), {}) == manifests()


def test_runs_as_helm_runs_it(tmp_path):
    """stdin to stdout with the settings in DFW_POD_PATCH, through the controller's Python."""
    text = yaml.safe_dump_all(manifests())
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        input=text,
        capture_output=True,
        text=True,
        env=dict(os.environ, DFW_POD_PATCH=json.dumps(PCAI)),
        check=True,
    )
    docs = by_name(list(yaml.safe_load_all(proc.stdout)))
    assert template(docs["migrate"])["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert len(docs) == len(manifests())


def test_documents_it_does_not_patch_pass_through_verbatim_and_block_strings_stay_blocks():
    """helm-diff shows the post-rendered manifests: an untouched ConfigMap keeps its text, and a multi-line
    string of a patched document stays a literal block, so a config change reads as line edits."""
    text = (
        "---\n# Source: chart/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: df-config\n"
        "data:\n  config.yaml: |\n    eval_size: 100\n    limit: 1000\n"
        "---\n# Source: chart/templates/api.yaml\n"
        + yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "df-api-deployment"},
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"script": "line one\nline two\n"}},
                        "spec": {"containers": [{"name": "api", "image": "x"}]},
                    }
                },
            }
        )
    )
    out = ptp.render(text, PCAI)
    assert "# Source: chart/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap" in out
    assert "  config.yaml: |\n    eval_size: 100\n" in out
    assert "script: |\n" in out and "line one\n" in out
    docs = by_name(list(yaml.safe_load_all(out)))
    assert template(docs["df-api-deployment"])["metadata"]["annotations"]["script"] == "line one\nline two\n"
    assert docs["df-config"]["data"]["config.yaml"] == "eval_size: 100\nlimit: 1000\n"


def test_a_chain_that_names_the_patch_again_ends(tmp_path):
    """A post-renderer chain whose next step is (a wrapper of) this patch again runs it once more and ends, instead
    of forking itself until the machine runs out of memory."""
    wrapper = tmp_path / "post-render"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {SCRIPT}\n")
    wrapper.chmod(0o755)
    text = yaml.safe_dump_all(manifests())
    proc = subprocess.run(
        [str(wrapper)],
        input=text,
        capture_output=True,
        text=True,
        env=dict(os.environ, DFW_POD_PATCH=json.dumps(PCAI), DFW_POST_RENDER_NEXT=str(wrapper)),
        timeout=60,
        check=True,
    )
    docs = by_name(list(yaml.safe_load_all(proc.stdout)))
    assert template(docs["migrate"])["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert len(docs) == len(manifests())


def test_the_roles_post_renderers_chain_patch_then_df_config_check(tmp_path):
    """What helm runs for the flywheel release: cluster_common's files/post-render (the patch), then the flywheel
    role's files/post-render (df-config check and stamp), each wrapper running the Python named in the environment;
    a df-config that differs from the expected one fails with the report written, nothing on stdout."""
    config = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "df-config"},
        "data": {"config.yaml": "a: 1\n"},
    }
    api = deployment("df-api-deployment")
    api["spec"]["template"]["spec"]["volumes"] = [{"name": "c", "configMap": {"name": "df-config"}}]
    text = yaml.safe_dump_all([config, api])
    report = tmp_path / "mismatch.txt"
    env = dict(
        os.environ,
        DFW_POST_RENDER_PYTHON=sys.executable,
        DFW_POD_PATCH=json.dumps(PCAI),
        DFW_POST_RENDER_NEXT=str(ROOT / "roles" / "flywheel" / "files" / "post-render"),
        DFW_DF_CONFIG_REPORT=str(report),
    )
    wrapper = ROOT / "roles" / "cluster_common" / "files" / "post-render"
    run = functools.partial(subprocess.run, [str(wrapper)], input=text, capture_output=True, text=True, timeout=60)
    good = run(env=dict(env, DFW_DF_CONFIG_EXPECTED='{"a": 1}'))
    assert good.returncode == 0, good.stderr
    docs = by_name(list(yaml.safe_load_all(good.stdout)))
    annotations = template(docs["df-api-deployment"])["metadata"]["annotations"]
    assert (
        "dataflywheel.blueprint/config-sha256" in annotations
        and "hpe-ezua/app" in template(docs["df-api-deployment"])["metadata"]["labels"]
    )
    assert not report.exists()
    bad = run(env=dict(env, DFW_DF_CONFIG_EXPECTED='{"a": 2}'))
    assert bad.returncode != 0 and bad.stdout == ""
    assert report.read_text() == "a: rendered 1, variables 2\n"
