# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Helm post-renderer: put on every Pod template of a release what its Pods need when they are CREATED.

Reads the rendered manifests on stdin, writes them to stdout. The settings come as JSON in the
environment variable DFW_POD_PATCH:

  labels, annotations   added to every Pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet,
                        Job, CronJob, Pod)
  job_annotations       added to the Pod templates of Jobs and CronJobs only
  env                   {"workloads": [names], "vars": {NAME: value}}: env vars set on every container of
                        the workloads (Deployments, StatefulSets, ...) of those names
  secret_checksums      true: each Pod template that reads Secrets of the release (env, envFrom, volumes)
                        gets the annotation dataflywheel.blueprint/secrets-sha256, a digest of exactly the
                        Secrets it reads, so a rotated key rolls the Pods that read it and nothing else

DFW_POST_RENDER_NEXT, when set, names the release's own post-renderer: it gets this script's output
and its output and exit status are the result.

Only the controller's Python and PyYAML are needed (what Ansible itself runs on).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json
import os
import re
import subprocess
import sys

import yaml

CHECKSUM = "dataflywheel.blueprint/secrets-sha256"
JOB_KINDS = ("Job", "CronJob")


def pod_template(doc):
    """The Pod template (the object holding metadata and spec of the Pods) of a workload, or None."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return doc
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec.get("template")
    return None


def secret_digests(docs):
    """name -> sha256 of the Secret's data as rendered (data and stringData, keys sorted)."""
    out = {}
    for doc in docs:
        if doc.get("kind") == "Secret" and (doc.get("metadata") or {}).get("name"):
            body = {"data": doc.get("data") or {}, "stringData": doc.get("stringData") or {}}
            out[doc["metadata"]["name"]] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return out


def secrets_read(spec):
    """Names of the Secrets a Pod spec reads at start (env, envFrom, volumes; not image pull secrets)."""
    names = set()
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for env in container.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
            if ref:
                names.add(ref)
        for source in container.get("envFrom") or []:
            ref = (source.get("secretRef") or {}).get("name")
            if ref:
                names.add(ref)
    for volume in spec.get("volumes") or []:
        ref = (volume.get("secret") or {}).get("secretName")
        if ref:
            names.add(ref)
        for source in (volume.get("projected") or {}).get("sources") or []:
            ref = (source.get("secret") or {}).get("name")
            if ref:
                names.add(ref)
    return names


def patch(docs, config):
    """The documents with the Pod templates patched (in place; also returned)."""
    digests = secret_digests(docs) if config.get("secret_checksums") else {}
    env = config.get("env") or {}
    for doc in docs:
        template = pod_template(doc)
        if template is None:
            continue
        meta = template.get("metadata") or {}
        if config.get("labels"):
            meta["labels"] = dict(meta.get("labels") or {}, **config["labels"])
        annotations = dict(config.get("annotations") or {})
        if doc.get("kind") in JOB_KINDS:
            annotations.update(config.get("job_annotations") or {})
        spec = template.get("spec") or {}
        read = sorted(n for n in secrets_read(spec) if n in digests)
        if read:
            joined = "".join(name + digests[name] for name in read)
            annotations[CHECKSUM] = hashlib.sha256(joined.encode()).hexdigest()
        if annotations:
            meta["annotations"] = dict(meta.get("annotations") or {}, **annotations)
        if meta:
            template["metadata"] = meta
        if (doc.get("metadata") or {}).get("name") not in (env.get("workloads") or []):
            continue
        for container in spec.get("containers") or []:
            wanted = env.get("vars") or {}
            if wanted:
                kept = [e for e in container.get("env") or [] if e.get("name") not in wanted]
                container["env"] = kept + [{"name": k, "value": str(v)} for k, v in sorted(wanted.items())]
    return docs


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, as charts write them, so a diff of the manifests stays readable."""


def _str(dumper, value):
    style = "|" if "\n" in value and not re.search(r"[ \t]\n|[^\S\n]$", value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def render(text, config):
    """The manifest stream with the patched documents re-serialized and every other document left as it came."""
    chunks = re.split(r"(?m)^---[ \t]*$\n?", text)
    docs = [yaml.safe_load(chunk) for chunk in chunks]
    patched = patch([copy.deepcopy(d) for d in docs if isinstance(d, dict)], config)
    out, index = [], 0
    dump = _BlockDumper
    for chunk, doc in zip(chunks, docs):
        if not isinstance(doc, dict):
            if chunk.strip():
                out.append(chunk)
            continue
        new = patched[index]
        index += 1
        out.append(chunk if new == doc else yaml.dump(new, Dumper=dump, sort_keys=False))
    return "".join("---\n" + (c if c.endswith("\n") else c + "\n") for c in out)


def main():
    config = json.loads(os.environ.get("DFW_POD_PATCH") or "{}")
    rendered = render(sys.stdin.read(), config)
    # a release's own post-renderer (e.g. the flywheel's df-config check) reads what this one wrote
    following = os.environ.get("DFW_POST_RENDER_NEXT")
    if not following:
        sys.stdout.write(rendered)
        return 0
    # the next post-renderer runs without DFW_POST_RENDER_NEXT: a chain that names this patch again (a
    # wrapper of it) patches twice and stops, instead of calling itself until the machine runs out of memory
    env = {k: v for k, v in os.environ.items() if k != "DFW_POST_RENDER_NEXT"}
    result = subprocess.run(  # noqa: S603 - the release's post-renderer, named by the role
        [following], input=rendered.encode("utf-8"), stdout=subprocess.PIPE, check=False, env=env
    )
    sys.stdout.write(result.stdout.decode("utf-8"))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
