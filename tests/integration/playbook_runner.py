"""Run ansible-playbook the way the reliability tests need: in its own session, with the
task-marker callback, optionally killed when a chosen task has started."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"


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


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    tasks: list[str]  # task names in start order
    killed_at: int | None = None  # task index the signal was sent after

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def recap(self, host: str) -> dict[str, int]:
        for line in self.stdout.splitlines():
            if line.startswith(host) and "ok=" in line:
                return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
        raise AssertionError(f"no PLAY RECAP line for {host}:\n{self.output[-3000:]}")


def env_for(marker: Path, extra: dict | None = None) -> dict:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "dfw_task_marker",
        "ANSIBLE_NOCOLOR": "1",
        "DFW_TASK_MARKER_FILE": str(marker),
        **(extra or {}),
    }


def _tasks(marker: Path) -> list[str]:
    if not marker.exists():
        return []
    return [line.split("\t", 2)[2] for line in marker.read_text().splitlines() if line.count("\t") >= 2]


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
) -> Run:
    """ansible-playbook in a new session. With kill_at, `sig` is sent `delay` seconds after task
    number kill_at started (see _send for what each signal reaches). With kill_when (a callable
    polled while the run goes on), the signal is sent as soon as it returns true (a state seen in
    the cluster, for example). A killed run returns once every process it had has ended."""
    marker.unlink(missing_ok=True)
    cmd = [str(BIN / "ansible-playbook"), playbook, "-e", json.dumps(extra_vars)]
    if inventory:
        cmd += ["-i", inventory]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    cmd += extra_args or []
    out_path, err_path = marker.with_suffix(".out"), marker.with_suffix(".err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(  # noqa: S603 - our own ansible-playbook
            cmd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env_for(marker, env),
            cwd=ROOT,
            start_new_session=True,
        )
        killed, left = None, set()
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                _send(proc.pid, "SIGKILL")
                raise AssertionError(f"{playbook} did not finish in {timeout}s")
            if kill_when is not None and killed is None and kill_when():
                if proc.poll() is None:
                    left = _send(proc.pid, sig)
                    killed = len(_tasks(marker))
            if kill_at is not None and killed is None and len(_tasks(marker)) >= kill_at:
                time.sleep(delay)
                if proc.poll() is None:
                    left = _send(proc.pid, sig)
                    killed = kill_at
            time.sleep(0.02)
        proc.wait()
    _wait_gone(left)
    return Run(proc.returncode, out_path.read_text(), err_path.read_text(), _tasks(marker), killed)


def _proc_stat(pid: int | str) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...]; [] when it is gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child not yet reaped)."""
    return _proc_stat(pid)[:1] not in ([], ["Z"], ["X"])


def _tree(root: int) -> set[int]:
    """root and every process below it (ansible's workers call setsid(): they leave the process
    group, not the tree)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _proc_stat(entry.name) if entry.name.isdigit() else []
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _send(pid: int, sig: str) -> set[int]:
    """Deliver `sig` the way it arrives in the field; returns the processes that must end before
    the test goes on.
    SIGKILL: the whole process tree (a CI job, container or pod killed: its cgroup goes at once);
    frozen first with SIGSTOP so nothing forks in between.
    SIGINT: the process group (Ctrl-C in a terminal; ansible stops its workers itself).
    SIGKILL-main: ansible-playbook alone (the OOM killer); its workers finish their task orphaned."""
    if sig == "SIGKILL":
        stopped: set[int] = set()
        while new := _tree(pid) - stopped:
            for p in new:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGSTOP)
            stopped |= new
        for p in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        return stopped
    tree = _tree(pid)
    if sig == "SIGKILL-main":
        os.kill(pid, signal.SIGKILL)
    else:
        os.killpg(pid, getattr(signal, sig))
    return tree


def _wait_gone(pids: set[int], timeout: float = 60) -> None:
    """Wait (bounded) until the processes of a killed run have ended, so that the rerun does not
    race leftovers of a process the test started; what is left after `timeout` is killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = {p for p in pids if alive(p)}
        if not pids:
            return
        time.sleep(0.1)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
