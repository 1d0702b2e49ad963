"""Starting Rapport child processes (store, workers, ingest agents) that die with their parent.

Every child gets PR_SET_PDEATHSIG and ``RAPPORT_SUPERVISOR_PID`` (its orphan watchdog, see
:mod:`streams.embedded.lifecycle`); a child started with ``ready=True`` also gets a ready
pipe (``RAPPORT_READY_FD``) that :func:`wait_ready` reads.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from streams.embedded.lifecycle import READY_LINE, die_with_parent
from streams.errors import StackError


class Child(subprocess.Popen[bytes]):
    """A child process, with the read end of its ready pipe when it was given one."""

    ready_fd: int | None = None


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None,
          capture_first_line: bool = False, ready: bool = False, own_session: bool = False) -> Child:
    """Start ``python -m streams.cli ARGS``; its output goes to ``log_path``.

    With ``capture_first_line`` stdout is a pipe so the caller can read the URL the child
    prints first; the rest of its stdout is then the caller's to drain or ignore. With
    ``ready`` the child gets a pipe to say it has started (:func:`wait_ready`). With
    ``own_session`` the child leads a session (and process group) of its own, so nothing it
    signals to "its group" reaches the stack; it still dies with its parent (PDEATHSIG).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["RAPPORT_SUPERVISOR_PID"] = str(os.getpid())
    full_env.pop("RAPPORT_READY_FD", None)
    read_end, write_end = os.pipe() if ready else (None, None)
    if write_end is not None:
        full_env["RAPPORT_READY_FD"] = str(write_end)
    with open(log_path, "ab") as log:  # the child holds its own copy of the descriptor
        try:
            proc = Child(
                [sys.executable, "-m", "streams.cli", *args],
                stdout=subprocess.PIPE if capture_first_line else log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=full_env,
                pass_fds=() if write_end is None else (write_end,),
                start_new_session=own_session,
                preexec_fn=die_with_parent,
            )
        finally:
            if write_end is not None:
                os.close(write_end)
    proc.ready_fd = read_end
    return proc


def wait_ready(children: dict[str, tuple[Child, Path]], timeout_s: float = 90.0) -> dict[str, str]:
    """Wait until every child has written its ready line; the ones that did not, with why.

    A child that exits first, or closes its pipe without the line, is reported at once with
    the tail of its log; one still silent after ``timeout_s`` is reported with its log too.
    Returns ``{name: reason}`` for those (empty when all started); the caller decides what
    a failure means (a worker's stops the stack, an agent's is a note).
    """
    waiting = {name: entry for name, entry in children.items() if entry[0].ready_fd is not None}
    failed: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                for name, (_, log_path) in waiting.items():
                    failed[name] = f"{name} did not say it started within {timeout_s:.0f} s:\n{_tail(log_path)}"
                break
            fds = {entry[0].ready_fd: name for name, entry in waiting.items() if entry[0].ready_fd is not None}
            readable, _, _ = select.select(list(fds), [], [], min(left, 0.5))
            for fd in readable:
                name = fds[fd]
                proc, log_path = waiting.pop(name)
                line = os.read(fd, 64)
                _close_ready(proc)
                if not line.startswith(READY_LINE.strip()):
                    with suppress(subprocess.TimeoutExpired):
                        proc.wait(5)  # it closed its pipe: it is exiting; wait for its status
                    failed[name] = f"{name} did not start (exit {proc.poll()}):\n{_tail(log_path)}"
    finally:
        for proc, _ in waiting.values():
            _close_ready(proc)
    return failed


def _close_ready(proc: Child) -> None:
    if proc.ready_fd is not None:
        os.close(proc.ready_fd)
        proc.ready_fd = None


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""


def first_line(proc: subprocess.Popen[bytes], what: str, log_path: Path, timeout_s: float = 60.0) -> str:
    """The first stdout line of ``proc`` (its URL), or a :class:`StackError` with its log."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0].decode().strip()
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise StackError(f"{what} did not start (exit {proc.poll()}):\n{_tail(log_path)}")


def stop(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
