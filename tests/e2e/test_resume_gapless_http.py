"""The pull agents (X, Mastodon, Reddit) never skip what died with the broker, nor fetch it twice.

Like tests/e2e/test_resume_gapless.py for Bluesky, with the loopback fakes of
tests/integration/ingest_support.py: a Tansu broker of this test's own, one `rapport
worker`, and `rapport ingest <platform>` reading its fake while new items appear there all
along. At random moments the broker is SIGKILLed with the agent and the worker (what
`rapport up` does when its broker dies), then all three start again: the agent resumes from
its contiguous watermarks (<data dir>/cursors/<agent>.json). At the end every item the fake
served is in ``raw_events`` (read with FINAL) exactly once, and nothing else is. An item is
what the platform identifies: an X post id (a stream message holds one, a search page
several), a Mastodon notification or status id, a Reddit fullname.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.ingest.cursors import X_POST_IDS
from streams.ingest.mastodon import ARCHIVE_KEY_SQL
from streams.ingest.reddit import NAME_SQL
from streams.ingest.resume import resume_path
from streams.settings import Settings
from streams.store.client import connect
from streams.store.migrations import migrate
from tests.integration import ingest_support as fakes
from tests.integration.test_ingest_agents import CLIENTS
from tests.support.broker_kill import Pieces
from tests.support.stack import unique_name

pytestmark = pytest.mark.e2e
SEED = 20261203
CHUNKS = 40
KILLS = 3
BURST = 15  # serve() calls just before a kill


@dataclass(frozen=True)
class Case:
    """One platform: its fake, how the agent reaches it, what it serves, how the archive names it."""

    agent: str
    make: Callable[[], fakes.HttpFake]
    env: Callable[[Any], dict[str, str]]
    reads: Callable[[Any], int]  # grows each time the agent (re)connects or polls
    serve: Callable[[Any, random.Random], list[str]]  # a few new items; their keys
    key_sql: str  # an item's key, computed from an archived payload


def _x_serve(server: fakes.X, rng: random.Random) -> list[str]:
    return [server.publish(listen=rng.random() < 0.3)["data"]["id"] for _ in range(rng.randint(1, 4))]


def _mastodon_serve(server: fakes.Mastodon, rng: random.Random) -> list[str]:
    keys: list[str] = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(("notify", "post", "tag"))
        if kind == "notify":
            keys.append(f"n:{server.notify()['id']}")
        elif kind == "post":
            keys.append(f"s:{server.post()['id']}")
        else:
            keys.append(f"s:{server.tag_post()['id']}")
    return keys


def _reddit_serve(server: fakes.Reddit, rng: random.Random) -> list[str]:
    keys: list[str] = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(("reply", "mention", "comment", "submission"))
        if kind == "reply":
            keys.append(server.reply()["data"]["name"])
        elif kind == "mention":  # the same thing in the inbox and in mentions: one payload
            keys.append(server.reply(to_mentions=True)["data"]["name"])
        elif kind == "comment":
            keys.append(server.comment()["data"]["name"])
        else:
            keys.append(server.submission()["data"]["name"])
    return keys


CASES = {
    "x": Case("x", fakes.X, lambda s: {"RAPPORT_X_API_URL": s.url, "RAPPORT_X_BEARER_TOKEN": s.token},
              lambda s: s.feeds.connections.get("stream", 0), _x_serve, X_POST_IDS),
    "mastodon": Case("mastodon", fakes.Mastodon,
                     lambda s: {"RAPPORT_MASTODON_URL": s.url, "RAPPORT_MASTODON_ACCESS_TOKEN": s.token},
                     lambda s: min(s.feeds.connections.get("user", 0), s.feeds.connections.get("hashtag", 0)),
                     _mastodon_serve, ARCHIVE_KEY_SQL),
    "reddit": Case("reddit", fakes.Reddit,
                   lambda s: {"RAPPORT_REDDIT_AUTH_URL": s.url, "RAPPORT_REDDIT_API_URL": s.url,
                              "RAPPORT_REDDIT_CLIENT_ID": s.client[0], "RAPPORT_REDDIT_CLIENT_SECRET": s.client[1],
                              "RAPPORT_REDDIT_PASSWORDS": orjson.dumps(s.passwords).decode(),
                              "RAPPORT_REDDIT_POLL_INTERVAL_S": "0.2"},
                   lambda s: len(s.hits.get("inbox", [])), _reddit_serve, NAME_SQL),
}


def archived_items(settings: Settings, platform: str, key_sql: str) -> list[str]:
    client = connect(str(settings.store_url), settings)
    try:
        rows = client.query(f"SELECT {key_sql} FROM raw_events FINAL WHERE platform = {{p:String}}",
                            parameters={"p": platform}).result_rows
    finally:
        client.close()
    return [r[0] for r in rows]


@pytest.mark.parametrize("platform", sorted(CASES))
def test_pull_agent_resume_leaves_no_gap_and_no_duplicate_across_broker_kills(
        platform: str, store_url: str, tmp_path: Path) -> None:
    case = CASES[platform]
    name = unique_name(f"gap{platform[0]}")
    clients = tmp_path / "clients.toml"
    clients.write_text(CLIENTS, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", clients=clients, topic_prefix=name, store_database=name,
                        app_id=name, partitions=4, store_url=store_url)
    migrate(store_url, settings)
    rng = random.Random(f"{SEED}-{platform}")
    kill_at = set(rng.sample(range(3, CHUNKS - 3), KILLS))
    served: list[str] = []

    async def scenario() -> None:
        async with case.make() as server:
            pieces = Pieces(tmp_path, settings, case.agent, case.env(server))

            async def start() -> None:
                before = case.reads(server)
                await asyncio.to_thread(pieces.start)
                deadline = time.monotonic() + 90
                while case.reads(server) <= before:  # the agent is reading before anything else happens
                    assert time.monotonic() < deadline and pieces.alive(), pieces.logs()
                    await asyncio.sleep(0.1)

            async def archiving() -> None:
                """Serve, and wait for the new life's worker to archive: a life shorter than a
                worker's start would archive nothing and so never meet a re-fetched item."""
                before = len(set(await asyncio.to_thread(archived_items, settings, platform, case.key_sql)))
                served.extend(case.serve(server, rng))
                deadline = time.monotonic() + 120
                while len(set(await asyncio.to_thread(archived_items, settings, platform, case.key_sql))) <= before:
                    assert time.monotonic() < deadline and pieces.alive(), pieces.logs()
                    await asyncio.sleep(0.3)

            try:
                await start()
                await archiving()
                for i in range(CHUNKS):
                    served.extend(case.serve(server, rng))
                    if i in kill_at:
                        # A burst, then the kill while some of it is in the broker, some in the
                        # worker's batch, some archived and not yet confirmed to the agent.
                        for _ in range(BURST):
                            served.extend(case.serve(server, rng))
                            await asyncio.sleep(0.02)
                        await asyncio.sleep(rng.uniform(0.0, 1.0))
                        await asyncio.to_thread(pieces.kill)
                        await start()
                        await archiving()
                    else:
                        await asyncio.sleep(rng.uniform(0.05, 0.4))
                want = set(served)
                deadline = time.monotonic() + 180
                got: list[str] = []
                while time.monotonic() < deadline:
                    got = await asyncio.to_thread(archived_items, settings, platform, case.key_sql)
                    if set(got) >= want:
                        break
                    await asyncio.sleep(1.0)
                await asyncio.sleep(3.0)  # a few more polls and confirmations: nothing else may appear
                got = await asyncio.to_thread(archived_items, settings, platform, case.key_sql)
                missing = want - set(got)
                assert not missing, f"{len(missing)} of {len(want)} never archived: {sorted(missing)[:5]}\n" \
                                    f"{pieces.logs()}"
                twice = {k: n for k, n in Counter(got).items() if n > 1}
                assert not twice, f"{len(twice)} item(s) archived more than once: {sorted(twice.items())[:5]}"
                assert set(got) == want, f"archived, never served: {sorted(set(got) - want)[:5]}"
                assert pieces.starts == KILLS + 1
                # The restarts resumed from watermarks the agent wrote.
                marks = orjson.loads(resume_path(settings.data_dir, case.agent).read_bytes())
                assert marks and all(isinstance(v, int) for v in marks.values()), marks
            finally:
                await asyncio.to_thread(pieces.kill)

    asyncio.run(scenario())
    assert len(served) == len(set(served)) >= CHUNKS
