"""Processes a test run started, found by an environment token, so none outlives the run.

Every process the test session spawns inherits ``PYTEST_RAPPORT_RUN`` (set by
tests/conftest.py at import); Tansu and some children run in sessions of their own, so
the process tree alone would miss them, but ``/proc/<pid>/environ`` keeps the token
whatever the parentage. A test that starts a Rapport command gives it a second token
(:func:`case_env`) to check that the command left nothing behind, whatever the signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.embedded.stackfile import read_stack

RUN_VAR = "PYTEST_RAPPORT_RUN"
CASE_VAR = "PYTEST_RAPPORT_CASE"
REPO = Path(__file__).resolve().parent.parent.parent


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def tagged(var: str, value: str) -> dict[int, str]:
    """Live processes (not this one) whose environment holds ``var=value``: pid -> command line."""
    needle = f"{var}={value}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if needle not in environ.split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if _alive(int(entry.name)):
            found[int(entry.name)] = cmdline
    return found


def wait_gone(var: str, value: str, timeout_s: float = 20.0) -> dict[int, str]:
    """Wait until no process carries the token; what is still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = tagged(var, value)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = tagged(var, value)
    return left


def kill_all(procs: dict[int, str]) -> None:
    for pid in procs:
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def pids_gone(pids: set[int], timeout_s: float = 15.0) -> set[int]:
    """Wait until every pid has exited; those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = {p for p in pids if _alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {p for p in pids if _alive(p)}
    return left


@contextmanager
def case_env(base: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """An environment carrying a fresh case token; on exit, whatever still carries it is killed.

    The check belongs to the test (``assert not wait_gone(CASE_VAR, env[CASE_VAR])``): this
    context only guarantees that a failing test leaves nothing running.
    """
    env = dict(os.environ if base is None else base)
    env[RUN_VAR] = os.environ.get(RUN_VAR, "")
    env[CASE_VAR] = uuid.uuid4().hex
    try:
        yield env
    finally:
        kill_all(tagged(CASE_VAR, env[CASE_VAR]))


@contextmanager
def ended(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """``proc`` for the block; killed on the way out if it still runs, whatever the block did."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def rapport_popen(args: list[str], log: Path, env: dict[str, str], **kw: object) -> subprocess.Popen[bytes]:
    """``python -m streams.cli ARGS`` from the repository, output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "streams.cli", *args], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, cwd=REPO, env=env, **kw)  # type: ignore[call-overload]


def wait_for_stack(proc: subprocess.Popen[bytes], data: Path, log: Path, timeout_s: float = 120.0) -> None:
    """Until ``proc`` (a ``rapport up``) has written its stack file; kill it and fail otherwise."""
    deadline = time.monotonic() + timeout_s
    while read_stack(data) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise AssertionError(f"rapport up did not start (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@dataclass(frozen=True)
class ChaosRun:
    """What one ``rapport chaos`` run left: its verdict (the last stdout line), the end of
    its stderr, its exit status and the processes it started that outlived it."""

    verdict: dict[str, Any] | None
    log: str
    returncode: int
    left: dict[int, str]


def run_chaos(args: list[str], data: Path, clients: Path, err_path: Path, timeout_s: float = 1200.0) -> ChaosRun:
    """``rapport chaos ARGS`` to its end; SIGTERMed (then killed) if it overruns, since the
    harness stops what it started only when asked to; whatever still carries its case token
    afterwards is reported in ``left`` and killed."""
    with case_env() as env, open(err_path, "wb") as err_out:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "chaos", *args, "--data-dir", str(data),
                                 "--clients", str(clients)],
                                stdout=subprocess.PIPE, stderr=err_out, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        left = wait_gone(CASE_VAR, env[CASE_VAR], timeout_s=30.0)
    lines = out.decode().strip().splitlines()
    return ChaosRun(json.loads(lines[-1]) if lines else None, err_path.read_text(errors="replace")[-6000:],
                    proc.returncode, left)
