"""`rapport ingest webhooks`: Meta's webhooks (Facebook Pages, Instagram) -> ``rapport.raw.*``.

A small HTTP server (aiohttp) on ``webhook_host:webhook_port`` at ``webhook_path``:

- ``GET``: Meta's subscription check. With ``hub.mode=subscribe`` and the configured
  ``hub.verify_token`` it answers ``hub.challenge``; anything else gets 403.
- ``POST``: a delivery. Its body must be at most ``webhook_max_body_bytes`` (else 413) and
  signed: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app
  secret>``, compared in constant time. A missing, malformed or wrong signature gets 403
  and nothing is published. A signed body is published exactly as received, to
  ``raw.facebook`` (``object: page``) or ``raw.instagram`` (``object: instagram``), source
  ``webhook``, ``via_account`` = the entry id (the Page or Instagram account) when every
  entry names the same one. The answer (200) waits until the broker has the delivery, so
  a delivery that could not be kept is answered 503 and Meta sends it again.

Run it behind a TLS-terminating proxy: Meta delivers to https URLs only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from streams.ingest.agent import Outbox, Status
from streams.ingest.runtime import Context
from streams.settings import Settings

log = logging.getLogger("streams.ingest")

OBJECTS = {"page": "facebook", "instagram": "instagram"}
SIGNATURE_HEADER = "X-Hub-Signature-256"


def signature_ok(body: bytes, header: str | None, secrets: list[bytes]) -> bool:
    """Whether ``header`` is ``sha256=<hex>`` of ``body`` under one of ``secrets``."""
    if not header or not header.startswith("sha256="):
        return False
    given = header.removeprefix("sha256=").strip().lower()
    ok = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        ok |= hmac.compare_digest(expected, given)  # every secret is tried: no early exit
    return ok


def verify_challenge(query: dict[str, str], verify_token: str | None) -> str | None:
    """The challenge to echo for a valid subscription check, else ``None``."""
    if verify_token is None or query.get("hub.mode") != "subscribe":
        return None
    if not hmac.compare_digest(query.get("hub.verify_token", "").encode(), verify_token.encode()):
        return None
    return query.get("hub.challenge", "")


def route(body: bytes) -> tuple[str | None, str, str]:
    """(platform, via account, reason): where a signed delivery goes, or why nowhere."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, "", "not JSON"
    if not isinstance(doc, dict):
        return None, "", "not a JSON object"
    platform = OBJECTS.get(str(doc.get("object")))
    if platform is None:
        return None, "", f"object {str(doc.get('object'))[:40]!r} is not read"
    entries = doc.get("entry")
    ids = {str(e.get("id")) for e in entries if isinstance(e, dict) and e.get("id") is not None} \
        if isinstance(entries, list) else set()
    return platform, (ids.pop() if len(ids) == 1 else ""), ""


class GroupCommit:
    """Many concurrent deliveries, one broker flush: each request waits for the next flush
    that started after it queued its payload."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.waiting: list[asyncio.Future[None]] = []
        self.running = False

    async def commit(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        if not self.running:
            self.running = True
            asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    await self.outbox.flush()
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    for f in batch:
                        if not f.done():
                            f.set_exception(exc)
                else:
                    for f in batch:
                        if not f.done():
                            f.set_result(None)
        finally:
            self.running = False


class Receiver:
    """The request handlers; kept apart from the server so tests can mount them anywhere."""

    def __init__(self, settings: Settings, outbox: Outbox, status: Status) -> None:
        self.settings = settings
        self.outbox = outbox
        self.status = status
        self.commits = GroupCommit(outbox)
        self.secrets = [s.get_secret_value().encode() for s in (settings.meta_app_secret,
                                                                 settings.instagram_app_secret) if s is not None]
        self.refused = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.webhook_max_body_bytes)
        app.router.add_get(self.settings.webhook_path, self.verify)
        app.router.add_post(self.settings.webhook_path, self.deliver)
        return app

    async def verify(self, request: web.Request) -> web.Response:
        token = self.settings.meta_verify_token
        challenge = verify_challenge(dict(request.query), token.get_secret_value() if token else None)
        if challenge is None:
            self._refuse(request, 403, "subscription check with a wrong or missing verify token")
            return web.Response(status=403, text="forbidden\n")
        log.info("webhooks: subscription check answered")
        return web.Response(text=challenge)

    async def deliver(self, request: web.Request) -> web.Response:
        limit = self.settings.webhook_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            self._refuse(request, 413, f"body of {request.content_length} bytes")
            return web.Response(status=413, text="too large\n")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._refuse(request, 413, "body over the limit")
            return web.Response(status=413, text="too large\n")
        if not self.secrets or not signature_ok(body, request.headers.get(SIGNATURE_HEADER), self.secrets):
            what = "unsigned" if SIGNATURE_HEADER not in request.headers else "badly signed"
            self._refuse(request, 403, f"{what} delivery")
            return web.Response(status=403, text="forbidden\n")
        platform, via, reason = route(body)
        self.status.event(time.time())
        if platform is None:
            # Signed by Meta but nothing we read: acknowledged so it is not sent again.
            log.info("webhooks: signed delivery ignored: %s", reason)
            return web.Response(text="ignored\n")
        await self.outbox.put(platform, body, "webhook", via)
        try:
            await self.commits.commit()
        except Exception as exc:  # noqa: BLE001 - Meta retries a delivery answered 503
            self.status.error(f"delivery not kept: {exc}")
            log.error("webhooks: delivery not kept (Meta will retry it): %s", exc)
            return web.Response(status=503, text="try again\n")
        return web.Response(text="EVENT_RECEIVED\n")

    def _refuse(self, request: web.Request, code: int, why: str) -> None:
        self.refused += 1
        self.status.error(f"{code}: {why} from {request.remote}")
        log.warning("webhooks: refused (%d) %s from %s", code, why, request.remote)


class WebhookAgent:
    name = "webhooks"

    def __init__(self, ctx: Context, port: int | None = None) -> None:
        self.ctx = ctx
        self.receiver = Receiver(ctx.settings, ctx.outbox, ctx.status)
        self.port = ctx.settings.webhook_port if port is None else port
        self.bound: tuple[str, int] | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        runner = web.AppRunner(self.receiver.app(), handle_signals=False, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.ctx.settings.webhook_host, self.port)
            await site.start()
            address: Any = runner.addresses[0]
            self.bound = (str(address[0]), int(address[1]))
            url = f"http://{self.bound[0]}:{self.bound[1]}{self.ctx.settings.webhook_path}"
            self.ctx.status.notes.append(f"webhooks: listening on {url}")
            self.ctx.status.connected()
            log.info("webhooks: listening on %s", url)
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
