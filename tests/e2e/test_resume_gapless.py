"""An agent's resume point never skips what died with the broker.

Real processes: a Tansu broker of this test's own, one `rapport worker`, `rapport ingest
bluesky` reading a loopback Jetstream (tests/integration/ingest_support.py) that streams
new events all along. At random moments the broker is SIGKILLed with the agent and the
worker (what `rapport up` does when its broker dies), then all three start again: the
agent resumes from its contiguous watermark. At the end every event the fake served that
concerns a tracked account is in ``raw_events`` (read with FINAL) exactly once, and
nothing else is.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import orjson
import pytest

from streams.ingest.publisher import payload_key
from streams.limits import payload_max_bytes
from streams.settings import Settings
from streams.store.client import connect
from streams.store.migrations import migrate
from tests.integration import fake_jetstream as jetstream
from tests.integration.test_ingest_agents import CLIENTS
from tests.support.broker_kill import Pieces
from tests.support.stack import unique_name

pytestmark = pytest.mark.e2e
SEED = 20261202
EVENTS = 1500
KILLS = 3


class LiveJetstream(jetstream.Jetstream):
    """Like Jetstream itself: without a ``cursor`` a connection starts at the live tail."""

    def __init__(self) -> None:
        super().__init__([])
        self.asked: list[int | None] = []  # the cursor of each connection, as the agent sent it

    def _process_request(self, connection, request):  # type: ignore[no-untyped-def]
        answer = super()._process_request(connection, request)
        query = self.requests[-1]
        self.asked.append(int(query["cursor"][0]) if "cursor" in query else None)
        if "cursor" not in query and self.events:
            query["cursor"] = [str(self.events[-1]["time_us"] + 1)]
        return answer


def archived_keys(settings: Settings) -> list[str]:
    client = connect(str(settings.store_url), settings)
    try:
        rows = client.query("SELECT raw_key FROM raw_events FINAL WHERE platform = 'bluesky'").result_rows
    finally:
        client.close()
    return [r[0] for r in rows]


def test_jetstream_resume_leaves_no_gap_across_broker_kills(store_url: str, tmp_path: Path) -> None:
    name = unique_name("gap")
    clients = tmp_path / "clients.toml"
    clients.write_text(CLIENTS, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", clients=clients, topic_prefix=name, store_database=name,
                        app_id=name, partitions=4, store_url=store_url)
    migrate(store_url, settings)
    rng = random.Random(SEED)
    start_us = int(time.time() * 1_000_000) - 3_600_000_000
    events = jetstream.bluesky_events(start_us, EVENTS, seed=3)
    limit = payload_max_bytes(settings)
    want = {payload_key(orjson.dumps(e), limit) for e in jetstream.relevant(events)}
    chunks = [events[i:i + 25] for i in range(0, len(events), 25)]
    kill_at = set(rng.sample(range(3, len(chunks) - 3), KILLS))

    async def scenario() -> None:
        async with LiveJetstream() as server:
            pieces = Pieces(tmp_path, settings, "bluesky", {"RAPPORT_BLUESKY_JETSTREAM_URL": server.url})

            async def start() -> None:
                before = server.connections
                await asyncio.to_thread(pieces.start)
                deadline = time.monotonic() + 90
                while server.connections == before:  # the agent is reading before anything else happens
                    assert time.monotonic() < deadline and all(p.poll() is None for p in pieces.procs), pieces.logs()
                    await asyncio.sleep(0.1)

            try:
                await start()
                for i, chunk in enumerate(chunks):
                    server.add(chunk)
                    await asyncio.sleep(rng.uniform(0.05, 0.25))
                    if i in kill_at:
                        await asyncio.to_thread(pieces.kill)
                        await start()
                deadline = time.monotonic() + 180
                got: list[str] = []
                while time.monotonic() < deadline:
                    got = await asyncio.to_thread(archived_keys, settings)
                    if set(got) >= want:
                        break
                    await asyncio.sleep(1.0)
                missing = want - set(got)
                assert not missing, f"{len(missing)} of {len(want)} never archived\n{pieces.logs()}"
                assert len(got) == len(set(got)) == len(want), "archived twice, or something not served"
                assert pieces.starts == KILLS + 1 and server.connections >= KILLS + 1
                # Each restart resumed from a watermark, behind what had been sent (a re-fetch).
                assert len([c for c in server.asked[1:] if c is not None]) >= KILLS, server.asked
            finally:
                await asyncio.to_thread(pieces.kill)

    asyncio.run(scenario())
