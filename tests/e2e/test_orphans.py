"""No orphans: children of `rapport broker` / `rapport up` die with their parent, even on SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streams.embedded.children import first_line
from streams.embedded.ports import free_port
from streams.embedded.stackfile import read_stack
from tests.support.procs import (
    CASE_VAR,
    case_env,
    descendants,
    ended,
    pids_gone,
    rapport_popen,
    wait_for_stack,
    wait_gone,
)
from tests.support.stack import REPO

pytestmark = pytest.mark.e2e


def test_broker_child_dies_with_sigkilled_parent(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    with case_env() as env, open(log, "wb") as err:
        with ended(subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--data-dir", str(tmp_path)],
                                    stdout=subprocess.PIPE, stderr=err, cwd=REPO, env=env)) as proc:
            url = first_line(proc, "rapport broker", log)
            assert url.startswith("kafka://127.0.0.1:")
            kids = descendants(proc.pid)
            assert kids, "the Tansu child should be running"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert pids_gone(kids) == set()
            assert wait_gone(CASE_VAR, env[CASE_VAR]) == {}


def test_up_children_die_when_up_is_sigkilled(tmp_path: Path) -> None:
    """`rapport up` also starts the ingest agents the clients file and credentials allow.

    Jetstream needs no credential, so the Bluesky agent starts: it is pointed at a dead
    loopback port (no traffic leaves the machine); the others lack credentials and say so.
    The stack file is written only once every worker and agent said it started and the
    stack's lines are printed, so everything asserted here holds the moment it appears.
    """
    data, log = tmp_path / "data", tmp_path / "up.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    base["RAPPORT_BLUESKY_JETSTREAM_URL"] = f"ws://127.0.0.1:{free_port()}/subscribe"
    with case_env(base) as env:
        with ended(rapport_popen(["up", "--data-dir", str(data), "--clients", str(REPO / "clients.example.toml")],
                                 log, env)) as proc:
            wait_for_stack(proc, data, log)
            kids = descendants(proc.pid)
            assert len(kids) >= 4  # store, broker, worker, the bluesky agent
            text = log.read_text()
            assert "bluesky agent running" in text
            assert "RAPPORT_X_BEARER_TOKEN is not set" in text
            status = json.loads((data / "agents" / "bluesky.json").read_text())
            assert status["state"] != "stopped"  # started (its platform does not answer: a dead port)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert pids_gone(kids) == set()
            assert wait_gone(CASE_VAR, env[CASE_VAR]) == {}
            assert read_stack(data) is None  # a stale stack file is not taken for a running stack


STUBBORN_CHILD = """
import signal, sys, time
from streams.embedded.lifecycle import watch_supervisor
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a graceful stop that never ends
watch_supervisor(int(sys.argv[1]), grace_s=1.0, poll_s=0.1)
print("child up", flush=True)
time.sleep(600)
"""

PARENT = """
import os, subprocess, sys, time
from streams.embedded.lifecycle import die_with_parent
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())], preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_child_whose_stop_hangs_still_dies_with_its_starter(tmp_path: Path) -> None:
    """The death signal is a SIGTERM; a child that cannot finish its stop exits by its watchdog."""
    with case_env() as env:
        with ended(subprocess.Popen([sys.executable, "-c", PARENT, STUBBORN_CHILD], stdout=subprocess.PIPE,
                                    cwd=REPO, env=env)) as parent:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            parent.kill()
            parent.wait()
            assert pids_gone({child}, timeout_s=15) == set()
            assert wait_gone(CASE_VAR, env[CASE_VAR]) == {}


def test_a_worker_started_for_a_gone_supervisor_stops(tmp_path: Path) -> None:
    """`RAPPORT_SUPERVISOR_PID` arms the watchdog in every command (here `rapport worker`)."""
    with case_env() as env:
        env["RAPPORT_SUPERVISOR_PID"] = "1"  # never our parent: we count as orphaned at once
        env["RAPPORT_BROKER_URL"] = f"kafka://127.0.0.1:{free_port()}"
        env["RAPPORT_STORE_URL"] = f"http://127.0.0.1:{free_port()}"
        env["RAPPORT_CLIENTS"] = str(REPO / "clients.example.toml")
        env["RAPPORT_DATA_DIR"] = str(tmp_path / "data")
        log = tmp_path / "worker.log"
        with ended(rapport_popen(["worker"], log, env)) as proc:
            proc.wait(60)
            assert "is gone; stopping" in log.read_text()
