"""A fake Jetstream (Bluesky's firehose over WebSocket) and the commits it replays, for the
ingest agent tests: a brand's replies, likes and tagged posts among unrelated traffic.

The server records what it was asked (query parameters, times) and follows a ``plan``, one
step per connection: ``"429"`` refuses with a wait to honour, ``("cut", n)`` drops the
connection after ``n`` events; anything else serves from the asked ``cursor``.
Commit shapes follow /work/shared/fixtures (recorded shapes, made-up values).
"""

from __future__ import annotations

import asyncio
import random
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from streams.chaos.edges import send_released

BRAND = "did:plc:brandaaaaaaaaaaaaaaaaaaa"

FANS = [f"did:plc:fan{i}fanfanfanfanfanfanf" for i in range(4)]



def _noise_did(i: int, seed: int) -> str:
    return f"did:plc:noise{seed:02d}{i:05d}nnnnnnnnnnnn"


def _commit(did: str, t: int, tag: str, collection: str, record: dict[str, Any] | None, op: str = "create",
            key: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"rev": f"3lrev{tag}", "operation": op, "collection": collection,
                            "rkey": key or f"3lgen{tag}"}
    if record is not None:
        body["record"] = {"$type": collection, **record}
        body["cid"] = f"bafyrei{tag}"
    return {"did": did, "time_us": t, "kind": "commit", "commit": body}


def bluesky_events(start_us: int, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Jetstream commits: replies, likes and tagged posts for the brand among unrelated
    traffic (``did:plc:noise…``, which the agent must not publish)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    posted: list[tuple[str, str]] = []
    brand_post = f"at://{BRAND}/app.bsky.feed.post/3lbpost0001"
    for i in range(n):
        t = start_us + i * 100_000
        tag = f"{seed:02d}{i:05d}"
        rkey = f"3lgen{tag}"
        r = rng.random()
        fan = FANS[i % len(FANS)]

        def commit(did: str, collection: str, record: dict[str, Any] | None, op: str = "create",
                   key: str = "", t: int = t, tag: str = tag) -> dict[str, Any]:
            return _commit(did, t, tag, collection, record, op, key)

        if r < 0.3:
            out.append(commit(_noise_did(i, seed), "app.bsky.feed.post",
                              {"text": "nothing to see", "createdAt": "2026-11-25T12:00:00.000Z"}))
        elif r < 0.5:
            ref = {"uri": brand_post, "cid": "bafyreibrandpost0001"}
            out.append(commit(fan, "app.bsky.feed.post", {"text": "a question for you",
                              "createdAt": "2026-11-25T12:00:00.000Z", "reply": {"root": ref, "parent": ref}}))
            posted.append((fan, rkey))
        elif r < 0.6:
            out.append(commit(fan, "app.bsky.feed.like", {"subject": {"uri": brand_post, "cid": "bafyrei"},
                              "createdAt": "2026-11-25T12:00:00.000Z"}))
        elif r < 0.7:
            out.append(commit(fan, "app.bsky.feed.post", {
                "text": "morning #acmecoffee", "createdAt": "2026-11-25T12:00:00.000Z",
                "facets": [{"index": {"byteStart": 8, "byteEnd": 19},
                            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "acmecoffee"}]}]}))
            posted.append((fan, rkey))
        elif r < 0.8:
            other = f"at://{_noise_did(i + 1, seed)}/app.bsky.feed.post/3lother"
            out.append(commit(_noise_did(i, seed), "app.bsky.feed.like",
                              {"subject": {"uri": other, "cid": "bafyrei"}, "createdAt": "2026-11-25T12:00:00.000Z"}))
        elif r < 0.9 or not posted:
            out.append(commit(BRAND, "app.bsky.feed.post", {"text": "thanks!",
                                                             "createdAt": "2026-11-25T12:00:00.000Z"}))
        else:
            did, key = posted.pop(0)
            out.append(commit(did, "app.bsky.feed.post", None, op="delete", key=key))
    return out


def relevant(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the Bluesky agent must publish: commits by anyone but the noise accounts."""
    return [e for e in events if e.get("kind") == "commit" and not e["did"].startswith("did:plc:noise")]


class Jetstream:
    """A Jetstream ``/subscribe`` endpoint replaying ``events`` from the asked ``cursor``."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = list(events)
        self.plan: list[Any] = []
        self.requests: list[dict[str, list[str]]] = []
        self.times: list[float] = []
        self.connections = 0
        self.sent = 0  # the furthest index sent on any connection
        self._steps: dict[int, Any] = {}
        self._more = asyncio.Event()
        self.server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> Jetstream:
        self.server = await serve(self._handler, "127.0.0.1", 0, process_request=self._process_request)
        port = next(iter(self.server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/subscribe"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.connections += 1
        self.requests.append(parse_qs(urlsplit(request.path).query))
        self.times.append(time.monotonic())
        step = self.plan.pop(0) if self.plan else "serve"
        if step == "429":
            response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "slow down\n")
            response.headers["Retry-After"] = "1"
            return response
        self._steps[id(connection)] = step
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        query = self.requests[-1]
        step = self._steps.pop(id(ws), "serve")
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        start = 0 if cursor is None else next((k for k, e in enumerate(self.events) if e["time_us"] >= cursor),
                                              len(self.events))

        def sent(i: int) -> bool:
            self.sent = max(self.sent, i)
            if isinstance(step, tuple) and step[0] == "cut" and i - start == step[1]:
                ws.transport.abort()  # a connection dying mid-stream, no close frame
                return False
            return True

        await send_released(ws, self._more, start, lambda: len(self.events),
                            lambda i: orjson.dumps(self.events[i]).decode(), sent)

    def add(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)
        self._more.set()

    def sent_all(self) -> bool:
        return self.sent >= len(self.events)


# --- HTTP servers (Mastodon, X, Reddit) -----------------------------------------------------
