"""`rapport chaos`: a small seeded run through real processes, every fault kind once.

The harness starts `rapport up --workers 2` and `rapport replay --drain` processes, SIGKILLs
and SIGTERMs workers, SIGSTOPs the store, SIGKILLs the broker and the whole stack, then
compares the store with the truth. Nothing is timed: deadlines are generous, only the
verdict and the leftovers are asserted.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streams.chaos.plan import FAULT_KINDS
from streams.embedded.stackfile import read_stack
from tests.support.procs import CASE_VAR, REPO, case_env, run_chaos, wait_gone

pytestmark = pytest.mark.e2e

CLIENTS = REPO / "clients.example.toml"


@pytest.mark.timeout(1500)  # ~2.5 min on an idle 2-core machine; far longer when it is shared
def test_chaos_small_seeded_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = run_chaos(["--events", "8000", "--faults", "6", "--seed", "7"], data, CLIENTS, tmp_path / "chaos.err")
    result, log = run.verdict, run.log
    assert result is not None, log
    assert set(result) >= {"events", "faults", "fault_kinds", "lost", "duplicated", "tables_equal", "seconds"}
    assert result["events"] == 8000 and result["faults"] == 6, result
    assert set(result["fault_kinds"]) == set(FAULT_KINDS), result
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["tables_equal"] is True, (result, log)
    assert result["dead_letters"] == result["dead_letters_expected"], (result, log)
    assert run.returncode == 0, log
    assert not run.left, run.left
    assert read_stack(data) is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_chaos_stopped_by_a_signal_leaves_nothing_running(tmp_path: Path, sig: int) -> None:
    data = tmp_path / "data"
    with case_env() as env, open(tmp_path / "chaos.err", "wb") as err_out:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "chaos", "--events", "3000", "--faults", "0",
                                 "--rate", "20", "--data-dir", str(data), "--clients", str(CLIENTS)],
                                stdout=subprocess.PIPE, stderr=err_out, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
        try:
            deadline = 300
            while read_stack(data) is None and deadline > 0 and proc.poll() is None:
                subprocess.run(["sleep", "0.5"], check=True)
                deadline -= 0.5
            assert proc.poll() is None, (tmp_path / "chaos.err").read_text()[-3000:]
            assert read_stack(data) is not None
            proc.send_signal(sig)
            proc.wait(180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        left = wait_gone(CASE_VAR, env[CASE_VAR], timeout_s=30.0)
    assert proc.returncode != 0  # interrupted: no verdict
    assert not left, left
    assert read_stack(data) is None
