"""module_utils/flywheel_config.py and the flywheel chart's post-renderer (roles/flywheel/files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.dataflywheel.blueprint.plugins.module_utils import flywheel_config as fc
from tests import upstream

ROOT = Path(__file__).resolve().parents[2]
STAMP = ROOT / "roles" / "flywheel" / "files" / "df_config_stamp.py"
NMP = {
    "nemo_base_url": "http://nemo-gateway.fw.svc.cluster.local",
    "nim_base_url": "http://fw-nim-proxy.fw.svc.cluster.local:8000",
    "datastore_base_url": "http://fw-data-store.fw.svc.cluster.local:3000",
    "nmp_namespace": "dfwbp",
}
NIMS = [{"model_name": "meta/llama-3.2-1b-instruct", "context_length": 8192, "tag": "1.8.3"}]
REMOTE_JUDGE = {"deployment_type": "remote", "url": "https://judge.example/v1/chat/completions", "model_name": "j"}
REMOTE_EMB = {"deployment_type": "remote", "url": "https://emb.example/v1/embeddings", "model_name": "e"}
LOCAL_JUDGE = {"deployment_type": "local", "model_name": "meta/llama-3.3-70b-instruct", "tag": "1.8.6", "gpus": 2,
               "pvc_size": "30Gi"}  # fmt: skip


def config(**kw):
    args = {"nims": NIMS, "llm_judge": REMOTE_JUDGE, "embedding": REMOTE_EMB, **kw}
    return fc.app_config(kw.pop("nmp", NMP), **{k: v for k, v in args.items() if k != "nmp"})


def test_role_defaults_equal_the_module_defaults():
    defaults = yaml.safe_load((ROOT / "roles/flywheel/defaults/main.yml").read_text())
    for name, block in fc.BLOCK_DEFAULTS.items():
        assert defaults[name] == block, name


def test_remote_judge_drops_every_chart_default_key():
    judge = config()["llm_judge_config"]
    assert judge == {**dict.fromkeys(fc.MODEL_KEYS), **REMOTE_JUDGE}
    # each key of the chart's default judge that a remote judge does not read is sent as null
    chart = upstream.chart_values("data-flywheel")["foundationalFlywheelServer"]["config"]["llm_judge_config"]
    for key in set(chart) - {"deployment_type", "url", "model_name"}:
        assert key in judge and judge[key] is None, key
    assert fc.expected(judge) == REMOTE_JUDGE


def test_local_judge_needs_its_deployment_keys():
    assert fc.expected(config(llm_judge=LOCAL_JUDGE)["llm_judge_config"]) == LOCAL_JUDGE
    for key in ("tag", "gpus", "pvc_size"):
        partial = {k: v for k, v in LOCAL_JUDGE.items() if k != key}
        with pytest.raises(fc.FlywheelConfigError, match=f"flywheel_llm_judge.{key}"):
            config(llm_judge=partial)
    with pytest.raises(fc.FlywheelConfigError, match="flywheel_llm_judge has keys .* gpus"):
        config(llm_judge={**REMOTE_JUDGE, "gpus": 4})


def test_embedding_input_type_is_checked_not_sent():
    emb = config(embedding={**REMOTE_EMB, "input_type": "query"})["icl_config"]["similarity_config"]
    assert "input_type" not in emb["embedding_nim_config"]
    with pytest.raises(fc.FlywheelConfigError, match="always sends input_type"):
        config(embedding={**REMOTE_EMB, "input_type": "passage"})


def test_partial_blocks_are_completed_from_the_role_defaults_and_checked_as_rendered():
    split = config(data_split={"eval_size": 40})["data_split_config"]
    assert split == {**fc.BLOCK_DEFAULTS["flywheel_data_split"], "eval_size": 40}
    # the example: a partial split whose min_total_records exceeds the limit it will really get
    with pytest.raises(
        fc.FlywheelConfigError, match=r"min_total_records \(5000\) is above flywheel_data_split.limit \(1000\)"
    ):
        config(data_split={"eval_size": 40, "min_total_records": 5000})
    assert config(data_split={"min_total_records": 5000, "limit": None})["data_split_config"]["limit"] is None
    with pytest.raises(fc.FlywheelConfigError, match="max_examples .* cannot exceed flywheel_data_split.eval_size"):
        config(icl={"max_examples": 5}, data_split={"eval_size": 4})
    with pytest.raises(fc.FlywheelConfigError, match="flywheel_data_split has keys .* eval_sise"):
        config(data_split={"eval_sise": 40})
    # AWX surveys send strings
    assert config(data_split={"eval_size": "30"})["data_split_config"]["eval_size"] == 30
    with pytest.raises(fc.FlywheelConfigError, match="flywheel_training.epochs='two' must be an integer"):
        config(training={"epochs": "two"})


def test_uniform_selection_sends_no_similarity_config():
    icl = config(icl={"example_selection": "uniform_distribution"})["icl_config"]
    assert icl["similarity_config"] is None and "relevance_ratio" not in icl


def test_nmp_config_has_no_placeholder_hosts():
    with pytest.raises(fc.FlywheelConfigError, match="flywheel_nmp_config.nemo_base_url is not set"):
        config(nmp=fc.derive_nmp({}, "", {}, "dfwbp"))
    derived = fc.derive_nmp(
        {
            "nim_proxy": "",
            "data_store": NMP["datastore_base_url"],
            "nims": {"m": "http://m.nemo.svc.cluster.local:8000"},
        },
        NMP["nemo_base_url"],
        {},
        "dfwbp",
    )
    assert derived["nim_base_url"] == "http://m.nemo.svc.cluster.local:8000"
    assert "test" not in json.dumps(config(nmp=derived)["nmp_config"])
    assert fc.derive_nmp({}, "", {**NMP, "nmp_namespace": "x"}, "dfwbp")["nmp_namespace"] == "x"


def test_nims_are_checked():
    with pytest.raises(fc.FlywheelConfigError, match=r"flywheel_nims\[0\].context_length is required"):
        config(nims=[{"model_name": "m"}])
    with pytest.raises(fc.FlywheelConfigError, match="customizer_configs.target is required"):
        config(nims=[{"model_name": "m", "context_length": 1, "customization_enabled": True, "customizer_configs": {}}])


def stamp(manifests: list[dict], expected: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    return subprocess.run(
        [sys.executable, str(STAMP), "--expect", str(tmp_path / "expected.json"), "--report", str(tmp_path / "m.txt")],
        input=yaml.safe_dump_all(manifests),
        capture_output=True,
        text=True,
        check=False,
    )


def deployment(name, mounts):
    volumes = [{"name": "config", "configMap": {"name": "df-config"}}] if mounts else []
    return {"kind": "Deployment", "metadata": {"name": name}, "spec": {"template": {"spec": {"volumes": volumes}}}}


def test_post_renderer_stamps_the_rendered_config_and_refuses_a_mismatch(tmp_path):
    want = fc.expected(config())
    cm = {"kind": "ConfigMap", "metadata": {"name": "df-config"}, "data": {"config.yaml": yaml.safe_dump(want)}}
    ok = stamp([cm, deployment("df-api-deployment", True), deployment("df-redis-deployment", False)], want, tmp_path)
    assert ok.returncode == 0, ok.stderr
    docs = list(yaml.safe_load_all(ok.stdout))
    api, redis = docs[1], docs[2]
    digest = api["spec"]["template"]["metadata"]["annotations"]["dataflywheel.blueprint/config-sha256"]
    assert len(digest) == 64 and "metadata" not in redis["spec"]["template"]

    # the chart's default merged a key in: refused, with the key named
    leaked = {**want, "llm_judge_config": {**want["llm_judge_config"], "gpus": 4}}
    cm["data"]["config.yaml"] = yaml.safe_dump(leaked)
    bad = stamp([cm, deployment("df-api-deployment", True)], want, tmp_path)
    assert bad.returncode != 0 and bad.stdout == ""
    assert "llm_judge_config.gpus: rendered 4" in (tmp_path / "m.txt").read_text()
