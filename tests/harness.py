"""The one way the tests run Ansible: playbooks (`run_playbook`) and module calls (`run_module`).

Tests reach these through the pytest fixtures `ansible_playbook` and `ansible_module` (tests/conftest.py);
helpers that are not tests import the functions. See tests/README.md ("Running Ansible in a test").

- `run_playbook` starts `ansible-playbook` with the repository's ansible.cfg, in its own session, with a
  timeout that kills the whole process tree and fails with the last tasks started and the output's tail.
  It optionally loads the json stdout callback, writes task starts to a marker file (the test-only
  callback in tests/integration/callback_plugins) and sends a signal when a chosen task has started or
  a condition holds (the interruption tests).
- `run_module` calls a module of this collection IN-PROCESS by default: the module's own `main()` with
  the arguments Ansible would pass (check mode, diff), the environment it would see and its JSON result
  read back as Ansible reads it. That tests the module's logic without starting Python, Ansible's
  controller and AnsiballZ for each call (about 2 CPU-seconds each). `via="ansible"` (or
  DFW_MODULE_RUNNER=ansible for the whole run) sends the same call through `ansible localhost -m`,
  the real controller path; keep at least one such call per module, and use playbooks for what
  Ansible itself does (module_defaults, templating, no_log in output, callbacks).

Every start is counted per test file; the counts are printed at the end of the pytest run so that the
cost of a new test is visible (tests/conftest.py).
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from unittest import mock
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CALLBACKS = ROOT / "tests" / "integration" / "callback_plugins"
COLLECTION = "dataflywheel.blueprint"
DEFAULT_TIMEOUT = 1800  # seconds; a run that hangs fails with its last tasks instead of hanging the suite
# Every Ansible process a test starts loads this test-only callback: it fills the Jinja plugin caches once, before
# ansible-playbook forks a worker per task (callback_plugins/dfw_warm.py). Benchmarks (no pytest) run without it,
# and so does every test run with DFW_ANSIBLE_WARM=0 (to compare the cost table).
WARM_CALLBACK = "dfw_warm"
# The pause between two reads of an object a role waits on (kubernetes.core's wait_sleep) in the tests' runs: a
# namespace or the NeMo gateway is usually there a second or two after the first read, which the roles' default
# of 5 s would sleep through. Sent first, so a test's own extra vars win; only under pytest (not benchmarks).
TEST_WAITS = {"nemo_platform_wait_sleep": 1, "flywheel_wait_sleep": 1}

# kubernetes.core caches API discovery in $TMPDIR/k8srcp-<hash of the server URL>.json and keeps using it
# while the kinds it looks up are found. Local clusters are recreated on reused loopback ports (and /tmp is
# shared with other checkouts), so each test process gets its own temporary directory for Ansible runs.
_TMP = None


def ansible_tmp() -> str:
    global _TMP  # noqa: PLW0603 - one directory per test process, made on first use
    if _TMP is None:
        _TMP = tempfile.mkdtemp(prefix="dfw-ansible-tmp-")
    return _TMP


# ---------------------------------------------------------------- cost accounting


@dataclass
class Cost:
    """Ansible starts and the CPU they used, per test file."""

    playbooks: int = 0
    playbook_cpu: float = 0.0
    forked: int = 0  # ansible -m and ansible-doc processes
    forked_cpu: float = 0.0
    inprocess: int = 0
    inprocess_cpu: float = 0.0
    wall: float = 0.0  # seconds the file's tests took (setup, call, teardown)
    cpu: float = 0.0  # CPU-seconds of the test process and the processes it waited for, in those seconds

    def add(self, other: dict) -> None:
        for key, value in other.items():
            setattr(self, key, getattr(self, key) + value)


COSTS: dict[str, Cost] = collections.defaultdict(Cost)


def _current_file() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.split("::", 1)[0] or "(outside a test)"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def self_and_children_cpu() -> float:
    """CPU-seconds of this process and of the child processes it has waited for."""
    return _self_cpu() + _children_cpu()


# ---------------------------------------------------------------- environment


def ansible_settings() -> dict:
    """The variables that make Ansible use this repository the way `make test` does: its ansible.cfg (the
    collection from the working tree), no localhost/inventory warnings, no colour, a per-process TMPDIR."""
    return {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "TMPDIR": ansible_tmp(),
    }


def ansible_env(
    extra: dict | None = None, *, json_output: bool = False, marker: Path | None = None, warm: bool = True
) -> dict:
    """The environment of every Ansible process the tests start: the test's environment, ansible_settings(),
    optionally the json stdout callback and the task-marker callback. `extra` wins over all of it; a value of
    None removes the variable (a run that must not see the test's KUBECONFIG, say). Under pytest the test-only
    callback dfw_warm is added to the callbacks `extra` names (`warm`; see WARM_CALLBACK)."""
    env = {**os.environ, **ansible_settings()}
    if json_output:
        env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    if marker is not None:
        env.update(_with_callback(env, "dfw_task_marker"), DFW_TASK_MARKER_FILE=str(marker))
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    # a test's run, not a benchmark's (callback_plugins/dfw_warm.py); DFW_ANSIBLE_WARM=0 turns it off to compare
    if warm and "PYTEST_CURRENT_TEST" in os.environ and env.get("DFW_ANSIBLE_WARM") != "0":
        env.update(_with_callback(env, WARM_CALLBACK))
        env.setdefault("DFW_ANSIBALLZ_CACHE", ansiballz_cache())
    return env


def ansiballz_cache() -> str:
    """The directory where the playbook runs of this test process share their AnsiballZ module payloads
    (callback_plugins/dfw_warm.py): each module's zip is built once per test process, not once per run."""
    path = Path(ansible_tmp()) / "ansiballz"
    path.mkdir(exist_ok=True)
    return str(path)


def _with_callback(env: dict, name: str) -> dict:
    """ANSIBLE_CALLBACK_PLUGINS and ANSIBLE_CALLBACKS_ENABLED of `env` plus the test callback `name`."""
    paths = [p for p in env.get("ANSIBLE_CALLBACK_PLUGINS", "").split(os.pathsep) if p]
    enabled = [c.strip() for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    return {
        "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join(paths + [str(CALLBACKS)] * (str(CALLBACKS) not in paths)),
        "ANSIBLE_CALLBACKS_ENABLED": ",".join(enabled + [name] * (name not in enabled)),
    }


# ---------------------------------------------------------------- playbooks


class _Child:
    """A started process, reaped with wait4(2), which returns the CPU it and the processes it waited for used.
    (A RUSAGE_CHILDREN delta around the run would also count the runs other threads of the test finish
    meanwhile: tests that run playbooks side by side were counted twice or three times.)"""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.cpu = proc, 0.0

    def ended(self, block: bool = False) -> bool:
        if self.proc.returncode is None:
            pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
            if pid == 0:
                return False
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu = usage.ru_utime + usage.ru_stime
        return True

    def wait(self) -> None:
        self.ended(block=True)


@dataclass
class PlaybookRun:
    """What one ansible-playbook run left: exit code, output, the tasks it started (with a marker) and,
    with the json callback, the parsed report. Reads like subprocess.CompletedProcess."""

    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    tasks: list[str] = field(default_factory=list)  # task names in start order (marker runs only)
    killed_at: int | None = None  # task index the signal was sent after
    seconds: float = 0.0
    cpu: float = 0.0  # CPU-seconds of ansible-playbook and the processes it waited for (workers, modules, helm)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def tail(self, chars: int = 4000) -> str:
        return f"$ {' '.join(self.cmd[1:])}\nrc={self.returncode}\n{self.output[-chars:]}"

    def recap(self, host: str) -> dict[str, int]:
        """The PLAY RECAP counters of `host` (default callback)."""
        for line in self.stdout.splitlines():
            if line.startswith(host) and "ok=" in line:
                return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
        raise AssertionError(f"no PLAY RECAP line for {host}:\n{self.tail()}")

    @property
    def json(self) -> dict:
        """The json callback's report (run with json_output=True)."""
        try:
            return json.loads(self.stdout)
        except ValueError as err:
            raise AssertionError(f"no JSON from ansible-playbook:\n{self.tail()}") from err

    def assert_ok(self) -> PlaybookRun:
        assert self.returncode == 0, self.tail()
        return self


def _task_starts(marker: Path | None) -> list[str]:
    if marker is None or not marker.exists():
        return []
    return [line.split("\t", 2)[2] for line in marker.read_text().splitlines() if line.count("\t") >= 2]


def run_playbook(
    playbook: str | Path,
    extra_vars: dict | None = None,
    *,
    inventory: str | Path | None = None,
    args: list[str] | tuple[str, ...] = (),
    env: dict | None = None,
    json_output: bool = False,
    check: bool = False,
    diff: bool = False,
    verbosity: int = 0,
    marker: Path | None = None,
    kill_at: int | None = None,
    kill_when=None,
    sig: str = "SIGKILL",
    delay: float = 0.0,
    timeout: float = DEFAULT_TIMEOUT,
    cwd: str | Path = ROOT,
) -> PlaybookRun:
    """ansible-playbook PLAYBOOK [-i INVENTORY] [-e TEST_WAITS] [-e EXTRA_VARS] [--check] [--diff] [-v...] ARGS.

    `env` adds to ansible_env(). With `marker` (a file path) every task start is recorded there and
    returned as `.tasks`. With kill_at, `sig` is sent `delay` seconds after task number kill_at started;
    with kill_when (a callable polled while the run goes on), as soon as it returns true (see _send for
    what each signal reaches). A killed run returns once every process it had has ended."""
    if (kill_at is not None or kill_when is not None) and marker is None:
        marker = Path(tempfile.mkstemp(prefix="dfw-tasks-", dir=ansible_tmp())[1])
    if marker is not None:
        marker.unlink(missing_ok=True)
    cmd = [str(BIN / "ansible-playbook"), str(playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if "PYTEST_CURRENT_TEST" in os.environ:
        cmd += ["-e", json.dumps(TEST_WAITS)]
    if extra_vars is not None:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    cmd += list(args)
    started = time.monotonic()
    killed, left = None, set()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(  # noqa: S603 - our own ansible-playbook
            cmd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=ansible_env(env, json_output=json_output, marker=marker),
            cwd=cwd,
            start_new_session=True,
        )
        child = _Child(proc)
        deadline = started + timeout
        poll = 0.02 if (kill_at is not None or kill_when is not None) else 0.05
        while not child.ended():
            if time.monotonic() > deadline:
                _wait_gone(_send(proc.pid, "SIGKILL"))
                child.wait()
                out.seek(0), err.seek(0)
                tasks = _task_starts(marker)
                raise AssertionError(
                    f"{playbook} did not finish in {timeout:.0f}s; last tasks started: {tasks[-5:]}\n"
                    f"{(out.read() + err.read())[-4000:]}"
                )
            if kill_when is not None and killed is None and kill_when():
                if not child.ended():
                    left = _send(proc.pid, sig)
                    killed = len(_task_starts(marker))
            if kill_at is not None and killed is None and len(_task_starts(marker)) >= kill_at:
                time.sleep(delay)
                if not child.ended():
                    left = _send(proc.pid, sig)
                    killed = kill_at
            time.sleep(poll)
        _wait_gone(left)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    seconds = time.monotonic() - started
    COSTS[_current_file()].add({"playbooks": 1, "playbook_cpu": child.cpu})
    return PlaybookRun(cmd, proc.returncode, stdout, stderr, _task_starts(marker), killed, seconds, child.cpu)


# ---------------------------------------------------------------- module calls


def run_module(
    module: str,
    args: dict,
    *,
    check: bool = False,
    diff: bool = False,
    env: dict | None = None,
    via: str | None = None,
) -> dict:
    """The result of one call of `dataflywheel.blueprint.<module>` as Ansible reports it (changed, failed,
    msg, warnings as text, diff, return values). In-process unless via="ansible" (or the environment
    variable DFW_MODULE_RUNNER=ansible) sends it through `ansible localhost -m`. `env` is the environment
    the module sees on top of the test's (env_fallback options, K8S_AUTH_*). A result also carries
    `_warnings` (the same list as `warnings`, empty when there are none)."""
    via = via or os.environ.get("DFW_MODULE_RUNNER") or "inprocess"
    if via == "ansible":
        result = _module_via_ansible(module, args, check=check, diff=diff, env=env)
    elif via == "inprocess":
        result = _module_in_process(module, args, check=check, diff=diff, env=env)
    else:
        raise ValueError(f"via={via!r}: use 'inprocess' or 'ansible' (DFW_MODULE_RUNNER)")
    result["_warnings"] = result.get("warnings", [])
    return result


def _module_via_ansible(module: str, args: dict, *, check: bool, diff: bool, env: dict | None) -> dict:
    cmd = [str(BIN / "ansible"), "localhost", "-m", f"{COLLECTION}.{module}", "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    cpu_before = _children_cpu()
    proc = subprocess.run(  # noqa: S603 - our own ansible
        cmd,
        capture_output=True,
        text=True,
        # one task, one fork: nothing for dfw_warm to share
        env=ansible_env(
            {"ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", **(env or {})}, warm=False
        ),
        cwd=ROOT,
        check=False,
        timeout=DEFAULT_TIMEOUT,
    )
    COSTS[_current_file()].add({"forked": 1, "forked_cpu": _children_cpu() - cpu_before})
    try:
        out = json.loads(proc.stdout)
    except ValueError as err:
        raise AssertionError(
            f"no JSON from ansible -m {module}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        ) from err
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


@contextlib.contextmanager
def _environ(extra: dict):
    saved = {key: os.environ.get(key) for key in extra}
    for key, value in extra.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = str(value)
    saved_tempdir, tempfile.tempdir = tempfile.tempdir, ansible_tmp()
    try:
        yield
    finally:
        tempfile.tempdir = saved_tempdir
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _module_in_process(module: str, args: dict, *, check: bool, diff: bool, env: dict | None) -> dict:
    from ansible.module_utils import _internal as ansible_internal  # noqa: PLC0415 - ansible is slow to import
    from ansible.module_utils.common import warnings as ansible_warnings  # noqa: PLC0415
    from ansible.module_utils.testing import patch_module_args  # noqa: PLC0415

    code = importlib.import_module(f"ansible_collections.dataflywheel.blueprint.plugins.modules.{module}")
    internal = {
        "_ansible_check_mode": check,
        "_ansible_diff": diff,
        "_ansible_module_name": f"{COLLECTION}.{module}",
        "_ansible_tmpdir": tempfile.mkdtemp(prefix=f"{module}-", dir=ansible_tmp()),
    }
    ansible_warnings._global_warnings.clear()  # noqa: SLF001 - module-global, as each forked module starts empty
    ansible_warnings._global_deprecations.clear()  # noqa: SLF001
    stdout, stderr, crash = io.StringIO(), io.StringIO(), None
    cpu_before = _self_cpu()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_environ({"TMPDIR": ansible_tmp(), **(env or {})}))
            stack.enter_context(patch_module_args({**args, **internal}))
            # a module runs on the target: once this process imported controller code (a lookup or filter
            # test), module_utils would send warnings to the controller's Display instead of the result
            stack.enter_context(mock.patch.object(ansible_internal, "is_controller", False))
            stack.enter_context(contextlib.redirect_stdout(stdout))
            stack.enter_context(contextlib.redirect_stderr(stderr))
            try:
                code.main()
            except SystemExit:
                pass
            except Exception:  # noqa: BLE001 - reported as Ansible reports a module crash
                crash = traceback.format_exc()
        warnings = list(ansible_warnings.get_warning_messages())
        deprecations = list(ansible_warnings.get_deprecation_messages())
    finally:
        ansible_warnings._global_warnings.clear()  # noqa: SLF001
        ansible_warnings._global_deprecations.clear()  # noqa: SLF001
        COSTS[_current_file()].add({"inprocess": 1, "inprocess_cpu": _self_cpu() - cpu_before})
    if crash:
        return {"failed": True, "changed": False, "msg": f"MODULE FAILURE (in-process)\n{crash}", "module_stderr": ""}
    lines = [line for line in stdout.getvalue().splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError(
            f"{module} returned no result (in-process):\nstdout: {stdout.getvalue()[-3000:]}\n"
            f"stderr: {stderr.getvalue()[-3000:]}"
        )
    result = json.loads(lines[-1])
    result.setdefault("changed", False)
    result.pop("warnings", None), result.pop("deprecations", None)
    if warnings:
        result["warnings"] = warnings
    if deprecations:
        result["deprecations"] = deprecations
    return result


# ---------------------------------------------------------------- ansible-doc

_DOCS: dict[str, dict] = {}


def ansible_doc(*names: str, plugin_type: str = "module") -> dict:
    """`ansible-doc --json -t TYPE NAME...` as a dict keyed by the plugin's full name. Every module of the
    collection is rendered by ONE ansible-doc run per test process (the first request), later requests read
    that result; other plugin types are rendered as asked."""
    if plugin_type != "module":
        return _ansible_doc_run("-t", plugin_type, *names)
    if not _DOCS:
        modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
        _DOCS.update(_ansible_doc_run(*(f"{COLLECTION}.{m}" for m in modules)))
    missing = [n for n in names if n not in _DOCS]
    found = _ansible_doc_run(*missing) if missing else {}
    return {n: _DOCS.get(n) or found[n] for n in names}


def _ansible_doc_run(*args: str) -> dict:
    cpu_before = _children_cpu()
    proc = subprocess.run(  # noqa: S603 - our own ansible-doc
        [str(BIN / "ansible-doc"), "--json", *args],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=ROOT,
        check=False,
        timeout=DEFAULT_TIMEOUT,
    )
    COSTS[_current_file()].add({"forked": 1, "forked_cpu": _children_cpu() - cpu_before})
    assert proc.returncode == 0, f"ansible-doc {' '.join(args)}:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


# ---------------------------------------------------------------- process trees (timeouts, interruption tests)


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
