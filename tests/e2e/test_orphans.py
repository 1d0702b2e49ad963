"""No orphans: children of `rapport broker` / `rapport up` die with their parent, even on SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.embedded.children import first_line
from streams.embedded.ports import free_port
from streams.embedded.stackfile import read_stack
from tests.support.stack import REPO

pytestmark = pytest.mark.e2e


def _descendants(pid: int) -> set[int]:
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


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pids: set[int], timeout_s: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = {p for p in pids if _alive(p)}
        if not left:
            return set()
        time.sleep(0.2)
    return {p for p in pids if _alive(p)}


def test_broker_child_dies_with_sigkilled_parent(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=open(log, "wb"), cwd=REPO)  # noqa: SIM115
    url = first_line(proc, "rapport broker", log)
    assert url.startswith("kafka://127.0.0.1:")
    kids = _descendants(proc.pid)
    assert kids, "the Tansu child should be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _wait_gone(kids) == set()


def test_up_children_die_when_up_is_sigkilled(tmp_path: Path) -> None:
    """`rapport up` also starts the ingest agents the clients file and credentials allow.

    Jetstream needs no credential, so the Bluesky agent starts: it is pointed at a dead
    loopback port (no traffic leaves the machine); the others lack credentials and say so.
    """
    data = tmp_path / "data"
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env["RAPPORT_BLUESKY_JETSTREAM_URL"] = f"ws://127.0.0.1:{free_port()}/subscribe"
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--data-dir", str(data), "--clients",
                             str(REPO / "clients.example.toml")], stdout=log, stderr=log, cwd=REPO, env=env)
    deadline = time.monotonic() + 90
    while read_stack(data) is None:
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "up.log").read_text()
        time.sleep(0.2)
    kids = _descendants(proc.pid)
    assert len(kids) >= 4  # store, broker, worker, the bluesky agent
    text = (tmp_path / "up.log").read_text()
    assert "bluesky agent running" in text
    assert "RAPPORT_X_BEARER_TOKEN is not set" in text
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _wait_gone(kids) == set()
    assert read_stack(data) is None  # a stale stack file is not taken for a running stack
