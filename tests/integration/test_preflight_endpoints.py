"""Embedding-dimension and Hugging Face token checks of roles/preflight, against the embedding NIM
SIMULATOR and the Hugging Face Hub SIMULATOR (real HTTP servers on loopback, tests/sim)."""

import pytest

from tests.sim.embedding_nim.simulator import start as start_embedding
from tests.sim.hf_hub.simulator import start as start_hub

from .remediate_run import run_role


GATED = "meta-llama/Llama-3.2-1B-Instruct"
PUBLIC = "nvidia/public-tokenizer"
GOOD_TOKEN = "hf_sim_granted_0123456789abcdef"
UNGRANTED_TOKEN = "hf_sim_not_granted_fedcba987654"
# a test value the embedding NIM SIMULATOR requires; the tests prove it never appears in the output
EMBEDDING_KEY = "nvapi-sim-embedding-secret-42"


@pytest.fixture
def embedding():
    server = start_embedding(api_key=EMBEDDING_KEY)
    yield server
    server.shutdown()


@pytest.fixture
def hub():
    server = start_hub()
    server.state.tokens.update({GOOD_TOKEN: "granted-user", UNGRANTED_TOKEN: "other-user"})
    server.state.add_repo(GATED, gated="manual", granted={"granted-user"})
    server.state.add_repo(PUBLIC)
    yield server
    server.shutdown()


def emb_vars(server, model):
    return {
        "preflight_embedding_url": server.url + "/v1",
        "preflight_embedding_model": model,
        "preflight_embedding_api_key": EMBEDDING_KEY,
    }


def test_simulator_embedding_dimension_matching_model_passes_with_one_call(embedding, tmp_path):
    run = run_role(
        emb_vars(embedding, "nvidia/llama-3.2-nv-embedqa-1b-v2"),
        tasks_from="embedding",
        role="preflight",
        tmp_path=tmp_path,
    )
    assert run.ok, run.text()[-3000:]
    assert run.changed == 0
    assert "returns 2048-dimensional vectors; the index expects 2048" in run.text()
    assert embedding.stats["POST /v1/embeddings"] == 1
    assert EMBEDDING_KEY not in run.text()


def test_simulator_embedding_dimension_mismatch_fails_early_naming_the_variable(embedding, tmp_path):
    run = run_role(
        emb_vars(embedding, "nvidia/nv-embedqa-e5-v5"), tasks_from="embedding", role="preflight", tmp_path=tmp_path
    )
    assert not run.ok
    msg = run.failure_msg()
    assert "preflight_embedding_model=nvidia/nv-embedqa-e5-v5 returns 1024-dimensional" in msg
    assert "expects 2048" in msg and "Bulk Indexing Error" in msg
    assert "set preflight_embedding_dimension to 1024" in msg
    assert embedding.stats["POST /v1/embeddings"] == 1
    assert EMBEDDING_KEY not in run.text()


def test_simulator_embedding_endpoint_errors_name_url_and_model(embedding, tmp_path):
    run = run_role(
        emb_vars(embedding, "nvidia/no-such-model"), tasks_from="embedding", role="preflight", tmp_path=tmp_path
    )
    assert not run.ok
    msg = run.failure_msg()
    assert "preflight_embedding_url=" in msg and "answered 404" in msg
    assert "preflight_embedding_model=nvidia/no-such-model" in msg
    wrong_key = dict(
        emb_vars(embedding, "nvidia/llama-3.2-nv-embedqa-1b-v2"), preflight_embedding_api_key="nvapi-wrong"
    )
    run = run_role(wrong_key, tasks_from="embedding", role="preflight", tmp_path=tmp_path)
    assert not run.ok and "answered 401" in run.failure_msg() and "preflight_embedding_api_key" in run.failure_msg()


def test_simulator_embedding_preflight_runs_before_the_cluster_is_read(embedding, tmp_path):
    """In the whole preflight the embedding check fails before the role reads any cluster (none is reachable)."""
    extra = emb_vars(embedding, "nvidia/nv-embedqa-e5-v5")
    run = run_role(
        extra, tasks_from="main", tmp_path=tmp_path, role="preflight", extra_env={"K8S_AUTH_KUBECONFIG": "/nonexistent"}
    )
    assert not run.ok and "1024-dimensional" in run.failure_msg()
    assert run.ran("Validate the inputs of every role") and not run.ran("Read the cluster")


def hf_vars(hub, token, models):
    return {"preflight_hf_endpoint": hub.url, "preflight_hf_token": token, "preflight_hf_models": models}


def test_simulator_hf_granted_token_passes(hub, tmp_path):
    run = run_role(
        hf_vars(hub, GOOD_TOKEN, [GATED, PUBLIC]), tasks_from="hf_token", role="preflight", tmp_path=tmp_path
    )
    assert run.ok, run.text()[-3000:]
    assert run.changed == 0
    assert "2 of 2 repositories readable" in run.text()
    assert hub.stats[f"GET /{GATED}/resolve/main/config.json"] == 1
    assert GOOD_TOKEN not in run.text()


def test_simulator_hf_gated_repo_403_names_repo_and_fix(hub, tmp_path):
    run = run_role(
        hf_vars(hub, UNGRANTED_TOKEN, [PUBLIC, GATED]), tasks_from="hf_token", role="preflight", tmp_path=tmp_path
    )
    assert not run.ok
    msg = run.failure_msg()
    assert f"403 gated repo (the token is valid but its account is not in the authorized list): {GATED};" in msg
    assert f"{hub.url}/{GATED}" in msg and "accept the licence" in msg and "preflight_hf_token" in msg
    assert PUBLIC not in msg.split("403 gated repo")[1].split(";")[0]
    assert UNGRANTED_TOKEN not in run.text()


def test_simulator_hf_invalid_token_missing_token_and_unknown_repo(hub, tmp_path):
    run = run_role(hf_vars(hub, "hf_sim_revoked", [GATED]), tasks_from="hf_token", role="preflight", tmp_path=tmp_path)
    assert not run.ok and "401 (token invalid, expired or revoked)" in run.failure_msg()
    assert "hf_sim_revoked" not in run.text()
    asked = hub.stats["total"]
    run = run_role(hf_vars(hub, "", [GATED]), tasks_from="hf_token", role="preflight", tmp_path=tmp_path)
    assert not run.ok and "preflight_hf_token is empty" in run.failure_msg() and "HF_TOKEN" in run.failure_msg()
    assert hub.stats["total"] == asked, "nothing is asked without a token"
    run = run_role(
        hf_vars(hub, GOOD_TOKEN, ["nobody/missing"]), tasks_from="hf_token", role="preflight", tmp_path=tmp_path
    )
    assert not run.ok and "404 repository not found: nobody/missing" in run.failure_msg()


def test_simulator_hf_preflight_runs_before_the_cluster_is_read(hub, tmp_path):
    extra = hf_vars(hub, UNGRANTED_TOKEN, [GATED])
    run = run_role(
        extra, tasks_from="main", tmp_path=tmp_path, role="preflight", extra_env={"K8S_AUTH_KUBECONFIG": "/nonexistent"}
    )
    assert not run.ok and "403 gated repo" in run.failure_msg()
    assert not run.ran("Read the cluster")
