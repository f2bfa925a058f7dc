# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that turn flywheel job summaries into report pieces (pure functions, no I/O).

Documented in flywheel_chart_svg.yml, flywheel_headline_score.yml and flywheel_markdown_table.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

EVAL_TYPES = ("base-eval", "icl-eval", "customized-eval")
COLORS = {"base-eval": "#8da0cb", "icl-eval": "#fc8d62", "customized-eval": "#66c2a5"}


def _escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def headline_score(scores):
    """The one number per evaluation a chart or table leads with, in 0..1, or None."""
    scores = scores or {}
    if "function_name_and_args_accuracy" in scores:
        return float(scores["function_name_and_args_accuracy"])
    if "similarity" in scores:
        return float(scores["similarity"]) / 10.0
    return None


def chart_svg(summaries, width=900, bar_height=260):
    groups = []
    for summary in summaries or []:
        for nim in summary.get("nims") or []:
            label = "%s %s" % (summary.get("client_id"), str(nim.get("model_name")).rsplit("/", 1)[-1])
            groups.append((label, dict((t, headline_score((nim.get("scores") or {}).get(t))) for t in EVAL_TYPES)))
    left, top, bottom = 150, 30, 120
    height = top + bar_height + bottom
    group_w = max(60.0, float(width - left - 20) / max(1, len(groups)))
    bar_w = group_w / 4.0
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" viewBox="0 0 %d %d">'
        % (left + 20 + group_w * len(groups), height, left + 20 + group_w * len(groups), height),
        "<title>Headline score per job and model: base-eval, icl-eval, customized-eval</title>",
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + bar_height * (1 - tick)
        out.append(
            '<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (left, left + group_w * len(groups), y, y)
        )
        out.append('<text x="%d" y="%.1f" font-size="11" text-anchor="end">%.2f</text>' % (left - 5, y + 4, tick))
    for i, (label, values) in enumerate(groups):
        x0 = left + i * group_w + bar_w / 2
        for j, eval_type in enumerate(EVAL_TYPES):
            value = values.get(eval_type)
            x = x0 + j * bar_w
            if value is None:
                out.append(
                    '<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle" fill="#999">n/a</text>'
                    % (x + bar_w / 2, top + bar_height - 4)
                )
                continue
            h = bar_height * max(0.0, min(1.0, value))
            out.append(
                '<rect class="bar %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.3f'
                "</title></rect>"
                % (
                    eval_type,
                    x,
                    top + bar_height - h,
                    bar_w - 2,
                    h,
                    COLORS[eval_type],
                    _escape(label),
                    eval_type,
                    value,
                )
            )
        out.append(
            '<text x="%.1f" y="%d" font-size="11" text-anchor="end" transform="rotate(-30 %.1f %d)">%s</text>'
            % (x0 + 1.5 * bar_w, top + bar_height + 16, x0 + 1.5 * bar_w, top + bar_height + 16, _escape(label))
        )
    for j, eval_type in enumerate(EVAL_TYPES):
        out.append(
            '<rect x="%d" y="8" width="12" height="12" fill="%s"/><text x="%d" y="18" font-size="12">%s</text>'
            % (left + j * 140, COLORS[eval_type], left + j * 140 + 16, eval_type)
        )
    out.append("</svg>")
    return "\n".join(out)


def markdown_table(rows):
    """Rows of flywheel_job(_info).table as a Markdown table."""
    keys = [
        "workload_id",
        "client_id",
        "model",
        "eval_type",
        "function_name",
        "function_name_and_args_accuracy",
        "tool_calling_correctness",
        "similarity",
    ]
    used = [k for k in keys if any(k in r for r in rows or [])]
    lines = ["| " + " | ".join(used) + " |", "|" + "---|" * len(used)]
    for row in rows or []:
        lines.append("| " + " | ".join(str(row.get(k, "")) for k in used) + " |")
    return "\n".join(lines)


class FilterModule(object):
    def filters(self):
        return {
            "flywheel_chart_svg": chart_svg,
            "flywheel_headline_score": headline_score,
            "flywheel_markdown_table": markdown_table,
        }
