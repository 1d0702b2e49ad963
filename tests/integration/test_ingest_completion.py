"""Completing payloads from the platform's API: Instagram mentions (Graph API) and Bluesky
handles (AppView), against loopback fakes only (nothing here reaches the internet).

A mention webhook is published with the Graph API's answer under ``_completed`` (source
``webhook+api``) and normalizes with its author and text; a failing Graph API costs
nothing but the completion. Jetstream authors' handles are resolved in batches, cached,
and added as ``_handle`` only when ``bluesky_resolve_handles`` is on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from streams.clients import load_clients
from streams.ingest.agent import Status
from streams.ingest.bluesky import BlueskyAgent, HandleResolver, with_handle
from streams.ingest.runtime import Context, run_agent
from streams.ingest.webhooks import COMPLETED, WebhookAgent
from streams.normalize.base import AccountIndex, Arrival, Normalized
from streams.normalize.registry import normalize
from streams.settings import Settings
from tests.integration import fake_jetstream as jetstream
from tests.integration.ingest_support import HttpFake, eventually, raw_payloads
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
SECRET = "app-secret-for-tests"
IG_ACCOUNT = "178400000000001"
TOKEN = "ig-token-for-tests"


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def run(coro: Any) -> None:
    asyncio.run(coro)


class GraphApi(HttpFake):
    """``GET /{version}/{ig-user-id}?fields=mentioned_comment...|mentioned_media...``."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.app.router.add_get("/v21.0/{account}", self.account)

    async def account(self, request: web.Request) -> web.Response:
        self.step("account", request)
        if self.fail:
            return web.json_response({"error": {"message": "unavailable", "code": 2}}, status=500)
        if request.query.get("access_token") != TOKEN:
            return web.json_response({"error": {"message": "bad token", "code": 190}}, status=400)
        fields = request.query.get("fields", "")
        account = request.match_info["account"]
        if fields.startswith("mentioned_comment.comment_id("):
            comment_id = fields.removeprefix("mentioned_comment.comment_id(").split(")", 1)[0]
            return web.json_response({"mentioned_comment": {
                "id": comment_id, "text": "@acme_official where is my order?", "timestamp": "2026-11-25T12:00:00+0000",
                "username": "shopper.jane", "from": {"id": "178400000000777", "username": "shopper.jane"},
                "media": {"id": "17900000000000099"}}, "id": account})
        if fields.startswith("mentioned_media.media_id("):
            media_id = fields.removeprefix("mentioned_media.media_id(").split(")", 1)[0]
            return web.json_response({"mentioned_media": {
                "id": media_id, "caption": "new kit from @acme_official", "timestamp": "2026-11-25T12:05:00+0000",
                "username": "runner_bob"}, "id": account})
        return web.json_response({"error": {"message": "unknown fields"}}, status=400)


@asynccontextmanager
async def receiver(ns: Namespace, **update: Any) -> AsyncIterator[str]:
    settings = ns.settings.model_copy(update=dict(meta_app_secret=SecretStr(SECRET), webhook_port=0,
                                                  publish_linger_s=0.05, **update))
    agents: list[WebhookAgent] = []

    def make(ctx: Context) -> WebhookAgent:
        agents.append(WebhookAgent(ctx))
        return agents[-1]

    clients = load_clients(Path(str(settings.clients)))
    task = asyncio.create_task(run_agent(make, "webhooks", settings, clients, ns.broker_url, ns.store_url,
                                         status=Status("webhooks")))
    await eventually(lambda: bool(agents) and agents[0].bound is not None or task.done(), what="listening")
    if task.done():
        task.result()
    host, port = agents[0].bound  # type: ignore[misc]
    try:
        yield f"http://{host}:{port}{settings.webhook_path}"
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


def mention_lines() -> list[bytes]:
    comment = [line for line in (FIXTURES / "instagram_webhooks.jsonl").read_bytes().splitlines()
               if b'"mentions"' in line]
    caption = (b'{"object":"instagram","entry":[{"id":"178400000000001","time":1795609100,"changes":'
               b'[{"field":"mentions","value":{"media_id":"17900000000000123"}}]}]}')
    return [*comment, caption]


async def deliver(url: str, bodies: list[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for body in bodies:
            answer = await http.post(url, content=body, headers={"X-Hub-Signature-256": sign(body)})
            assert answer.status_code == 200


def index_of(ns: Namespace) -> AccountIndex:
    return AccountIndex.build(load_clients(Path(str(ns.settings.clients))))


def test_mentions_are_completed_from_the_graph_api_and_normalized(namespace: Namespace) -> None:
    bodies = mention_lines()

    async def scenario() -> GraphApi:
        async with GraphApi() as graph:
            async with receiver(namespace, instagram_graph_url=graph.url,
                                instagram_access_tokens={IG_ACCOUNT: SecretStr(TOKEN)}) as url:
                await deliver(url, bodies)
            return graph

    graph = asyncio.run(scenario())
    assert len(graph.hits["account"]) == len(bodies)
    got = raw_payloads(namespace, "instagram")
    assert len(got) == len(bodies)
    idx = index_of(namespace)
    for (payload, headers), body in zip(sorted(got, key=lambda g: orjson.dumps(g[0])),
                                        sorted(bodies, key=lambda b: orjson.dumps(orjson.loads(b))), strict=False):
        assert headers["source"] == "webhook+api"
        value = payload["entry"][0]["changes"][0]["value"]
        completed = value.pop(COMPLETED)
        assert payload == orjson.loads(body)  # otherwise exactly as received
        assert set(completed) & {"mentioned_comment", "mentioned_media"}
        value[COMPLETED] = completed
        arrival = Arrival("instagram", headers["source"], 1_795_700_000_000, "k", headers["via_account"])
        out = normalize("instagram", payload, arrival, idx)
        assert isinstance(out, Normalized) and out.interactions
        row = out.interactions[0]
        assert row.source == "webhook+api"
        if "comment_id" in value:
            assert (row.author_id, row.author_handle, row.text) == (
                "178400000000777", "shopper.jane", "@acme_official where is my order?")
            assert row.created_at == 1_795_608_000_000
        else:
            assert (row.author_id, row.author_handle, row.text) == ("", "runner_bob", "new kit from @acme_official")


@pytest.mark.parametrize("how", ["error", "unreachable", "no token"])
def test_a_failing_graph_api_publishes_as_received(namespace: Namespace, how: str) -> None:
    bodies = mention_lines()

    async def scenario() -> None:
        async with GraphApi(fail=True) as graph:
            url = graph.url
            if how == "unreachable":
                await graph.__aexit__(None, None, None)  # the port is closed from here on
            token = {} if how == "no token" else {"instagram_access_token": SecretStr(TOKEN)}
            async with receiver(namespace, instagram_graph_url=url, instagram_complete_timeout_s=2.0,
                                **token) as hook:
                await deliver(hook, bodies)
            if how == "unreachable":
                await graph.__aenter__()  # so the context manager's exit has a server to stop
            assert len(graph.hits.get("account", [])) == (len(bodies) if how == "error" else 0)

    run(scenario())
    got = raw_payloads(namespace, "instagram")
    assert sorted(orjson.dumps(p) for p, _ in got) == sorted(orjson.dumps(orjson.loads(b)) for b in bodies)
    assert {h["source"] for _, h in got} == {"webhook"}


# --- Bluesky handles ---------------------------------------------------------------------


class AppView(HttpFake):
    """``GET /xrpc/app.bsky.actor.getProfiles?actors=...``: handle = the DID's last part."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.asked: list[list[str]] = []
        self.app.router.add_get("/xrpc/app.bsky.actor.getProfiles", self.profiles)

    async def profiles(self, request: web.Request) -> web.Response:
        self.step("profiles", request)
        actors = request.query.getall("actors", [])
        self.asked.append(list(actors))
        if self.fail:
            return web.json_response({"error": "InternalServerError"}, status=502)
        assert len(actors) <= 25
        return web.json_response({"profiles": [
            {"did": a, "handle": f"{a.rsplit(':', 1)[-1][:12]}.bsky.social"} for a in actors if "unknown" not in a]})


def resolver_settings(url: str, **update: Any) -> Settings:
    return Settings(bluesky_appview_url=url, **update)


def test_handles_are_resolved_in_batches_and_cached() -> None:
    async def scenario() -> None:
        async with AppView() as appview:
            resolver = HandleResolver(resolver_settings(appview.url))
            try:
                dids = [f"did:plc:person{i:03d}" for i in range(30)] + ["did:plc:unknown1"]
                found = await resolver.resolve(dids + dids[:5])
                assert [len(a) for a in appview.asked] == [25, 6]  # batched, each DID asked once
                assert found["did:plc:person007"] == "person007.bsky.social"
                assert "did:plc:unknown1" not in found
                for _ in range(3):  # repeated DIDs, known or not, come from the cache
                    assert (await resolver.resolve(["did:plc:person007", "did:plc:unknown1"])) == {
                        "did:plc:person007": "person007.bsky.social"}
                assert len(appview.asked) == 2 == resolver.requests
            finally:
                await resolver.close()
            small = HandleResolver(resolver_settings(appview.url, bluesky_handle_cache_size=2,
                                                     bluesky_handle_ttl_s=0.2))
            try:
                await small.resolve(["did:plc:a", "did:plc:b", "did:plc:c"])
                assert list(small.cache) == ["did:plc:b", "did:plc:c"]  # least recently used evicted
                await asyncio.sleep(0.25)
                await small.resolve(["did:plc:b"])  # expired: asked again
                assert appview.asked[-1] == ["did:plc:b"]
            finally:
                await small.close()

    run(scenario())


def test_failed_lookups_resolve_nothing_and_pause() -> None:
    async def scenario() -> None:
        async with AppView(fail=True) as appview:
            resolver = HandleResolver(resolver_settings(appview.url))
            try:
                assert await resolver.resolve(["did:plc:x"]) == {}
                assert await resolver.resolve(["did:plc:x", "did:plc:y"]) == {}
                assert len(appview.asked) == 1 and resolver.failures == 1  # paused after the failure
            finally:
                await resolver.close()

    run(scenario())


def test_with_handle_keeps_the_received_bytes() -> None:
    raw = b'  {"did":"did:plc:x", "time_us": 1,"kind":"commit"}'
    out = with_handle(raw, 'a"b.bsky.social')
    assert orjson.loads(out) == {"_handle": 'a"b.bsky.social', **orjson.loads(raw)}
    assert out.endswith(raw.lstrip()[1:])


def test_jetstream_handles_are_off_by_default() -> None:
    assert Settings().bluesky_resolve_handles is False
    assert Settings().bluesky_appview_url == "https://public.api.bsky.app"


class Outbox:
    def __init__(self) -> None:
        self.put_calls: list[tuple[str, bytes, str]] = []

    async def put(self, platform: str, payload: bytes, source: str, via_account: str = "") -> None:
        self.put_calls.append((platform, payload, source))


def jetstream_agent(namespace_settings: Settings, **update: Any) -> tuple[BlueskyAgent, Outbox]:
    settings = namespace_settings.model_copy(update=update)
    outbox = Outbox()
    ctx = Context(settings, load_clients(Path(str(settings.clients))), outbox, None, Status("bluesky"))  # type: ignore[arg-type]
    return BlueskyAgent(ctx), outbox


def test_the_jetstream_agent_adds_handles_only_when_asked(tmp_path: Path) -> None:
    base = Settings(clients=Path(__file__).resolve().parents[2] / "clients.example.toml", data_dir=tmp_path)
    published = jetstream.relevant(jetstream.bluesky_events(1_795_608_000_000_000, 40))
    events = [e for e in published if e.get("kind") == "commit"]
    assert events

    async def scenario() -> None:
        async with AppView() as appview:
            off, off_out = jetstream_agent(base, bluesky_appview_url=appview.url)
            assert off.handles is None
            for e in events:
                await off.handle(orjson.dumps(e))
            assert appview.asked == [] and all(b"_handle" not in p for _, p, _ in off_out.put_calls)
            authors = {orjson.loads(p)["did"] for _, p, _ in off_out.put_calls}
            assert off_out.put_calls and len(authors) < len(off_out.put_calls)

            on, on_out = jetstream_agent(base, bluesky_appview_url=appview.url, bluesky_resolve_handles=True)
            try:
                for e in events:
                    await on.handle(orjson.dumps(e))
            finally:
                await on.handles.close()  # type: ignore[union-attr]
            assert len(appview.asked) == len(authors)  # one request per new author, none for repeats
            assert len(on_out.put_calls) == len(off_out.put_calls)
            for (_, plain, _), (_, done, source) in zip(off_out.put_calls, on_out.put_calls, strict=True):
                assert source == "stream"
                payload = orjson.loads(done)
                handle = payload.pop("_handle")
                assert handle.endswith(".bsky.social") and payload == orjson.loads(plain)
                idx = AccountIndex.build(on.ctx.clients)
                arrival = Arrival("bluesky", source, 1_795_700_000_000, "k", None)
                full = orjson.loads(done)
                out = normalize("bluesky", full, arrival, idx)
                if isinstance(out, Normalized) and out.interactions:
                    assert {i.author_handle for i in out.interactions} == {handle}

        async with AppView(fail=True) as broken:
            agent, broken_out = jetstream_agent(base, bluesky_appview_url=broken.url, bluesky_resolve_handles=True)
            try:
                for e in events:
                    await agent.handle(orjson.dumps(e))
            finally:
                await agent.handles.close()  # type: ignore[union-attr]
            assert [p for _, p, _ in broken_out.put_calls] == [p for _, p, _ in off_out.put_calls]  # as received
            assert len(broken.asked) == 1  # failed once, then paused: publishing was never held up

    run(scenario())
