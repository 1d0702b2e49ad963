"""The CLI as a user runs it: replay --drain, query --format json, up killed and restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from streams.clients import PLATFORMS, load_clients
from streams.contracts.topics import INTERACTIONS, raw_topic
from streams.drain import wait_drained
from streams.embedded.stackfile import read_stack
from streams.simulator.traffic import Simulator
from tests.support.procs import descendants, pids_gone, wait_for_stack
from tests.support.stack import REPO, stop_process

pytestmark = pytest.mark.e2e
FIXTURES = REPO.parent / "shared" / "fixtures"
CLIENTS = REPO / "clients.example.toml"


def rapport(*args: str, data_dir: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args, "--data-dir", str(data_dir),
                           "--clients", str(CLIENTS)], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def query_json(sql: str, data_dir: Path) -> list[dict]:
    proc = rapport("query", sql, "--format", "json", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # exactly one JSON array on stdout


def test_replay_drain_then_query(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = rapport("replay", str(FIXTURES / "bluesky_jetstream.jsonl"), "--platform", "bluesky", "--drain",
                   data_dir=data)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("published=8 "), summary
    rows = query_json("SELECT client_id, kind, event_id, parent_id, root_id FROM interactions FINAL "
                      "ORDER BY created_at", data)
    kinds = [r["kind"] for r in rows]
    assert kinds[0] == "post" and "reply" in kinds and "like" in kinds and "follow" in kinds
    assert {r["client_id"] for r in rows} == {"acme"}
    root = rows[0]["event_id"]
    assert all(r["root_id"] == root for r in rows if r["kind"] == "reply")
    assert read_stack(data) is None  # the stack it started is gone


def test_bad_clients_file_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[clients]]\nid = "a"\ntimezone = "Nowhere/Land"\n[[clients.accounts]]\n'
                   'platform = "reddit"\naccount_id = "x"\n')
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "up", "--clients", str(bad),
                           "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "bad.toml" in proc.stderr and "unknown time zone" in proc.stderr
    assert "Traceback" not in proc.stderr


def _start_up(data: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--no-ingest", "--data-dir", str(data),
                             "--clients", str(CLIENTS)], stdout=out, stderr=out, cwd=REPO, start_new_session=True)
    wait_for_stack(proc, data, log)
    return proc


def _publish_file(path: Path, events: list) -> None:
    path.write_bytes(b"".join(orjson.dumps(e.payload) + b"\n" for e in events))


def _drain(data: Path) -> None:
    info = read_stack(data)
    assert info is not None
    stages = [[f"rapport.{raw_topic(p)}" for p in PLATFORMS], [f"rapport.{INTERACTIONS}"]]
    wait_drained(info.broker_url, "rapport", stages, timeout_s=180)


def test_up_killed_and_restarted_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "up.log"
    sim = Simulator(load_clients(CLIENTS), seed=5, start_ms=1_790_000_000_000)
    reddit = [e for e in sim.events(12_000) if e.platform == "reddit" and e.source.startswith("listen:")]
    first, second = reddit[: len(reddit) // 2], reddit[len(reddit) // 2:]
    f1, f2 = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    _publish_file(f1, first)
    _publish_file(f2, second)

    up = _start_up(data, log)
    try:
        proc = rapport("replay", str(f1), "--platform", "reddit", "--source", "listen:r/acme", data_dir=data)
        assert proc.returncode == 0, proc.stderr
        _drain(data)
        before = query_json("SELECT count() AS n FROM interactions FINAL", data)[0]["n"]
        assert before > 0
        # Now kill the whole process group mid-stream: publish more and SIGKILL at once.
        rapport("replay", str(f2), "--platform", "reddit", "--source", "listen:r/acme", data_dir=data)
        kids = descendants(up.pid)
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    # The next `up` needs the store's data path: wait for the old processes, not a guess.
    assert pids_gone(kids, timeout_s=30) == set()
    up = _start_up(data, log)  # empty broker: re-publishes what the archive holds but the store lacks
    try:
        _drain(data)
        archived = query_json(
            "SELECT count() AS n, sum(expected) AS e FROM raw_events FINAL WHERE outcome = 'ok'", data)[0]
        stored = query_json("SELECT count() AS n FROM interactions FINAL", data)[0]["n"]
        changes = query_json("SELECT count() AS n FROM changes FINAL", data)[0]["n"]
        assert stored >= before
        assert stored + changes == archived["e"]  # everything archived is stored, exactly once
        # A replay of both files (what a user does after a crash) completes the data, no duplicates.
        for f in (f1, f2):
            assert rapport("replay", str(f), "--platform", "reddit", "--source", "listen:r/acme",
                           data_dir=data).returncode == 0
        _drain(data)
        final = query_json("SELECT count() AS n, uniqExact(client_id, account_id, platform, event_id) AS u "
                           "FROM interactions FINAL", data)[0]
        assert final["n"] == final["u"] >= stored
    finally:
        stop_process(up, signal.SIGINT, 30, group=True)
    assert read_stack(data) is None
