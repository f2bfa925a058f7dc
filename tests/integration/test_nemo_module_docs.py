"""Every NeMo module and the promotion filter render in ansible-doc with their options, examples and returns."""

from __future__ import annotations


import pytest

from tests.harness import ansible_doc


@pytest.mark.parametrize(
    ("module", "options"),
    [
        ("nemo_evaluation_job", ("nemo_base_url", "nmp_uri", "config", "model", "api_endpoint", "wait", "log_lines")),
        ("nemo_customization_job_info", ("nemo_base_url", "nmp_uri", "job_id", "log_entries", "wait_timeout")),
        ("nemo_deployment", ("nemo_base_url", "name", "namespace", "model", "additional_envs", "wait")),
        ("nim_smoke_test", ("nim_url", "model", "prompt", "wait_timeout")),
        ("flywheel_job", ("nemo_base_url", "nemo_api_token")),
        ("flywheel_job_info", ("nemo_base_url", "nemo_api_token")),
    ],
)
def test_module_doc(module, options):
    doc = ansible_doc(f"dataflywheel.blueprint.{module}")[f"dataflywheel.blueprint.{module}"]
    for name in options:
        assert doc["doc"]["options"][name]["description"], f"{module}.{name}"
    assert doc["examples"].strip() and doc["return"]


def test_filter_doc():
    name = "dataflywheel.blueprint.flywheel_promotion_decision"
    doc = ansible_doc(name, plugin_type="filter")[name]["doc"]
    assert set(doc["options"]) == {"_input", "metric", "margin", "baseline"}
