"""The cluster scan finds a secret copied into a non-Secret object and ignores Secrets."""

from __future__ import annotations

import base64
import secrets as pysecrets

import pytest
from kubernetes import client

from tests.integration.secret_scan import scan_cluster

pytestmark = pytest.mark.cluster


def test_scan_cluster_finds_leaks_outside_secrets(vanilla, namespace):
    value = "hf_" + pysecrets.token_hex(16)
    core = client.CoreV1Api(vanilla)
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="ok"), string_data={"token": value})
    )
    assert scan_cluster(vanilla, {"hf": value}, namespaces=[namespace]) == []

    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="leaky"),
            data={"config.yaml": f"hf_token: {base64.b64encode(value.encode()).decode()}"},
        ),
    )
    leaks = scan_cluster(vanilla, {"hf": value}, namespaces=[namespace])
    assert [str(x) for x in leaks] == [f"hf (base64+0) found in v1/ConfigMap {namespace}/leaky"]
