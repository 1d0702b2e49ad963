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
  entry names the same one. The answer (200) waits until the delivery is appended and
  fsynced to the write-ahead spool ``<data_dir>/spool/webhooks/`` (streams/ingest/spool.py),
  where it stays until the archive (``raw_events``) holds it; a delivery that could not be
  written is answered 503 and Meta sends it again. The spool keeper
  (streams/ingest/spool_keeper.py) publishes again whatever the archive still lacks.

Instagram ``mentions`` changes carry only ``media_id`` and ``comment_id``: no author, no
text. When a token is configured (``instagram_access_token`` or, per Instagram account,
``instagram_access_tokens``), the receiver asks the Graph API for the mentioned comment
(``GET /{ig-user-id}?fields=mentioned_comment.comment_id(<id>){...}``) or, for a caption
mention, the mentioned media (``mentioned_media.media_id(<id>){...}``) and adds the
answer, as returned, under ``_completed`` in that change's ``value``; the delivery is then
published with source ``webhook+api``. Nothing else changes. A lookup that fails (or no
token) never holds up or drops a delivery: it is published as received, source ``webhook``,
with one log line.

Run it behind a TLS-terminating proxy: Meta delivers to https URLs only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any

import httpx
import orjson
from aiohttp import web

from streams.ingest.agent import Outbox, Status
from streams.ingest.publisher import payload_key
from streams.ingest.runtime import Context
from streams.ingest.spool import Spool, spool_dir
from streams.ingest.spool_keeper import SpoolKeeper, mark_published
from streams.limits import payload_max_bytes
from streams.settings import Settings

log = logging.getLogger("streams.ingest")

OBJECTS = {"page": "facebook", "instagram": "instagram"}
SIGNATURE_HEADER = "X-Hub-Signature-256"
COMPLETED = "_completed"  # reserved key of a change value: the Graph API's answer
COMMENT_FIELDS = "{id,text,timestamp,username,from,media{id}}"
MEDIA_FIELDS = "{id,caption,timestamp,username}"


def mention_query(value: dict[str, Any]) -> str | None:
    """The ``fields`` parameter that looks up a mention change's comment or media."""
    comment_id, media_id = value.get("comment_id"), value.get("media_id")
    if isinstance(comment_id, str | int) and not isinstance(comment_id, bool) and str(comment_id).strip():
        return f"mentioned_comment.comment_id({str(comment_id).strip()}){COMMENT_FIELDS}"
    if isinstance(media_id, str | int) and not isinstance(media_id, bool) and str(media_id).strip():
        return f"mentioned_media.media_id({str(media_id).strip()}){MEDIA_FIELDS}"
    return None


def mentions_to_complete(doc: Any) -> list[tuple[str, dict[str, Any], str]]:
    """(ig-user-id, change value, fields) of each Instagram mention change lacking ``_completed``."""
    out: list[tuple[str, dict[str, Any], str]] = []
    if not isinstance(doc, dict) or doc.get("object") != "instagram" or not isinstance(doc.get("entry"), list):
        return out
    for entry in doc["entry"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str | int) or \
                not isinstance(entry.get("changes"), list):
            continue
        for change in entry["changes"]:
            if not isinstance(change, dict) or change.get("field") != "mentions":
                continue
            value = change.get("value")
            if isinstance(value, dict) and COMPLETED not in value and (fields := mention_query(value)):
                out.append((str(entry["id"]), value, fields))
    return out


class MentionCompleter:
    """Completes Instagram mention changes from the Graph API (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: httpx.AsyncClient | None = None
        self.failures = 0

    def token(self, account_id: str) -> str | None:
        token = self.settings.instagram_access_tokens.get(account_id) or self.settings.instagram_access_token
        return token.get_secret_value() if token is not None else None

    async def complete(self, body: bytes) -> tuple[bytes, str]:
        """The body to publish and its source: completed (``webhook+api``) or as received."""
        if self.settings.instagram_access_token is None and not self.settings.instagram_access_tokens:
            return body, "webhook"
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body, "webhook"
        wanted = mentions_to_complete(doc)
        if not wanted:
            return body, "webhook"
        answers = await asyncio.gather(*(self._lookup(account, fields) for account, _, fields in wanted))
        if not all(isinstance(a, dict) for a in answers):
            return body, "webhook"  # all or nothing: a delivery is either as received or completed
        for (_, value, _), answer in zip(wanted, answers, strict=True):
            value[COMPLETED] = answer
        return orjson.dumps(doc), "webhook+api"

    async def _lookup(self, account: str, fields: str) -> dict[str, Any] | None:
        token = self.token(account)
        if token is None:
            return None
        base = self.settings.instagram_graph_url.rstrip("/")
        url = f"{base}/{self.settings.instagram_api_version.strip('/')}/{account}"
        try:
            if self.client is None:
                self.client = httpx.AsyncClient(timeout=self.settings.instagram_complete_timeout_s, trust_env=False)
            response = await self.client.get(url, params={"fields": fields, "access_token": token})
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            answer = orjson.loads(response.content)
            if not isinstance(answer, dict) or not any(k in answer for k in ("mentioned_comment", "mentioned_media")):
                raise ValueError("answer names no mentioned comment or media")
            return answer
        except Exception as exc:  # noqa: BLE001 - a failed lookup must never cost the delivery
            self.failures += 1
            log.warning("webhooks: mention of %s not completed, published as received: %s",
                        account, str(exc)[:200] or type(exc).__name__)
            return None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None


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


class Receiver:
    """The request handlers; kept apart from the server so tests can mount them anywhere."""

    def __init__(self, settings: Settings, outbox: Outbox, status: Status, spool: Spool) -> None:
        self.settings = settings
        self.outbox = outbox
        self.status = status
        self.spool = spool
        self.payload_max = payload_max_bytes(settings)
        self.secrets = [s.get_secret_value().encode() for s in (settings.meta_app_secret,
                                                                 settings.instagram_app_secret) if s is not None]
        self.refused = 0
        self.completer = MentionCompleter(settings)

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
        source = "webhook"
        if platform == "instagram":
            body, source = await self.completer.complete(body)
        received_at = int(time.time() * 1000)
        try:
            entry = self.spool.append(platform, body, source, via, received_at, payload_key(body, self.payload_max))
            await self.spool.sync()
        except OSError as exc:  # a full or failing disk: Meta retries a delivery answered 503
            self.status.error(f"delivery not kept: {exc}")
            log.error("webhooks: delivery not kept (Meta will retry it): %s", exc)
            return web.Response(status=503, text="try again\n")
        entry.published_at = time.monotonic()
        await self.outbox.put(platform, body, source, via)
        return web.Response(text="EVENT_RECEIVED\n")

    def _refuse(self, request: web.Request, code: int, why: str) -> None:
        self.refused += 1
        self.status.error(f"{code}: {why} from {request.remote}")
        log.warning("webhooks: refused (%d) %s from %s", code, why, request.remote)


class WebhookAgent:
    name = "webhooks"

    def __init__(self, ctx: Context, port: int | None = None) -> None:
        self.ctx = ctx
        self.spool = Spool(spool_dir(ctx.settings.data_dir, self.name), ctx.settings.spool_segment_bytes)
        self.receiver = Receiver(ctx.settings, ctx.outbox, ctx.status, self.spool)
        self.keeper = SpoolKeeper(self.spool, ctx.outbox, ctx.cursors, ctx.settings, ctx.status)
        self.port = ctx.settings.webhook_port if port is None else port
        self.bound: tuple[str, int] | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        # A dying predecessor (restarted by `rapport up`) may still hold the spool for a moment.
        await asyncio.to_thread(self.spool.open, 30.0)
        if len(self.spool):
            log.info("webhooks: spool holds %d acknowledged deliveries not yet confirmed archived", len(self.spool))
        if self.ctx.settings.supervisor_pid is not None:
            mark_published(self.spool)  # `rapport up` replayed them just before starting us
        keeper = asyncio.create_task(self.keeper.run(), name="webhooks-spool")
        runner = web.AppRunner(self.receiver.app(), handle_signals=False, access_log=None, shutdown_timeout=5.0)
        try:
            await runner.setup()
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
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await runner.cleanup()
            await self.receiver.completer.close()
            self.spool.close()
