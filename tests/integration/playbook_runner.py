"""The reliability tests' view of the one playbook runner (tests/harness.py): `play()` always records task
starts in a marker file, so a run can be killed at a chosen task; `fill()` fills data-file placeholders.
New tests use the `ansible_playbook` fixture (tests/conftest.py) directly."""

from __future__ import annotations

from pathlib import Path

from tests.harness import ROOT, PlaybookRun, alive, run_playbook

__all__ = ["ROOT", "Run", "alive", "fill", "play"]

Run = PlaybookRun


def fill(value, subst: dict):
    """A data-file case with its {placeholders} replaced (strings, recursively through lists and dicts)."""
    if isinstance(value, str):
        for key, real in subst.items():
            value = value.replace("{" + key + "}", real)
        return value
    if isinstance(value, list):
        return [fill(v, subst) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, subst) for k, v in value.items()}
    return value


def play(
    playbook: str,
    extra_vars: dict,
    marker: Path,
    inventory: str | None = None,
    env: dict | None = None,
    kill_at: int | None = None,
    sig: str = "SIGKILL",
    delay: float = 0.0,
    verbosity: int = 0,
    timeout: float = 600,
    extra_args: list[str] | None = None,
    kill_when=None,
) -> PlaybookRun:
    """harness.run_playbook with a task marker; see there for kill_at, kill_when and sig."""
    return run_playbook(
        playbook,
        extra_vars,
        inventory=inventory,
        env=env,
        marker=marker,
        kill_at=kill_at,
        kill_when=kill_when,
        sig=sig,
        delay=delay,
        verbosity=verbosity,
        timeout=timeout,
        args=extra_args or [],
    )
