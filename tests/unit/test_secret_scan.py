"""The secret scanner finds a secret in every shape it can leak in, and nothing else."""

from __future__ import annotations

import base64
import json
import secrets as pysecrets

from tests.integration.secret_scan import scan_files, scan_text

SECRET = "nvapi-" + pysecrets.token_hex(20)
SECRETS = {"ngc_api_key": SECRET}


def test_plain_value_is_found():
    leaks = scan_text(f"env: NGC_API_KEY={SECRET}\\n", SECRETS, "stdout")
    assert [(x.secret_name, x.form) for x in leaks] == [("ngc_api_key", "plain")]


def test_base64_in_every_alignment_is_found():
    for prefix in ("", "u", "us", "use", "user:"):
        blob = base64.b64encode(f"{prefix}{SECRET}".encode()).decode()
        leaks = scan_text(json.dumps({"auths": {"nvcr.io": {"auth": blob}}}), SECRETS, "cm")
        assert leaks, f"missed base64 with prefix {prefix!r}"
        assert leaks[0].form.startswith("base64")


def test_other_values_are_not_reported():
    other = base64.b64encode(b"nvapi-" + pysecrets.token_hex(20).encode()).decode()
    assert scan_text(f"{other} nvapi-{'0' * 40}", SECRETS, "x") == []


def test_files_are_scanned_and_skip_dirs_honoured(tmp_path):
    (tmp_path / "ok.txt").write_text("nothing here")
    (tmp_path / "leak" / "deep").mkdir(parents=True)
    (tmp_path / "leak" / "deep" / "values.yaml").write_text(f"secrets:\\n  ngcApiKey: {SECRET}\\n")
    (tmp_path / "vault").mkdir()
    (tmp_path / "vault" / "k").write_text(SECRET)
    leaks = scan_files([tmp_path], SECRETS, skip=[tmp_path / "vault"])
    assert [x.where for x in leaks] == [str(tmp_path / "leak" / "deep" / "values.yaml")]
