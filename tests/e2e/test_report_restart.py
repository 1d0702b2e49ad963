"""The whole embedded stack SIGKILLed mid-run and started again: detection equals the batch
recomputation over what the store holds, and `rapport report` reads it.

`rapport up` restarts on an empty broker (memory storage): what the archive holds but the
store lacks is re-published, and every owned account is rebuilt from the store and its
stored detection rows corrected, including accounts no new event reaches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from streams.chaos.check import diff, expected_rows, rollup_rows, rollup_truth, stored_rows
from streams.clients import PLATFORMS, load_clients
from streams.contracts.topics import INTERACTIONS, raw_topic
from streams.drain import wait_drained
from streams.embedded.stackfile import read_stack
from streams.ingest.publisher import Publisher
from streams.settings import Settings
from streams.simulator.traffic import Simulator
from streams.store.client import connect
from tests.e2e.test_report_reddit import rapport_cmd
from tests.support.procs import descendants, pids_gone, wait_for_stack
from tests.support.stack import REPO, stop_process

pytestmark = pytest.mark.e2e
CLIENTS = REPO / "clients.example.toml"


def start_up(data: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--data-dir", str(data), "--clients",
                             str(CLIENTS)], stdout=out, stderr=out, cwd=REPO, start_new_session=True)
    wait_for_stack(proc, data, log)
    return proc


def publish(data: Path, events: list) -> None:
    info = read_stack(data)
    assert info is not None
    pub = Publisher(Settings(publish_batch=25), info.broker_url)
    for ev in events:
        pub.add(ev.platform, orjson.dumps(ev.payload), ev.source, received_at=ev.event_ms + 3000,
                via_account=ev.via_account or "")
    pub.close()


def drain(data: Path) -> None:
    info = read_stack(data)
    assert info is not None
    stages = [[f"rapport.{raw_topic(p)}" for p in PLATFORMS], [f"rapport.{INTERACTIONS}"]]
    wait_drained(info.broker_url, "rapport", stages, timeout_s=180)


def test_stack_killed_and_restarted_ends_with_the_recomputed_tables(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "up.log"
    clients = load_clients(CLIENTS)
    events = list(Simulator(clients, seed=13, start_ms=1_790_000_000_000).events(5000))
    up = start_up(data, log)
    try:
        publish(data, events[:2500])
        drain(data)
        publish(data, events[2500:])  # and kill at once, mid-stream
        kids = descendants(up.pid)
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    # The next `up` needs the store's data path: wait for the old processes, not a guess.
    assert pids_gone(kids, timeout_s=30) == set()
    up = start_up(data, log)
    try:
        drain(data)
        info = read_stack(data)
        assert info is not None
        client = connect(info.store_url, Settings(data_dir=data))  # credentials from the data dir
        try:
            # Accounts no re-published batch reaches are rebuilt by the worker's timer.
            deadline = time.monotonic() + 60
            while True:
                want, got = expected_rows(clients, client), stored_rows(client)
                problems = diff(want, got)
                if not problems or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert not problems, problems + "\n" + log.read_text()[-2000:]
            assert rollup_rows(client) == rollup_truth(client)
            assert sum(len(rows) for rows in want.values()) > 500
        finally:
            client.close()
        proc = subprocess.run([*rapport_cmd(), "report", "--format", "json", "--data-dir", str(data),
                               "--clients", str(CLIENTS)], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-2000:]
        report = {c["client_id"]: c for c in json.loads(proc.stdout)}
        assert sum(c["threads"] for c in report.values()) == len(want["threads"])
        assert sum(c["conversations"] for c in report.values()) == len(want["conversations"])
        assert sum(c["alerts_breached"] for c in report.values()) == len(want["alerts"])
    finally:
        stop_process(up, signal.SIGINT, 30, group=True)
