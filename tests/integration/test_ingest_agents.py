"""The ingest agents end to end: loopback servers speaking each platform's protocol, the real
Tansu broker, one real worker archiving into the real chDB store, and the agents in-process.

Every scenario has a disconnect mid-stream, a 429 with a wait to honour and a restart that
must resume from the archive without gaps or duplicates in ``rapport.raw.*``. One worker
serves the whole module (each agent writes its own raw topic), which keeps the suite fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from streams.clients import load_clients
from streams.contracts.topics import full_names
from streams.embedded.broker import Broker
from streams.ingest.agent import Status
from streams.ingest.runtime import Agent, Context, run_agent
from streams.kafka_admin import ensure_topics
from streams.settings import Settings
from streams.store.client import connect
from streams.store.migrations import migrate
from tests.integration import fake_jetstream as jetstream
from tests.integration import ingest_support as fakes
from tests.integration.ingest_support import eventually, raw_payloads
from tests.support.stack import Namespace, stop_process, unique_name

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"

CLIENTS = """
[[clients]]
id = "acme"
[[clients.accounts]]
platform = "bluesky"
account_id = "did:plc:brandaaaaaaaaaaaaaaaaaaa"
handle = "acme.example"
listen = ["#acmecoffee"]
[[clients.accounts]]
platform = "mastodon"
account_id = "1001"
handle = "acme"
listen = ["#acmecoffee"]
[[clients.accounts]]
platform = "x"
account_id = "900001"
handle = "acme"
listen = ["#acmecoffee"]
[[clients.accounts]]
platform = "reddit"
account_id = "acme_official"
handle = "acme_official"
listen = ["r/acme"]

[[clients]]
id = "initech"
[[clients.accounts]]
platform = "reddit"
account_id = "initech_help"
handle = "initech_help"
listen = ["r/gone"]
"""

FAST = dict(ingest_backoff_initial_s=0.05, ingest_backoff_max_s=0.5, ingest_status_interval_s=0.2,
            ingest_cursor_refresh_s=0.5, ingest_rewind_s=2.0, ingest_stall_s=5.0, ingest_http_timeout_s=5.0,
            reddit_poll_interval_s=0.2, publish_linger_s=0.05)


@pytest.fixture(scope="module")
def ns(broker: Broker, store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Namespace]:
    """One namespace and one running worker for every agent of this module."""
    tmp = tmp_path_factory.mktemp("ingest")
    name = unique_name("ing")
    clients = tmp / "clients.toml"
    clients.write_text(CLIENTS, encoding="utf-8")
    settings = Settings(data_dir=tmp / "data", clients=clients, topic_prefix=name, store_database=name,
                        app_id=name, partitions=2, batch_delay_s=0.2, broker_url=broker.url,
                        store_url=store_url, **FAST)
    migrate(store_url, settings)
    ensure_topics(broker.url, full_names(settings), settings.partitions)
    log_dir = tmp / "logs"
    log_dir.mkdir()
    namespace = Namespace(settings, broker.url, store_url, log_dir)
    proc = namespace.start_worker()
    namespace.workers.append(proc)
    try:
        yield namespace
    finally:
        stop_process(proc)


def settings_for(ns: Namespace, **overrides: Any) -> Settings:
    return ns.settings.model_copy(update=overrides)


def archived(ns: Namespace, platform: str) -> list[tuple[str, str]]:
    client = connect(ns.store_url, ns.settings)
    try:
        rows = client.query("SELECT payload, source FROM raw_events FINAL WHERE platform = {p:String}",
                            parameters={"p": platform}).result_rows
    finally:
        client.close()
    return [(r[0], r[1]) for r in rows]


class Running:
    """An agent running in-process until stopped (stopping flushes its outbox)."""

    def __init__(self, ns: Namespace, settings: Settings, make: Callable[[Context], Agent], name: str) -> None:
        self.status = Status(name)
        clients = load_clients(Path(str(settings.clients)))
        self.task = asyncio.create_task(run_agent(make, name, settings, clients, ns.broker_url, ns.store_url,
                                                  status=self.status))

    async def stop(self) -> None:
        if self.task.done():
            self.task.result()
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


async def drained(ns: Namespace) -> None:
    await asyncio.to_thread(ns.drain, 60.0)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


# --- Bluesky -------------------------------------------------------------------------------

BRAND = "did:plc:brandaaaaaaaaaaaaaaaaaaa"


def test_bluesky_resumes_from_the_archive_without_gaps_or_duplicates(ns: Namespace) -> None:
    from streams.ingest.bluesky import BlueskyAgent

    recorded = [orjson.loads(line) for line in (FIXTURES / "bluesky_jetstream.jsonl").read_bytes().splitlines()]
    start = recorded[-1]["time_us"] + 1_000_000
    first = recorded + jetstream.bluesky_events(start, 30)
    later = jetstream.bluesky_events(first[-1]["time_us"] + 1_000_000, 12, seed=1)
    relevant = jetstream.relevant(first + later)
    server = jetstream.Jetstream(first)
    server.plan = ["429", ("cut", 15)]  # refused once, then a connection dies mid-stream

    async def scenario() -> None:
        async with server:
            settings = settings_for(ns, bluesky_jetstream_url=server.url)
            agent = Running(ns, settings, BlueskyAgent, "bluesky")
            await eventually(lambda: server.sent_all() and agent.status.published >= len(jetstream.relevant(first)),
                             what="first events published")
            await agent.stop()
            await drained(ns)
            assert server.connections >= 3, server.requests
            # The 429 said "Retry-After: 1": the next attempt waited for it.
            assert server.times[1] - server.times[0] >= 0.9
            archived_max = max(e["time_us"] for e in jetstream.relevant(first))
            server.add(later)
            again = Running(ns, settings, BlueskyAgent, "bluesky")
            await eventually(lambda: server.sent_all(), what="later events sent")
            await eventually(lambda: again.status.published >= len(jetstream.relevant(later)), what="later published")
            await again.stop()
            # The restart asked Jetstream for its contiguous watermark less the rewind
            # (docs/architecture.md, "What an edge acknowledges"): the newest archived event
            # once the agent confirmed it before its stop, an earlier point when the stop came
            # first (a loaded machine) -- a re-fetch that the archived keys filter out (no
            # payload published twice, below), never a gap and never past what is archived.
            (cursor,) = server.requests[-1]["cursor"]
            earliest = min(e["time_us"] for e in first)
            assert earliest - 1 - 2_000_000 <= int(cursor) <= archived_max - 2_000_000, (cursor, archived_max)
            assert server.requests[-1]["wantedCollections"] == [
                "app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost", "app.bsky.graph.follow"]
            await drained(ns)

    run(scenario())
    published = raw_payloads(ns, "bluesky")
    keys = [orjson.dumps(p) for p, _ in published]
    assert len(keys) == len(set(keys)), "a payload was published twice"
    assert sorted(keys) == sorted(orjson.dumps(e) for e in relevant)
    assert all(h["source"] == "stream" for _, h in published)
    assert len(archived(ns, "bluesky")) == len(relevant)
    status = orjson.loads((ns.settings.data_dir / "agents" / "bluesky.json").read_bytes())
    assert status["state"] == "stopped" and status["published"] == len(jetstream.relevant(later))


# --- Mastodon ------------------------------------------------------------------------------


def mastodon_key(payload: dict[str, Any]) -> str:
    """What a published Mastodon payload is: ``n:``/``s:``/``d:`` and the id."""
    if "event" in payload:
        if payload["event"] == "delete":
            return f"d:{payload['payload']}"
        inner = orjson.loads(payload["payload"])
        return f"{'n' if payload['event'] == 'notification' else 's'}:{inner['id']}"
    return f"{'s' if 'content' in payload else 'n'}:{payload['id']}"


def test_mastodon_streams_backfills_gaps_and_resumes(ns: Namespace) -> None:
    from streams.ingest.mastodon import MastodonAgent

    server = fakes.Mastodon()
    expected: list[str] = []

    def note() -> None:
        expected.append(f"n:{server.notify()['id']}")

    def post() -> dict[str, Any]:
        status = server.post()
        expected.append(f"s:{status['id']}")
        return status

    def tagged() -> None:
        expected.append(f"s:{server.tag_post()['id']}")

    async def scenario() -> None:
        async with server:
            note(), note(), post()  # before the agent ever ran: the first backfill finds them
            # The first stream connection ends with the 429 of its backfill; the next dies
            # after two events.
            server.plan = {"notifications": ["429"], "user": ["serve", ("cut", 2)]}
            settings = settings_for(ns, mastodon_url=server.url, mastodon_access_token=SecretStr(server.token))
            agent = Running(ns, settings, MastodonAgent, "mastodon")
            await eventually(lambda: agent.status.published >= 3 and server.feeds.listening("user")
                             and server.feeds.listening("hashtag"), what="backfill")
            hits = server.hits["notifications"]
            assert hits[1][0] - hits[0][0] >= 0.9, "Retry-After: 1 was not honoured"
            note(), note()
            doomed = post()  # queued on the connection that dies after two events
            tagged()
            await eventually(lambda: agent.status.published >= 7 and server.feeds.connections["user"] >= 3
                             and server.feeds.listening("user"), what="gap closed after the cut")
            server.delete(doomed)
            expected.append(f"d:{doomed['id']}")
            note()
            await eventually(lambda: agent.status.published >= 9, what="live events")
            await agent.stop()
            await drained(ns)
            note(), note(), post(), tagged()  # while the agent is down
            again = Running(ns, settings, MastodonAgent, "mastodon")
            await eventually(lambda: again.status.published >= 4 and server.feeds.listening("user"),
                             what="restart backfill")
            note()
            await eventually(lambda: again.status.published >= 5, what="live after restart")
            await again.stop()
            await drained(ns)

    run(scenario())
    published = raw_payloads(ns, "mastodon")
    keys = [(mastodon_key(p), h["source"]) for p, h in published]
    assert len(keys) == len(set(keys)), f"published twice: {sorted(keys)}"
    assert sorted(k for k, _ in keys) == sorted(expected)
    for payload, headers in published:
        if "event" in payload:
            text = payload["payload"]
            kind = "tag" if payload["stream"] == ["hashtag", "acmecoffee"] else "stream"
        else:
            text = orjson.dumps(payload).decode()
            kind = "tag" if "#acmecoffee" in text else ("stream" if "content" in payload else "inbox")
        if kind == "tag":
            assert headers["source"] == "listen:#acmecoffee" and "via_account" not in headers, text
        else:
            assert headers["source"] == kind and headers["via_account"] == "1001", text
    assert len(archived(ns, "mastodon")) == len(expected)


# --- X -------------------------------------------------------------------------------------


def x_ids(payload: dict[str, Any]) -> list[str]:
    data = payload["data"]
    return [d["id"] for d in (data if isinstance(data, list) else [data])]


def test_x_stream_rules_search_backfill_and_resume(ns: Namespace) -> None:
    from streams.ingest.x import XAgent

    server = fakes.X()
    server.plan = {"stream": ["429", ("cut", 3)]}
    expected: list[str] = []
    listened: list[str] = []

    def post(listen: bool = False) -> None:
        ident = server.publish(listen)["data"]["id"]
        expected.append(ident)
        if listen:
            listened.append(ident)

    async def scenario() -> None:
        async with server:
            settings = settings_for(ns, x_api_url=server.url, x_bearer_token=SecretStr(server.token))
            agent = Running(ns, settings, XAgent, "x")
            await eventually(lambda: server.feeds.listening("stream"), what="stream connected")
            hits = server.hits["stream"]
            assert hits[1][0] - hits[0][0] >= 0.9, "x-rate-limit-reset was not honoured"
            assert {(r["value"], r["tag"]) for r in server.rules} == {
                ("from:900001 OR to:900001 OR retweets_of:900001 OR @acme", "rapport:account:900001"),
                ("#acmecoffee", "#acmecoffee")}
            for _ in range(5):
                post()
            post(listen=True)  # the connection dies after three: the rest comes from search
            # Three streamed, then one search page per rule (payloads, not posts, are counted).
            await eventually(lambda: agent.status.published >= 5 and server.feeds.listening("stream"),
                             what="gap closed by search")
            post()
            await eventually(lambda: agent.status.published >= 6, what="live post")
            await agent.stop()
            await drained(ns)
            newest = max(int(i) for i in expected)
            post(), post(listen=True)  # while the agent is down
            again = Running(ns, settings, XAgent, "x")
            await eventually(lambda: again.status.published >= 2 and server.feeds.listening("stream"),
                             what="restart backfill")
            since = {q.get("since_id") for _, q in server.hits["search"][-2:]}
            # The resume point is the contiguous watermark (docs/architecture.md, "What an edge
            # acknowledges"): the newest archived id once the agent confirmed it before its stop,
            # else just below the oldest post not yet confirmed (a loaded machine) -- a re-fetch,
            # never a gap, and never past what is archived.
            assert len(since) == 1 and None not in since, ("the restart did not search from a cursor", since)
            (cursor,) = since
            assert min(int(i) for i in expected) - 1 <= int(cursor) <= newest, (
                "the restart did not search from a point this agent confirmed", cursor, newest)
            post()
            await eventually(lambda: again.status.published >= 3, what="live after restart")
            await again.stop()
            await drained(ns)

    run(scenario())
    published = raw_payloads(ns, "x")
    ids = [i for p, _ in published for i in x_ids(p)]
    assert len(ids) == len(set(ids)), "a post was published twice"
    assert sorted(ids) == sorted(expected)
    for payload, headers in published:
        if isinstance(payload["data"], list):  # a search page: its rule names the source
            want = "listen:#acmecoffee" if set(x_ids(payload)) <= set(listened) else "stream"
            assert headers["source"] == want
        else:
            assert headers["source"] == "stream" and payload["matching_rules"]
    assert len(archived(ns, "x")) == len(published)


# --- Reddit --------------------------------------------------------------------------------


def test_reddit_polls_inbox_and_subreddit_once_each_and_resumes(ns: Namespace,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from streams.ingest.reddit import RedditAgent

    server = fakes.Reddit()
    expected: list[tuple[str, str]] = []

    def reply(mention: bool = False) -> None:
        expected.append(("inbox", server.reply(mention)["data"]["name"]))

    def comment() -> None:
        expected.append(("listen:r/acme", server.comment()["data"]["name"]))

    def submission() -> None:
        expected.append(("listen:r/acme", server.submission()["data"]["name"]))

    async def scenario() -> None:
        async with server:
            reply(), reply(mention=True), submission(), comment(), comment()
            server.plan = {"inbox": ["429"], "comments": ["drop"]}
            settings = settings_for(ns, reddit_auth_url=server.url, reddit_api_url=server.url,
                                    reddit_client_id=server.client[0], reddit_client_secret=SecretStr(server.client[1]),
                                    reddit_passwords={"acme_official": SecretStr("hunter2")})
            agent = Running(ns, settings, RedditAgent, "reddit")
            await eventually(lambda: agent.status.published >= 5, what="first polls")
            hits = server.hits["inbox"]
            assert hits[1][0] - hits[0][0] >= 0.9, "Retry-After: 1 was not honoured"
            assert agent.status.reconnects >= 2  # the 429 and the dropped connection
            # The gone listing rests alone. Which error is the *last* one depends on the order the
            # dropped connection and the 404 arrive in, so read the log, not last_error.
            await eventually(lambda: any("/r/gone/" in r.getMessage() and "404" in r.getMessage()
                                         and "the other listings go on" in r.getMessage() for r in caplog.records),
                             what="the gone listing resting")
            reply(), reply(mention=True), comment(), submission()
            await eventually(lambda: agent.status.published >= 9, what="later polls")
            await agent.stop()
            await drained(ns)
            reply(), comment()  # while the agent is down
            again = Running(ns, settings, RedditAgent, "reddit")
            await eventually(lambda: again.status.published >= 2, what="restart")
            await asyncio.sleep(0.5)  # a few more polls: nothing else may appear
            await again.stop()
            assert any("u/initech_help" in n for n in again.status.notes)
            await drained(ns)

    run(scenario())
    published = raw_payloads(ns, "reddit")
    got = [(h["source"], p["data"]["name"]) for p, h in published]
    assert len(got) == len(set(got)), "a thing was published twice"
    assert sorted(got) == sorted(expected)
    assert all(h.get("via_account") == "acme_official" for p, h in published if h["source"] == "inbox")
    assert len(archived(ns, "reddit")) == len(expected)
