"""The pure parts of `rapport chaos --edges` and its fake Jetstream (loopback, no stack)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

from streams.chaos.edges import FakeJetstream, check_edge, edge_headers, edge_keys
from streams.chaos.truth import expected_keys
from streams.clients import load_clients
from streams.normalize.base import AccountIndex
from streams.simulator.traffic import Simulator
from tests.support.procs import REPO

CLIENTS = load_clients(REPO / "clients.example.toml")
START = 1_790_000_000_000


def sim_lines(platform: str, n: int = 600) -> list[bytes]:
    return [orjson.dumps(ev.payload) for ev in Simulator(CLIENTS, seed=5, start_ms=START).events(n)
            if ev.platform == platform]


def test_webhook_lines_carry_the_receivers_headers() -> None:
    body = sim_lines("facebook")[0]
    headers = edge_headers("facebook", body, START)
    assert headers["source"] == "webhook" and headers["via_account"] == "700001"
    assert edge_headers("bluesky", b"{}", START)["source"] == "stream"


def test_edge_truth_is_the_normalizers_with_edge_headers() -> None:
    index = AccountIndex.build(CLIENTS)
    for platform in ("facebook", "instagram", "bluesky"):
        lines = sim_lines(platform)
        assert lines, platform
        dead: list[int] = []
        keys = set(edge_keys(platform, lines, index, START, dead.append))
        assert keys and sum(dead) == 0, platform
        # every key names the platform and a tracked account of it
        assert {k[2] for k in keys} == {platform}
        replayed = set(expected_keys(platform, lines, index, START, lambda _: None))
        assert keys >= replayed  # the edge's own headers never attribute less than a replay


def test_check_edge_counts_lost_and_unexpected() -> None:
    c = check_edge("webhooks", {"a", "b", "c"}, {"b", "c", "d"}, repeated=2)
    assert (c.want, c.lost, c.unexpected, c.repeated, c.examples) == (3, 1, 1, 2, ["a"])


def test_fake_jetstream_serves_released_events_from_the_cursor(tmp_path: Path) -> None:
    events = [{"did": f"did:plc:x{i}", "time_us": 1_000 + i * 10, "kind": "commit"} for i in range(20)]
    path = tmp_path / "bluesky.edge.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in reversed(events)))  # served in time_us order
    fake = FakeJetstream(path, span_s=0.2)
    fake.start()

    async def read(url: str, n: int) -> list[int]:
        async with connect(url) as ws:
            return [orjson.loads(await asyncio.wait_for(ws.recv(), 10))["time_us"] for _ in range(n)]

    try:
        fake.begin()
        assert asyncio.run(read(fake.url, 20)) == [e["time_us"] for e in events]
        assert asyncio.run(read(fake.url + "?cursor=1095", 10)) == [e["time_us"] for e in events[10:]]
        assert fake.done() and fake.cursors == [None, 1095] and fake.served == 20
    finally:
        fake.close()
