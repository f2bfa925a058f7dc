# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filter that compares the log index's record counts with what each flywheel job needs.

Documented in flywheel_record_check.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def _int(value, name, where):
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ValueError("%s: %s=%r must be an integer" % (where, name, value)) from None


def record_check(counts, jobs, defaults=None):
    """One row per job: found records, the number the flywheel needs and why, and `ok`.

    The flywheel fails a job when its workload/client has fewer than min_total_records records
    or fewer than eval_size (data_validator upstream); a job's own data_split_config wins over
    the deployed configuration's `defaults`."""
    defaults = dict(defaults or {})
    found = {}
    for row in counts or []:
        key = (row.get("workload_id"), row.get("client_id"))
        found[key] = found.get(key, 0) + int(row.get("records") or 0)
    rows = []
    for job in jobs or []:
        where = "%s/%s" % (job.get("workload_id"), job.get("client_id"))
        split = dict(defaults)
        split.update(job.get("data_split_config") or {})
        min_total = _int(split.get("min_total_records", 50), "min_total_records", where)
        eval_size = _int(split.get("eval_size", 100), "eval_size", where)
        needed = max(min_total, eval_size)
        have = found.get((job.get("workload_id"), job.get("client_id")), 0)
        rows.append(
            {
                "workload_id": job.get("workload_id"),
                "client_id": job.get("client_id"),
                "records": have,
                "needed": needed,
                "min_total_records": min_total,
                "eval_size": eval_size,
                "ok": have >= needed,
                "message": "%s: %d records in the log index, %s %d (min_total_records=%d, eval_size=%d)"
                % (where, have, "needs at least" if have < needed else "enough for", needed, min_total, eval_size),
            }
        )
    return rows


class FilterModule(object):
    def filters(self):
        return {"flywheel_record_check": record_check}
