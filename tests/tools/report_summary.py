#!/usr/bin/env python3
"""Print where the flywheel reports are and a summary table of them (the end of `make demo`).

    report_summary.py [REPORTS_DIR]     default: reports/ (one sub-directory per cluster host)

Reads each <cluster>/report.json the flywheel_run role wrote; one row per job and NIM with the
headline score (function-name-and-args accuracy for tool calling) of each evaluation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "collections")]

from ansible_collections.dataflywheel.blueprint.plugins.filter.flywheel_report import headline_score  # noqa: E402

EVALS = (("base-eval", "base"), ("icl-eval", "ICL"), ("customized-eval", "customized"))


def score(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def rows(report: dict, cluster: str) -> list[list[str]]:
    out = []
    for job in report.get("jobs", []):
        for nim in job.get("nims") or [{}]:
            scores = nim.get("scores") or {}
            out.append(
                [
                    cluster,
                    f"{job.get('workload_id')}/{job.get('client_id')}",
                    str(job.get("status")),
                    str(job.get("num_records", "")),
                    str(nim.get("model_name", "-")),
                    *(score(headline_score(scores.get(key))) for key, _label in EVALS),
                ]
            )
    return out


def main() -> int:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "reports"
    reports = sorted(base.glob("*/report.json"))
    if not reports:
        print(f"no report.json under {base}", file=sys.stderr)
        return 1
    header = ["cluster", "workload/client", "status", "records", "model", *(label for _key, label in EVALS)]
    table = [header]
    for path in reports:
        print(f"report: {path.parent.resolve() / 'report.html'}  (also report.md, report.json)")
        table += rows(json.loads(path.read_text()), path.parent.name)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print()
    for n, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    failed = [r for r in table[1:] if r[2] != "completed"]
    print(f"\n{len(table) - 1} row(s), {len(failed)} not completed; scores: function name and args accuracy (0..1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
