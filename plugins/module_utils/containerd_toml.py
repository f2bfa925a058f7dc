# -*- coding: utf-8 -*-
# Copyright: dataflywheel.blueprint contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Minimal, format-preserving edits of a containerd config.toml.

containerd 1.x replaces a whole plugin section when an imported file defines it, so the NVIDIA
runtime has to go into the file that already holds the CRI section, without losing anything
else in it (imports, SystemdCgroup, registry settings, comments). ``nvidia-ctk`` rewrites the
whole file and has dropped ``imports`` and left out ``SystemdCgroup`` in the past; this editor
changes only the keys it is asked to set and leaves every other line as it was:

* ``ensure(text, settings)`` -> (new_text, changed_keys); settings are (table, key, value)
  with ``table`` a tuple of key parts.
* ``get(text, table, key)`` -> the raw value text or None.
* ``config_version(text)`` -> the top-level ``version`` (1 when absent, as containerd reads it).
* ``nvidia_settings(version, ...)`` -> the settings for the NVIDIA runtime for config v2 or v3.

Tables defined with inline tables or dotted keys above the wanted table are refused with an
error instead of being edited wrongly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_HEADER_RE = re.compile(r"^\s*\[(?!\[)(.*)\]\s*(#.*)?$")
_ARRAY_HEADER_RE = re.compile(r"^\s*\[\[(.*)\]\]\s*(#.*)?$")
_KEY_RE = re.compile(
    r'^(\s*)((?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\'))*)\s*=\s*(.*)$'
)
_PART_RE = re.compile(r'\s*(?:([A-Za-z0-9_-]+)|"([^"]*)"|\'([^\']*)\')\s*(\.|$)')

CRI_V2 = ("plugins", "io.containerd.grpc.v1.cri")
CRI_V3_RUNTIME = ("plugins", "io.containerd.cri.v1.runtime")


class TomlEditError(Exception):
    """The file cannot be edited safely."""


def split_key(text):
    parts = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PART_RE.match(text, pos)
        if not match or match.end() == pos:
            raise TomlEditError("cannot parse TOML key %r" % text)
        parts.append(next(g for g in match.groups()[:3] if g is not None))
        pos = match.end()
    return tuple(parts)


def _strip_comment(value):
    out = []
    quote = None
    for char in value:
        if quote:
            if char == quote:
                quote = None
        elif char in ('"', "'"):
            quote = char
        elif char == "#":
            break
        out.append(char)
    return "".join(out).strip()


def render(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


def _quote_part(part):
    return part if re.match(r"^[A-Za-z0-9_-]+$", part) else '"%s"' % part


def header(table):
    return "[" + ".".join(_quote_part(p) for p in table) + "]"


def _scan(lines):
    """Yield (index, kind, table, key_parts, raw_value, end_index) for headers and key lines."""
    table = ()
    i = 0
    while i < len(lines):
        line = lines[i]
        array = _ARRAY_HEADER_RE.match(line)
        head = None if array else _HEADER_RE.match(line)
        if array:
            table = ("[[",) + split_key(array.group(1))
            yield i, "array", table, None, None, i
        elif head:
            table = split_key(head.group(1))
            yield i, "header", table, None, None, i
        else:
            key = _KEY_RE.match(line)
            if key and not line.lstrip().startswith("#"):
                value = _strip_comment(key.group(3))
                end = i
                depth = value.count("[") - value.count("]")
                multi = value.startswith('"""') and value.count('"""') == 1
                while (depth > 0 or multi) and end + 1 < len(lines):
                    end += 1
                    nxt = _strip_comment(lines[end]) if not multi else lines[end]
                    depth += nxt.count("[") - nxt.count("]")
                    if multi and '"""' in lines[end]:
                        multi = False
                yield i, "key", table, split_key(key.group(2)), value, end
                i = end
        i += 1


def config_version(text):
    for _i, kind, table, key, value, _end in _scan(text.splitlines()):
        if kind != "key":
            break
        if table == () and key == ("version",):
            if not value.isdigit():
                raise TomlEditError("version = %s is not an integer" % value)
            return int(value)
    return 1


def get(text, table, key):
    for _i, kind, cur, parts, value, _end in _scan(text.splitlines()):
        if kind == "key" and cur + parts == tuple(table) + (key,):
            return value
    return None


def _refuse_inline(entries, table):
    for _i, kind, cur, parts, _v, _e in entries:
        if kind != "key":
            continue
        full = cur + parts
        if len(full) <= len(table) and table[: len(full)] == full:
            raise TomlEditError(
                "%s is defined as an inline table or dotted key in %s; containerd config edits need "
                "[table] headers there" % (".".join(full), header(cur) if cur else "the top level")
            )


def _locate(entries, table, key):
    """(header line index or None, last line of the table's keys, (line, raw, end) of the key or None)."""
    head_index = last_line = existing = None
    for i, kind, cur, parts, raw, end in entries:
        if kind == "header" and cur == table:
            head_index = last_line = i
        elif kind == "key" and cur + parts == table + (key,):
            existing = (i, raw, end)
        elif kind == "key" and head_index is not None and cur == table:
            last_line = end
    return head_index, last_line, existing


def ensure(text, settings):
    """Set each (table, key, value); returns (new_text, [dotted keys changed])."""
    lines = text.splitlines()
    changed = []
    for table_parts, key, value in settings:
        table = tuple(table_parts)
        wanted = render(value)
        entries = list(_scan(lines))
        _refuse_inline(entries, table)
        head_index, last_line, existing = _locate(entries, table, key)
        if existing:
            i, raw, end = existing
            if raw == wanted:
                continue
            indent = re.match(r"^(\s*)", lines[i]).group(1)
            key_text = _KEY_RE.match(lines[i]).group(2)
            lines[i : end + 1] = ["%s%s = %s" % (indent, key_text, wanted)]
        elif head_index is not None:
            indent = re.match(r"^(\s*)", lines[head_index]).group(1) + "  "
            lines.insert(last_line + 1, "%s%s = %s" % (indent, _quote_part(key), wanted))
        else:
            if lines and lines[-1].strip():
                lines.append("")
            lines.extend([header(table), "  %s = %s" % (_quote_part(key), wanted)])
        changed.append(".".join(table + (key,)))
    new_text = "\n".join(lines) + "\n" if lines else ""
    return new_text, changed


def nvidia_settings(version, runtime_path, systemd_cgroup, set_default=False, enable_cdi=False, runtime_name="nvidia"):
    if version == 2:
        base = CRI_V2
    elif version == 3:
        base = CRI_V3_RUNTIME
    else:
        raise TomlEditError(
            "containerd config version %s is not supported; convert it with `containerd config migrate` "
            "(containerd >= 1.7) or start from `containerd config default`" % version
        )
    runtime = base + ("containerd", "runtimes", runtime_name)
    settings = [
        (runtime, "runtime_type", "io.containerd.runc.v2"),
        (runtime + ("options",), "BinaryName", runtime_path),
        (runtime + ("options",), "SystemdCgroup", bool(systemd_cgroup)),
    ]
    if set_default:
        settings.append((base + ("containerd",), "default_runtime_name", runtime_name))
    if enable_cdi:
        settings.append((base, "enable_cdi", True))
    return settings
