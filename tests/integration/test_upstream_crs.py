"""Every custom resource the roles render is accepted by NVIDIA's REAL CRDs, CEL rules included, for
each NIM Operator version the collection supports (v2.0.2 and v3.1.2) and the GPU Operator's
(v26.7.0); a resource missing one required field, or breaking a CEL rule, is refused.

The CRs come from the roles themselves (tests/integration/data/render_roles.yml, with their defaults):
nemo_platform's NemoDatastore, NemoEntitystore, NemoCustomizer, NemoEvaluator, NemoGuardrail,
NIMCache and NIMService, flywheel_promote's NIMService, gpu_operator's ClusterPolicy. They are
created with server-side field validation Strict, so an unknown field is an error too.

The local cluster serves one NIM Operator version's CRDs under apps.nvidia.com (tests/sim/cluster.py,
knob DFW_NIM_OPERATOR_VERSION). The other version's CRDs are served for this test under a group of
its own (<version>.crd-test.apps.nvidia.com): the files are upstream's with only the group renamed, so
schema and CEL rules are byte for byte the real ones, and the shared cluster's CRDs are not switched
under other tests.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests import upstream

pytestmark = pytest.mark.cluster

GROUP = "apps.nvidia.com"


def served_version(api) -> str:
    names = {c.metadata.name for c in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    assert "nemocustomizers.apps.nvidia.com" in names, "the local cluster serves no NIM Operator CRDs"
    return "v3.1.2" if "nimbuilds.apps.nvidia.com" in names else "v2.0.2"


def renamed_group(version: str) -> str:
    return f"{version.replace('.', '')}.crd-test.{GROUP}"


def wait_established(ext, name: str) -> None:
    for _attempt in range(300):
        conds = ext.read_custom_resource_definition(name).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conds):
            return
        time.sleep(0.1)
    raise AssertionError(f"CRD {name} not Established")


@pytest.fixture(scope="module")
def crd_groups(vanilla):
    """version -> the API group its REAL CRDs are served under on the local cluster."""
    served = served_version(vanilla)
    ext = client.ApiextensionsV1Api(vanilla)
    groups, created = {served: GROUP}, []
    for version in upstream.NIM_OPERATOR_VERSIONS:
        if version == served:
            continue
        group = renamed_group(version)
        for crd in upstream.nim_operator_crds(version):
            body = copy.deepcopy(crd)
            body["spec"]["group"] = group
            body["metadata"] = {"name": f"{body['spec']['names']['plural']}.{group}"}
            try:
                ext.create_custom_resource_definition(body)
            except ApiException as err:
                if err.status != 409:
                    raise
            created.append(body["metadata"]["name"])
        groups[version] = group
    for name in created:
        wait_established(ext, name)
    yield groups
    for name in created:
        ext.delete_custom_resource_definition(name)


@pytest.fixture(params=upstream.NIM_OPERATOR_VERSIONS)
def rendered(request, roles_rendered):
    version = request.param
    return version, {**roles_rendered, "nemo_crs": roles_rendered["crs_by_version"][version.lstrip("v")]}


def plural_of(kind: str, version: str) -> str:
    return upstream.crd(kind, version)["spec"]["names"]["plural"]


def create(api, group: str, namespace: str, body: dict, version: str):
    body = copy.deepcopy(body)
    body["apiVersion"] = f"{group}/v1alpha1"
    body["metadata"]["namespace"] = namespace
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        group, "v1alpha1", namespace, plural_of(body["kind"], version), body, field_validation="Strict"
    )


def refused(api, group: str, namespace: str, body: dict, version: str, status: int = 422) -> str:
    with pytest.raises(ApiException) as err:
        create(api, group, namespace, body, version)
    assert err.value.status == status, err.value.body
    return json.loads(err.value.body)["message"]


@pytest.fixture
def scratch(vanilla):
    name = f"crs-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(vanilla)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def contained(sent, stored) -> bool:
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(k in stored and contained(v, stored[k]) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(stored, list) and len(sent) == len(stored) and all(map(contained, sent, stored))
    return sent == stored


def rendered_crs(out: dict) -> list[dict]:
    crs = list(out["nemo_crs"])
    for nim in out["nim_objects"]:
        crs += [nim["nimcache"], nim["nimservice"]]
    crs.append(out["promote_nimservice"])
    return crs


def test_every_rendered_cr_is_accepted_by_the_real_crds(vanilla, crd_groups, rendered, scratch):
    version, out = rendered
    crs = rendered_crs(out)
    kinds = [c["kind"] for c in crs]
    for kind in ("NemoDatastore", "NemoEntitystore", "NemoCustomizer", "NemoEvaluator", "NemoGuardrail"):
        assert kind in kinds, kinds
    assert kinds.count("NIMService") >= 2 and "NIMCache" in kinds, kinds
    # the shapes differ where the CRDs do: NemoGuardrail.databaseConfig exists from 3.0 on
    guardrail = next(c for c in crs if c["kind"] == "NemoGuardrail")
    assert ("databaseConfig" in guardrail["spec"]) == (version == "v3.1.2")
    for cr in crs:
        made = create(vanilla, crd_groups[version], scratch, cr, version)
        assert made["metadata"]["uid"], cr["kind"]
        # every field survived (nothing pruned as unknown); the CRD's defaults may add fields
        assert contained(cr["spec"], made["spec"]), (cr["kind"], cr["spec"], made["spec"])


def test_a_cr_missing_a_required_field_or_breaking_a_cel_rule_is_refused(vanilla, crd_groups, rendered, scratch):
    """The negative control: proof that the real schemas (required lists and CEL rules) are loaded."""
    version, out = rendered
    group = crd_groups[version]
    customizer = copy.deepcopy(next(c for c in out["nemo_crs"] if c["kind"] == "NemoCustomizer"))
    del customizer["spec"]["mlflow"]
    assert "spec.mlflow: Required value" in refused(vanilla, group, scratch, customizer, version)

    evaluator = copy.deepcopy(next(c for c in out["nemo_crs"] if c["kind"] == "NemoEvaluator"))
    del evaluator["spec"]["evaluationImages"]
    assert "spec.evaluationImages: Required value" in refused(vanilla, group, scratch, evaluator, version)

    # CEL (x-kubernetes-validations on spec.expose.ingress, in both versions)
    store = copy.deepcopy(next(c for c in out["nemo_crs"] if c["kind"] == "NemoEntitystore"))
    store["spec"]["expose"]["ingress"] = {"enabled": True}
    message = refused(vanilla, group, scratch, store, version)
    assert "spec.expose.ingress" in message and "Invalid value" in message, message

    # a field the version does not have is an error under Strict validation (here v3's router on v2)
    if version == "v2.0.2":
        service = copy.deepcopy(out["promote_nimservice"])
        service["spec"]["expose"]["router"] = {}
        assert 'unknown field "spec.expose.router"' in refused(vanilla, group, scratch, service, version, 400)


def test_the_cluster_policy_is_accepted_and_needs_its_nine_sections(vanilla, roles_rendered):
    policy = copy.deepcopy(roles_rendered["cluster_policy"])
    policy["metadata"]["name"] = f"crs-test-{uuid.uuid4().hex[:6]}"
    custom = client.CustomObjectsApi(vanilla)
    made = custom.create_cluster_custom_object(
        "nvidia.com", "v1", "clusterpolicies", policy, dry_run="All", field_validation="Strict"
    )
    assert contained(policy["spec"], made["spec"])
    required = upstream.crd_schema("ClusterPolicy")["properties"]["spec"]["required"]
    assert sorted(policy["spec"]) >= sorted(required)
    del policy["spec"]["dcgmExporter"]
    with pytest.raises(ApiException) as err:
        custom.create_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", policy, dry_run="All")
    assert err.value.status == 422 and "spec.dcgmExporter: Required value" in err.value.body


REFUSE = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/dataflywheel.blueprint.k8s:
      kubeconfig: "{{ kubeconfig }}"
  tasks:
    - ansible.builtin.include_role:
        name: dataflywheel.blueprint.nemo_platform
"""


def test_nemo_platform_refuses_crs_for_the_other_operator_line(
    vanilla, vanilla_kubeconfig, ansible_playbook, scratch, tmp_path
):
    """CRs shaped for one NIM Operator line on a cluster serving the other: the role stops naming
    nemo_platform_nim_operator_version, before it creates anything."""
    served = served_version(vanilla)
    other = next(v for v in upstream.NIM_OPERATOR_VERSIONS if v != served)
    playbook = tmp_path / "refuse.yml"
    playbook.write_text(REFUSE)
    run = ansible_playbook(
        playbook,
        {
            "kubeconfig": vanilla_kubeconfig,
            "ansible_python_interpreter": sys.executable,
            "nemo_platform_style": "operator",
            "nemo_platform_namespace": scratch,
            "nemo_platform_db_password": "unused",
            "nemo_platform_volcano_enabled": False,
            "nemo_platform_nim_operator_version": other.lstrip("v"),
        },
        inventory="localhost,",
        args=["-c", "local"],
    )
    out = " ".join(run.stdout.split())
    assert run.returncode != 0
    assert f"nemo_platform_nim_operator_version={other.lstrip('v')}" in out, run.stdout[-3000:]
    assert "Fix: set nemo_platform_nim_operator_version" in out
    assert client.CoreV1Api(vanilla).list_namespaced_secret(scratch).items == []
