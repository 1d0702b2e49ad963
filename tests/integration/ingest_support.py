"""Loopback HTTP servers that speak the platforms' protocols (Mastodon, X, Reddit), and
readers of what the ingest agents published, for the ingest agent tests. The Jetstream fake
(WebSocket) is tests/integration/fake_jetstream.py.

Each records what it was asked (query parameters, times) and follows a ``plan`` of
misbehaviours, one step per request: ``"429"`` refuses with a wait to honour,
``("cut", n)`` drops the connection after ``n`` items; anything else serves normally.
Payload shapes follow /work/shared/fixtures (recorded shapes, made-up values).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from kafka import KafkaConsumer, TopicPartition

from streams.contracts.topics import raw_topic
from streams.kafka_admin import bootstrap_of, high_watermarks
from tests.support.stack import Namespace


def raw_records(ns: Namespace, platform: str) -> list[tuple[bytes, dict[str, str]]]:
    """Every record of the platform's raw topic, read back with a plain consumer."""
    topic = ns.settings.topic(raw_topic(platform))
    ends = {tp: hw for tp, hw in high_watermarks(ns.broker_url, [topic]).items() if hw > 0}
    out: list[tuple[bytes, dict[str, str]]] = []
    if not ends:
        return out
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_of(ns.broker_url), group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=500)
    try:
        tps = [TopicPartition(t, p) for t, p in ends]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + 20
        done: dict[TopicPartition, int] = {}
        while time.monotonic() < deadline and any(done.get(tp, 0) < ends[(tp.topic, tp.partition)] for tp in tps):
            for tp, msgs in consumer.poll(timeout_ms=200).items():
                for msg in msgs:
                    out.append((msg.value, {k: v.decode() for k, v in msg.headers}))
                    done[tp] = msg.offset + 1
    finally:
        consumer.close()
    return out


def raw_payloads(ns: Namespace, platform: str) -> list[tuple[Any, dict[str, str]]]:
    """Payloads of the raw topic (arrays opened), each with its record's headers."""
    out: list[tuple[Any, dict[str, str]]] = []
    for value, headers in raw_records(ns, platform):
        decoded = orjson.loads(value)
        for payload in decoded if isinstance(decoded, list) else [decoded]:
            out.append((payload, headers))
    return out


async def eventually(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s}s")
        await asyncio.sleep(0.05)


# --- HTTP servers (Mastodon, X, Reddit) -----------------------------------------------------


class HttpFake:
    """An aiohttp server on loopback; subclasses add routes. ``plan`` maps a route name to
    its list of misbehaviours, consumed one per request."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.plan: dict[str, list[Any]] = {}
        self.hits: dict[str, list[tuple[float, dict[str, str]]]] = {}

    def step(self, route: str, request: web.Request) -> Any:
        self.hits.setdefault(route, []).append((time.monotonic(), dict(request.query)))
        steps = self.plan.get(route) or []
        return steps.pop(0) if steps else "serve"

    async def __aenter__(self) -> HttpFake:
        self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        feeds = getattr(self, "feeds", None)
        if isinstance(feeds, Feeds):
            feeds.end()
        await self.runner.cleanup()


def too_many(wait: str = "1", header: str = "Retry-After") -> web.Response:
    return web.Response(status=429, text='{"error": "slow down"}', headers={header: wait})


class Feeds:
    """Connected streaming clients: each gets its own queue of lines to send."""

    def __init__(self) -> None:
        self.queues: dict[str, list[asyncio.Queue[bytes]]] = {}
        self.connections: dict[str, int] = {}

    def open(self, name: str) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.setdefault(name, []).append(queue)
        self.connections[name] = self.connections.get(name, 0) + 1
        return queue

    def close(self, name: str, queue: asyncio.Queue[bytes]) -> None:
        if queue in self.queues.get(name, []):
            self.queues[name].remove(queue)

    def push(self, name: str, chunk: bytes) -> None:
        for queue in self.queues.get(name, []):
            queue.put_nowait(chunk)

    def listening(self, name: str) -> bool:
        return bool(self.queues.get(name))

    def end(self) -> None:
        """Let every streaming handler return (an empty chunk ends it)."""
        for queues in self.queues.values():
            for queue in queues:
                queue.put_nowait(b"")


async def stream_out(request: web.Request, feeds: Feeds, name: str, step: Any, content_type: str,
                     greeting: bytes) -> web.StreamResponse:
    """Stream what is pushed to feed ``name``; ``("cut", n)`` aborts the connection after n."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    await response.prepare(request)
    queue = feeds.open(name)
    sent = 0
    try:
        await response.write(greeting)
        while True:
            if isinstance(step, tuple) and step[0] == "cut" and sent >= step[1]:
                assert request.transport is not None
                request.transport.abort()  # dies mid-stream: no end of the chunked body
                return response
            chunk = await queue.get()
            if not chunk:
                return response
            await response.write(chunk)
            sent += 1
    except (ConnectionResetError, asyncio.CancelledError):
        return response
    finally:
        feeds.close(name, queue)


def _page(items: list[dict[str, Any]], limit: int, max_id: str | None) -> list[dict[str, Any]]:
    """Newest first, older than ``max_id``: Mastodon's paging."""
    ordered = sorted(items, key=lambda it: int(it["id"]), reverse=True)
    if max_id:
        ordered = [it for it in ordered if int(it["id"]) < int(max_id)]
    return ordered[:limit]


# --- Mastodon: REST + server-sent events -------------------------------------------------------

def _now_iso() -> str:
    """Now, the way Mastodon writes ``created_at`` (ms): items made in one millisecond tie."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


ACME_ACCOUNT = {"id": "1001", "username": "acme", "acct": "acme", "display_name": "ACME"}


class Mastodon(HttpFake):
    token = "mastodon-token"

    def __init__(self) -> None:
        super().__init__()
        self.feeds = Feeds()
        self.notifications: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.tagged: list[dict[str, Any]] = []
        self.next_id = 113_000_000_000_100_000
        r = self.app.router
        r.add_get("/api/v1/accounts/verify_credentials", self.verify)
        r.add_get("/api/v1/notifications", self.rest("notifications", lambda: self.notifications))
        r.add_get("/api/v1/accounts/1001/statuses", self.rest("statuses", lambda: self.statuses))
        r.add_get("/api/v1/timelines/tag/acmecoffee", self.rest("tag", lambda: self.tagged))
        r.add_get("/api/v1/streaming/user", self.stream("user"))
        r.add_get("/api/v1/streaming/hashtag", self.stream("hashtag"))

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def verify(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "The access token is invalid"}, status=401)
        return web.json_response(ACME_ACCOUNT)

    def rest(self, name: str, items: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if not self._authorized(request):
                return web.json_response({"error": "The access token is invalid"}, status=401)
            if self.step(name, request) == "429":
                return too_many("1")
            return web.json_response(_page(items(), int(request.query.get("limit", "20")),
                                           request.query.get("max_id")))
        return handler

    def stream(self, name: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            if not self._authorized(request):
                return web.json_response({"error": "The access token is invalid"}, status=401)
            step = self.step(name, request)
            if step == "429":
                return too_many("1")
            return await stream_out(request, self.feeds, name, step, "text/event-stream", b":)\n\n")
        return handler

    def _id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    def _status(self, author: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
        ident = self._id()
        return {"id": ident, "created_at": _now_iso(), "in_reply_to_id": None,
                "in_reply_to_account_id": None, "visibility": "public", "language": "en",
                "uri": f"https://social.example/statuses/{ident}", "url": f"https://social.example/@x/{ident}",
                "content": f"<p>{text}</p>", "reblog": None, "account": author, "mentions": [], "tags": [],
                **extra}

    def _send(self, feed: str, event: str, data: str) -> None:
        self.feeds.push(feed, f"event: {event}\ndata: {data}\n\n".encode())

    def notify(self) -> dict[str, Any]:
        """A person mentions the brand: a notification for the brand's account."""
        person = {"id": "2002", "username": "alice", "acct": "alice@other.example"}
        status = self._status(person, "@acme a question", in_reply_to_account_id="1001",
                              mentions=[{"id": "1001", "username": "acme", "acct": "acme"}])
        note = {"id": self._id(), "type": "mention", "created_at": _now_iso(),
                "account": person, "status": status}
        self.notifications.append(note)
        self._send("user", "notification", orjson.dumps(note).decode())
        return note

    def post(self) -> dict[str, Any]:
        """The brand posts: its own status, in its user stream as an update."""
        status = self._status(ACME_ACCOUNT, "thanks!")
        self.statuses.append(status)
        self._send("user", "update", orjson.dumps(status).decode())
        return status

    def delete(self, status: dict[str, Any]) -> None:
        self.statuses.remove(status)
        self._send("user", "delete", status["id"])

    def tag_post(self) -> dict[str, Any]:
        person = {"id": "3003", "username": "bob", "acct": "bob@else.example"}
        status = self._status(person, "love my #acmecoffee", tags=[{"name": "acmecoffee"}])
        self.tagged.append(status)
        self._send("hashtag", "update", orjson.dumps(status).decode())
        return status


# --- X: filtered stream (JSON lines), rules, recent search -----------------------------------

X_EPOCH_MS = 1288834974657


class X(HttpFake):
    token = "x-bearer"

    def __init__(self) -> None:
        super().__init__()
        self.feeds = Feeds()
        self.rules: list[dict[str, str]] = [{"id": "1", "value": "old campaign", "tag": "old"}]
        self.posts: list[tuple[dict[str, Any], str]] = []  # (stream message, rule value it matches)
        self.seq = 0
        r = self.app.router
        r.add_get("/2/tweets/search/stream/rules", self.get_rules)
        r.add_post("/2/tweets/search/stream/rules", self.post_rules)
        r.add_get("/2/tweets/search/stream", self.stream)
        r.add_get("/2/tweets/search/recent", self.search)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def get_rules(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"title": "Unauthorized", "status": 401}, status=401)
        return web.json_response({"data": self.rules, "meta": {"sent": "2026-11-25T12:00:00.000Z"}})

    async def post_rules(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "delete" in body:
            ids = set(body["delete"]["ids"])
            self.rules = [r for r in self.rules if r["id"] not in ids]
        for rule in body.get("add", []):
            self.seq += 1
            self.rules.append({"id": str(1000 + self.seq), "value": rule["value"], "tag": rule["tag"]})
        return web.json_response({"data": self.rules, "meta": {"summary": {"created": len(body.get("add", []))}}})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"title": "Unauthorized", "status": 401}, status=401)
        step = self.step("stream", request)
        if step == "429":
            reset = str(int(time.time()) + 2)  # epoch seconds: a wait of 1 to 2 s
            return web.json_response({"title": "TooManyConnections", "status": 429}, status=429,
                                     headers={"x-rate-limit-reset": reset, "x-rate-limit-remaining": "0"})
        return await stream_out(request, self.feeds, "stream", step, "application/json", b"\r\n")

    async def search(self, request: web.Request) -> web.Response:
        self.step("search", request)
        query = request.query["query"]
        since = int(request.query.get("since_id", "0"))
        found = sorted((m for m, rule in self.posts if rule == query and int(m["data"]["id"]) > since),
                       key=lambda m: int(m["data"]["id"]), reverse=True)
        size = int(request.query.get("max_results", "10"))
        start = int(request.query.get("next_token", "0"))
        page = found[start:start + size]
        users = {u["id"]: u for m in page for u in m["includes"]["users"]}
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"], meta["oldest_id"] = page[0]["data"]["id"], page[-1]["data"]["id"]
        if start + size < len(found):
            meta["next_token"] = str(start + size)
        return web.json_response({"data": [m["data"] for m in page], "includes": {"users": list(users.values())},
                                  "meta": meta})

    def publish(self, listen: bool = False) -> dict[str, Any]:
        """A post matching the brand's account rule (a reply to it) or the listened tag."""
        self.seq += 1
        ident = str(((int(time.time() * 1000) - X_EPOCH_MS) << 22) + self.seq)
        rule = next(r for r in self.rules if r["tag"] == ("#acmecoffee" if listen else "rapport:account:900001"))
        data: dict[str, Any] = {"id": ident, "author_id": "900002", "conversation_id": "1861000000000000001",
                                "created_at": "2026-11-25T12:01:00.000Z", "lang": "en",
                                "edit_history_tweet_ids": [ident]}
        if listen:
            data["text"] = "best #acmecoffee"
            data["entities"] = {"hashtags": [{"start": 5, "end": 16, "tag": "acmecoffee"}]}
        else:
            data["text"] = "@acme the sidebar is unreadable"
            data["in_reply_to_user_id"] = "900001"
            data["referenced_tweets"] = [{"type": "replied_to", "id": "1861000000000000001"}]
            data["entities"] = {"mentions": [{"start": 0, "end": 5, "username": "acme", "id": "900001"}]}
        message = {"data": data, "includes": {"users": [{"id": "900002", "username": "alice", "name": "Alice"}]},
                   "matching_rules": [{"id": rule["id"], "tag": rule["tag"]}]}
        self.posts.append((message, rule["value"]))
        self.feeds.push("stream", orjson.dumps(message) + b"\r\n")
        return message


# --- Reddit: OAuth token + listings --------------------------------------------------------


class Reddit(HttpFake):
    client = ("reddit-app", "reddit-secret")
    passwords = {"acme_official": "hunter2"}

    def __init__(self) -> None:
        super().__init__()
        self.inbox: dict[str, list[dict[str, Any]]] = {"acme_official": []}
        self.mentions: dict[str, list[dict[str, Any]]] = {"acme_official": []}
        self.sub_new: list[dict[str, Any]] = []
        self.sub_comments: list[dict[str, Any]] = []
        self.seq = 0
        r = self.app.router
        r.add_post("/api/v1/access_token", self.access_token)
        r.add_get("/message/inbox", self.listing("inbox", lambda user: self.inbox[user]))
        r.add_get("/message/mentions", self.listing("mentions", lambda user: self.mentions[user]))
        r.add_get("/r/acme/new", self.listing("new", lambda user: self.sub_new))
        r.add_get("/r/acme/comments", self.listing("comments", lambda user: self.sub_comments))

    async def access_token(self, request: web.Request) -> web.Response:
        import base64

        expected = "Basic " + base64.b64encode(":".join(self.client).encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        form = await request.post()
        if form.get("grant_type") != "password" or self.passwords.get(str(form.get("username"))) != form.get(
                "password"):
            return web.json_response({"error": "invalid_grant"})
        return web.json_response({"access_token": f"tok-{form['username']}", "token_type": "bearer",
                                  "expires_in": 86400, "scope": "*"})

    def listing(self, name: str, items: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("bearer tok-"):
                return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
            step = self.step(name, request)
            if step == "429":
                return too_many("1")
            if step == "drop":
                assert request.transport is not None
                request.transport.abort()  # the connection dies before an answer
                return web.Response()
            things = list(reversed(items(auth.removeprefix("bearer tok-"))))  # newest first
            limit = int(request.query.get("limit", "25"))
            after = request.query.get("after")
            if after:
                names = [t["data"]["name"] for t in things]
                things = things[names.index(after) + 1:] if after in names else []
            page = things[:limit]
            doc = {"kind": "Listing", "data": {"after": page[-1]["data"]["name"] if len(things) > limit else None,
                                               "before": None, "dist": len(page), "children": page}}
            return web.json_response(doc, headers={"x-ratelimit-remaining": "95.0", "x-ratelimit-used": "5",
                                                   "x-ratelimit-reset": "300"})
        return handler

    def _name(self, kind: str) -> tuple[str, str]:
        self.seq += 1
        ident = f"kz{self.seq:04d}"
        return ident, f"{kind}_{ident}"

    def reply(self, to_mentions: bool = False) -> dict[str, Any]:
        """A comment reply in the brand's inbox (and, when it names u/acme_official, in mentions)."""
        ident, name = self._name("t1")
        thing = {"kind": "t1", "data": {
            "id": ident, "name": name, "author": "alice_r", "body": "u/acme_official still broken",
            "parent_id": "t1_kx0002", "subreddit": "acme", "created_utc": time.time(), "new": True,
            "dest": "acme_official", "was_comment": True,
            "type": "username_mention" if to_mentions else "comment_reply",
            "context": f"/r/acme/comments/1abcde/we_just_shipped_dark_mode_ama/{ident}/?context=3"}}
        self.inbox["acme_official"].append(thing)
        if to_mentions:
            self.mentions["acme_official"].append(thing)
        return thing

    def comment(self) -> dict[str, Any]:
        ident, name = self._name("t1")
        thing = {"kind": "t1", "data": {
            "id": ident, "name": name, "author": "bob_r", "body": "Same here", "parent_id": "t3_1abcde",
            "link_id": "t3_1abcde", "subreddit": "acme", "created_utc": time.time(),
            "permalink": f"/r/acme/comments/1abcde/we_just_shipped_dark_mode_ama/{ident}/"}}
        self.sub_comments.append(thing)
        return thing

    def submission(self) -> dict[str, Any]:
        ident, name = self._name("t3")
        thing = {"kind": "t3", "data": {
            "id": ident, "name": name, "author": "carol_r", "title": "Is the API down?", "selftext": "",
            "subreddit": "acme", "created_utc": time.time(), "permalink": f"/r/acme/comments/{ident}/api_down/",
            "num_comments": 0}}
        self.sub_new.append(thing)
        return thing
