"""Starting Rapport child processes (store, workers) that die with their parent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from streams.embedded.lifecycle import die_with_parent
from streams.errors import StackError


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None,
          capture_first_line: bool = False, own_session: bool = False) -> subprocess.Popen[bytes]:
    """Start ``python -m streams.cli ARGS``; its output goes to ``log_path``.

    With ``capture_first_line`` stdout is a pipe so the caller can read the URL the child
    prints first; the rest of its stdout is then the caller's to drain or ignore. With
    ``own_session`` the child leads a session (and process group) of its own, so nothing it
    signals to "its group" reaches the stack; it still dies with its parent (PDEATHSIG).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *args],
        stdout=subprocess.PIPE if capture_first_line else log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env=full_env,
        start_new_session=own_session,
        preexec_fn=die_with_parent,
    )


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
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise StackError(f"{what} did not start (exit {proc.poll()}):\n{tail}")


def stop(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
