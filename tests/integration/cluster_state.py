"""What a run left in the cluster, in two forms the reliability tests compare.

- `snapshot()`: every object's resourceVersion in the given namespaces plus the cluster-scoped
  objects of the given kinds. Two equal snapshots mean nothing was written in between (not even a
  no-op update: the API server bumps resourceVersion on every accepted write). The bad-input
  tests assert a failed run leaves it unchanged.
- `owned_state()`: the objects we own with volatile metadata removed (uid, resourceVersion,
  timestamps, managedFields, generated names, controller uids, a Pod's node and token volume
  name), and the run's namespace names replaced by placeholders, so a run into namespace A can
  be compared with one into namespace B.
  The interruption tests compare an interrupted-then-rerun run with an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from collections.abc import Iterable

from kubernetes import client, dynamic

# Never user data, or written by controllers on their own schedule.
SKIP_KINDS = {"Event", "Lease", "EndpointSlice", "Endpoints", "Binding", "ComponentStatus"}
VOLATILE_META = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
    "generation",
    "selfLink",
)
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# the projected ServiceAccount token volume the API server adds to every Pod, named at random
SA_TOKEN_VOLUME_RE = re.compile(r"kube-api-access-[a-z0-9]{5}")
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def served_resources(api: client.ApiClient) -> list:
    """Every resource the API server serves now. The kubernetes client keeps its discovery in a file named
    after the server's URL alone; local clusters reuse ports, so a file written for another cluster, or
    before a chart added its CRDs, would hide kinds without an error. Each call discovers afresh."""
    with tempfile.TemporaryDirectory(prefix="dfw-discovery-") as tmp:
        return list(dynamic.DynamicClient(api, cache_file=os.path.join(tmp, "discovery.json")).resources.search())


def _resources(api: client.ApiClient):
    for resource in served_resources(api):
        if (
            resource.kind in SKIP_KINDS
            or "list" not in (resource.verbs or [])
            or resource.kind.endswith("List")
            or "/" in resource.name
            or resource.kind.endswith("Review")
        ):
            continue
        yield resource


def _items(resource, namespace: str | None = None) -> list[dict]:
    try:
        if namespace is None:
            return resource.get().to_dict().get("items", [])
        return resource.get(namespace=namespace).to_dict().get("items", [])
    except Exception:  # noqa: BLE001 - aggregated or broken APIs have nothing of ours
        return []


def collect(
    api: client.ApiClient,
    namespaces: Iterable[str],
    cluster_kinds: Iterable[str] = (),
    cluster_name_match: str | None = None,
) -> dict[str, dict]:
    """Objects keyed "<group/version>/<Kind>/<namespace>/<name>": everything namespaced in
    `namespaces`, the Namespace objects themselves, and cluster-scoped objects of `cluster_kinds`
    (all of them, or those whose name contains `cluster_name_match`)."""
    wanted_ns = list(namespaces)
    kinds = set(cluster_kinds)
    out: dict[str, dict] = {}
    seen_groups: set[tuple[str, str]] = set()
    for resource in _resources(api):
        key_kind = (resource.group, resource.kind)
        if key_kind in seen_groups:  # the same kind served at several versions: read it once
            continue
        seen_groups.add(key_kind)
        if resource.namespaced:
            for ns in wanted_ns:
                for item in _items(resource, ns):
                    meta = item.get("metadata", {})
                    out[f"{resource.group_version}/{resource.kind}/{ns}/{meta.get('name')}"] = item
        elif resource.kind == "Namespace":
            for item in _items(resource):
                if item["metadata"]["name"] in wanted_ns:
                    out[f"v1/Namespace//{item['metadata']['name']}"] = item
        elif resource.kind in kinds:
            for item in _items(resource):
                name = item.get("metadata", {}).get("name", "")
                if cluster_name_match is None or cluster_name_match in name:
                    out[f"{resource.group_version}/{resource.kind}//{name}"] = item
    return out


def snapshot(api, namespaces, cluster_kinds=(), cluster_name_match=None) -> dict[str, str]:
    """resourceVersion of every object (see collect); equal snapshots mean no write happened."""
    objs = collect(api, namespaces, cluster_kinds, cluster_name_match)
    return {key: obj.get("metadata", {}).get("resourceVersion", "") for key, obj in objs.items()}


def _scrub(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    meta = obj.get("metadata", {})
    for key in VOLATILE_META:
        meta.pop(key, None)
    if meta.get("generateName"):
        meta["name"] = meta["generateName"] + "*"
    for section in ("labels", "annotations"):
        for key in list(meta.get(section) or {}):
            if "controller-uid" in key or key == "kubectl.kubernetes.io/last-applied-configuration":
                meta[section].pop(key)
    if obj.get("kind") == "Pod":
        # where the scheduler placed a Job's Pod is its decision, not the run's
        obj.get("spec", {}).pop("nodeName", None)
    status = obj.pop("status", None)
    if isinstance(status, dict) and status.get("conditions"):
        # keep what a run is judged by (Complete/Available...), not when it happened
        obj["status"] = {"conditions": sorted({(c.get("type"), c.get("status")) for c in status["conditions"]})}
    return obj


def owned_state(api, namespaces: dict[str, str], cluster_kinds=(), cluster_name_match=None) -> dict[str, dict]:
    """collect() scrubbed of volatile metadata, with each namespace name replaced by its placeholder
    (`namespaces` maps a real name to e.g. "<remediate-ns>")."""
    objs = collect(api, namespaces.keys(), cluster_kinds, cluster_name_match)
    scrubbed = {}
    for key, obj in objs.items():
        clean = _scrub(obj)
        scrubbed[key.rsplit("/", 1)[0] + "/" + clean.get("metadata", {}).get("name", "")] = clean
    text = json.dumps(scrubbed, sort_keys=True)
    # values the platform gives each namespace (OpenShift UID range, MCS label): placeholders too
    for key, obj in scrubbed.items():
        if key.startswith("v1/Namespace//"):
            placeholder = namespaces.get(obj["metadata"]["name"], "<ns>")
            for ann, value in (obj["metadata"].get("annotations") or {}).items():
                if ann.startswith("openshift.io/sa.scc.") and value:
                    text = text.replace(json.dumps(value)[1:-1], f"{placeholder}:{ann}")
                    first = value.split("/")[0]
                    if first.isdigit():
                        text = re.sub(rf"(?<![0-9]){first}(?![0-9])", f"{placeholder}:uid", text)
    # also inside names derived from the namespace (dfw-scratch-<ns>) and in the keys
    for real, placeholder in sorted(namespaces.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(rf"(?<![a-z0-9]){re.escape(real)}(?![a-z0-9])", placeholder, text)
    text = UUID_RE.sub("<uid>", TIME_RE.sub("<time>", text))
    text = SA_TOKEN_VOLUME_RE.sub("kube-api-access-*", text)
    return dict(sorted(json.loads(text).items()))


def diff(expected: dict, actual: dict) -> str:
    """A readable account of what differs, for assertion messages."""
    lines = []
    for key in sorted(set(expected) | set(actual)):
        if key not in actual:
            lines.append(f"missing: {key}")
        elif key not in expected:
            lines.append(f"extra:   {key}")
        elif expected[key] != actual[key]:
            lines.append(f"differs: {key}")
            for path, want, got in _leaf_differences(expected[key], actual[key]):
                lines.append(f"  {path}: expected {json.dumps(want, sort_keys=True)[:300]}")
                lines.append(f"  {' ' * len(path)}  actual   {json.dumps(got, sort_keys=True)[:300]}")
    return "\n".join(lines)


_ABSENT = "<absent>"


def _leaf_differences(want, got, path: str = ""):
    """(path, expected, actual) for each place two JSON-like values differ, deepest first found."""
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            yield from _leaf_differences(want.get(k, _ABSENT), got.get(k, _ABSENT), f"{path}.{k}")
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (w, g) in enumerate(zip(want, got)):
            yield from _leaf_differences(w, g, f"{path}[{i}]")
    elif want != got:
        yield path or ".", want, got
