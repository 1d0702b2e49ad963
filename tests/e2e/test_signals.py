"""Commands that run a stack of their own stop it cleanly on SIGINT, SIGTERM and SIGHUP.

`replay --drain`, `demo` and `bench` each start a store, a broker and a worker. A signal
mid-run (what Ctrl-C, `timeout`, a CI runner, `kill` or a closed terminal sends) must end
the command and everything it started: checked by the case token every process of the
command inherits (tests/support/procs.py), not by the process tree, since Tansu runs in a
session of its own.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from streams.clients import load_clients
from streams.embedded.stackfile import read_stack
from streams.simulator.traffic import Simulator
from tests.support.procs import CASE_VAR, case_env, ended, rapport_popen, tagged, wait_gone
from tests.support.stack import REPO

pytestmark = pytest.mark.e2e
CLIENTS = REPO / "clients.example.toml"
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
BOARD_LINE = re.compile(r"^t=\d+s ", re.MULTILINE)  # demo --headless: one summary line per client


def _reddit_file(path: Path, n: int) -> Path:
    sim = Simulator(load_clients(CLIENTS), seed=3, start_ms=1_790_000_000_000)
    events = [e for e in sim.events(n) if e.platform == "reddit"]
    path.write_bytes(b"".join(orjson.dumps(e.payload) + b"\n" for e in events))
    return path


def _wait(what: str, ready: object, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():  # type: ignore[operator]
        assert proc.poll() is None, f"exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {timeout_s:.0f} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def _stack_of_own(token: str) -> bool:
    """The command's store, broker and worker all run (its stack is up)."""
    cmds = " ".join(tagged(CASE_VAR, token).values())
    return "tansu" in cmds and "streams.cli store" in cmds and "streams.cli worker" in cmds


def _signal_and_check(proc: subprocess.Popen[bytes], sig: signal.Signals, token: str, log: Path) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running 60 s after {sig.name}:\n{log.read_text()[-3000:]}") from None
    left = wait_gone(CASE_VAR, token, timeout_s=20)
    assert left == {}, f"left behind after {sig.name}: {left}\n{log.read_text()[-3000:]}"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_replay_drain_stops_its_stack_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    data, log = tmp_path / "data", tmp_path / "replay.log"
    lines = _reddit_file(tmp_path / "reddit.jsonl", 20_000)
    with case_env() as env:
        with ended(rapport_popen(["replay", str(lines), "--platform", "reddit", "--source", "listen:r/acme", "--drain",
                                  "--data-dir", str(data), "--clients", str(CLIENTS)], log, env)) as proc:
            _wait("a started stack", lambda: read_stack(data) is not None, proc, log)
            _signal_and_check(proc, sig, env[CASE_VAR], log)
            assert read_stack(data) is None


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_demo_stops_its_stack_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    data, log = tmp_path / "data", tmp_path / "demo.log"
    with case_env() as env:
        with ended(rapport_popen(["demo", "--headless", "--duration", "600", "--rate", "20",
                                  "--data-dir", str(data), "--clients", str(CLIENTS)], log, env)) as proc:
            _wait("a first board line", lambda: BOARD_LINE.search(log.read_text()) is not None, proc, log)
            _signal_and_check(proc, sig, env[CASE_VAR], log)
            assert read_stack(data) is None
            if sig != signal.SIGHUP:  # a closed terminal has nobody to read the summary
                assert "summary:" in log.read_text()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_bench_stops_its_stack_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    log = tmp_path / "bench.log"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with case_env() as env:
        env["TMPDIR"] = str(tmp)  # the bench's own data dir lands here: it must be gone too
        with ended(rapport_popen(["bench", "--events", "20000", "--clients", str(CLIENTS),
                                  "--data-dir", str(tmp_path / "data")], log, env)) as proc:
            _wait("the bench's stack", lambda: _stack_of_own(env[CASE_VAR]), proc, log, timeout_s=180)
            _signal_and_check(proc, sig, env[CASE_VAR], log)
            assert list(tmp.iterdir()) == []
