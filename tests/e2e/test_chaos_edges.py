"""`rapport chaos --edges`: the stack's webhook receiver and Bluesky agent as traffic sources.

Facebook and Instagram payloads are POSTed, signed, to the receiver of a real `rapport up
--workers 2` (sent again until answered 200, never after), Bluesky commits are served by a
loopback fake Jetstream the agent reads, the other platforms are replayed; every fault kind
lands once (workers SIGKILLed and SIGTERMed, the store SIGSTOPped, the broker and the whole
stack SIGKILLed). The verdict counts each delivery answered 200 and each served event in the
archive exactly once, and every detection table against its recomputation. A receiver that
answered 200 before its spool's fsync would lose what it acknowledged while the broker was
dead (between the broker's SIGKILL and `rapport up` stopping): ``edges.webhooks.lost`` and
``lost`` would not be 0. Nothing is timed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.chaos.plan import FAULT_KINDS
from streams.embedded.stackfile import read_stack
from tests.support.procs import REPO, run_chaos

pytestmark = pytest.mark.e2e

CLIENTS = REPO / "clients.example.toml"


def test_chaos_with_webhook_and_jetstream_traffic_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = run_chaos(["--edges", "--events", "4000", "--faults", str(len(FAULT_KINDS)), "--seed", "11"],
                    data, CLIENTS, tmp_path / "chaos.err")
    result, log = run.verdict, run.log
    assert result is not None, log
    assert set(result["fault_kinds"]) == set(FAULT_KINDS), result
    hooks, jet = result["edges"]["webhooks"], result["edges"]["jetstream"]
    # Every delivery was sent until it got a 200; some were refused or unanswered on the way
    # (the stack was down), and each one answered 200 is archived once.
    assert hooks["acked"] == hooks["sent"] > 0 and hooks["lost"] == 0 and hooks["unexpected"] == 0, result
    assert hooks["attempts"] > hooks["acked"], result  # the faults made Meta send some again
    # The fake served every event, the agent came back with a cursor after the stack's restarts.
    assert jet["sent"] > 0 and jet["lost"] == 0 and jet["unexpected"] == 0 and jet["repeated"] == 0, result
    assert jet["resumed_with_cursor"] >= 1, result
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["tables_equal"] is True, (result, log)
    assert result["dead_letters"] == result["dead_letters_expected"], (result, log)
    assert run.returncode == 0, log
    assert not run.left, run.left
    assert read_stack(data) is None
