# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""helm post-renderer of the flywheel chart: checks the rendered df-config and stamps its checksum.

    df_config_stamp.py --expect EXPECTED.json --report MISMATCH.txt   (manifests on stdin, out on stdout)
    DFW_DF_CONFIG_EXPECTED='<json>' DFW_DF_CONFIG_REPORT=MISMATCH.txt df_config_stamp.py   (as the role runs it)

1. df-config's config.yaml, as helm rendered it (the chart's default `config` merged under the role's
   values), must equal EXPECTED (what the role's variables say, nulls dropped); otherwise the
   differing keys go to MISMATCH and the render fails, so helm changes nothing.
2. Every Deployment that mounts df-config gets the annotation dataflywheel.blueprint/config-sha256
   (sha256 of the rendered config.yaml) on its pod template: the pods are created with it on the
   first install and roll exactly when the rendered config changes (the chart has no checksum
   annotation of its own).
Manifests pass through stdin and stdout only; nothing of them is written anywhere else.
"""

import argparse
import hashlib
import json
import os
import sys

import yaml

ANNOTATION = "dataflywheel.blueprint/config-sha256"


class BlockDumper(yaml.SafeDumper):
    """Multi-line strings (df-config's config.yaml) as literal blocks, as the chart renders them, so
    helm-diff shows a config change line by line."""


def _str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


BlockDumper.add_representer(str, _str)


def differences(rendered, expected, path=""):
    out = []
    if isinstance(rendered, dict) and isinstance(expected, dict):
        for key in sorted(set(rendered) | set(expected), key=str):
            here = "%s.%s" % (path, key) if path else str(key)
            if key not in expected:
                out.append("%s: rendered %s, the role's variables do not set it" % (here, json.dumps(rendered[key])))
            elif key not in rendered:
                out.append("%s: missing from the rendered config (variables: %s)" % (here, json.dumps(expected[key])))
            else:
                out += differences(rendered[key], expected[key], here)
    elif rendered != expected:
        out.append("%s: rendered %s, variables %s" % (path, json.dumps(rendered), json.dumps(expected)))
    return out


def mounts_df_config(doc):
    volumes = (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []
    return any((v.get("configMap") or {}).get("name") == "df-config" for v in volumes)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect", help="file of the expected df-config (default: $DFW_DF_CONFIG_EXPECTED, JSON)")
    parser.add_argument("--report", default=os.environ.get("DFW_DF_CONFIG_REPORT"))
    args = parser.parse_args()
    if not args.report or not (args.expect or "DFW_DF_CONFIG_EXPECTED" in os.environ):
        parser.error("needs --expect and --report, or DFW_DF_CONFIG_EXPECTED and DFW_DF_CONFIG_REPORT")
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    configs = [d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"].get("name") == "df-config"]
    if len(configs) != 1:
        message = "the chart rendered %d ConfigMaps named df-config, expected 1" % len(configs)
        with open(args.report, "w") as report:
            report.write(message + "\n")
        sys.exit("df_config_stamp: " + message)
    text = configs[0]["data"]["config.yaml"]
    if args.expect:
        with open(args.expect) as handle:
            expected = json.load(handle)
    else:
        expected = json.loads(os.environ["DFW_DF_CONFIG_EXPECTED"])
    found = differences(yaml.safe_load(text), expected)
    if found:
        with open(args.report, "w") as report:
            report.write("\n".join(found) + "\n")
        sys.exit("df_config_stamp: the rendered df-config differs from the role's variables (%d keys)" % len(found))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    for doc in docs:
        if doc.get("kind") == "Deployment" and mounts_df_config(doc):
            meta = doc["spec"]["template"].setdefault("metadata", {})
            meta.setdefault("annotations", {})[ANNOTATION] = digest
    yaml.dump_all(docs, sys.stdout, Dumper=BlockDumper, sort_keys=False, default_flow_style=False)


if __name__ == "__main__":
    main()
