"""`rapport replay --drain` across a stack SIGKILLed and started again (new ports).

The replay re-reads stack.json, reconnects to the new broker, and once drained publishes
again whatever the archive lacks (the killed broker kept its topics in memory): it exits 0
only when every line is archived, and the store then holds every payload once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from streams.clients import load_clients
from streams.embedded.stackfile import read_stack
from streams.kafka_admin import high_watermarks
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records
from tests.e2e.test_cli import CLIENTS, _start_up, query_json
from tests.support.stack import REPO, stop_process

pytestmark = pytest.mark.e2e


def comment(i: int) -> bytes:
    return orjson.dumps({"kind": "t1", "data": {
        "id": f"r{i}", "name": f"t1_r{i}", "author": f"user{i % 50}", "body": f"hello {i}",
        "parent_id": "t3_root", "link_id": "t3_root", "subreddit": "acme", "created_utc": 1_790_000_000.0 + i}})


def test_replay_drain_reconnects_to_a_restarted_stack_and_loses_nothing(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "up.log"
    lines = [comment(i) for i in range(3000)]
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    index = AccountIndex.build(load_clients(CLIENTS))
    want = set()
    for line in lines:
        rec = RawRecord("t", 0, 0, "reddit", line, {"received_at": "1790000000000"}, 1)
        for env in normalize_records([rec], index, 1).envelopes.values():
            want.update(row[3] for row in env.interactions)
    up = _start_up(data, log)
    replay_log = open(tmp_path / "replay.log", "w+")  # noqa: SIM115
    replay = subprocess.Popen([sys.executable, "-m", "streams.cli", "replay", str(path), "--platform", "reddit",
                               "--drain", "--rate", "600", "--data-dir", str(data), "--clients", str(CLIENTS)],
                              stdout=replay_log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    try:
        info = read_stack(data)
        assert info is not None
        deadline = time.monotonic() + 60
        while sum(high_watermarks(info.broker_url, ["rapport.raw.reddit"]).values()) < 300:  # mid-replay
            assert replay.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(up.pid, signal.SIGKILL)  # the whole stack: broker, store, workers
        up.wait()
        time.sleep(1.0)
        up = _start_up(data, log)  # new ports in stack.json
        replay.wait(300)
        replay_log.seek(0)
        out = replay_log.read()
        assert replay.returncode == 0, out + log.read_text()[-3000:]
        assert "reconnected to" in out, out
        stored = query_json("SELECT event_id FROM interactions FINAL", data)
        assert {r["event_id"] for r in stored} == want and len(stored) == len(want)
    finally:
        if replay.poll() is None:
            os.killpg(replay.pid, signal.SIGKILL)
            replay.wait()
        stop_process(up, signal.SIGINT, 30, group=True)
        replay_log.close()
    assert read_stack(data) is None
