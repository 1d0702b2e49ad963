"""The Meta webhook receiver end to end: real HTTP on loopback, the real Tansu broker.

Signed deliveries reach ``raw.facebook`` / ``raw.instagram`` exactly as sent; forged,
unsigned, re-signed and oversized ones are refused and publish nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from streams.clients import load_clients
from streams.ingest.agent import Status
from streams.ingest.runtime import Context, run_agent
from streams.ingest.webhooks import WebhookAgent
from tests.integration.ingest_support import eventually, raw_payloads
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
SECRET = "app-secret-for-tests"
VERIFY = "verify-me"
LIMIT = 64 * 1024


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@asynccontextmanager
async def receiver(ns: Namespace, **overrides: Any) -> AsyncIterator[tuple[str, Status]]:
    """The receiver running in-process on a free port; yields its URL and status."""
    settings = ns.settings.model_copy(update=dict(
        meta_app_secret=SecretStr(SECRET), meta_verify_token=SecretStr(VERIFY), webhook_port=0,
        webhook_max_body_bytes=LIMIT, publish_linger_s=0.05, **overrides))
    agents: list[WebhookAgent] = []

    def make(ctx: Context) -> WebhookAgent:
        agents.append(WebhookAgent(ctx))
        return agents[-1]

    status = Status("webhooks")
    clients = load_clients(Path(str(settings.clients)))
    task = asyncio.create_task(run_agent(make, "webhooks", settings, clients, ns.broker_url, ns.store_url,
                                         status=status))
    await eventually(lambda: bool(agents) and agents[0].bound is not None or task.done(), what="listening")
    if task.done():
        task.result()
    host, port = agents[0].bound  # type: ignore[misc]
    try:
        yield f"http://{host}:{port}{settings.webhook_path}", status
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def fixture_lines(name: str) -> list[bytes]:
    return [line for line in (FIXTURES / name).read_bytes().splitlines() if line.strip()]


def test_subscription_check_answers_only_the_right_token(namespace: Namespace) -> None:
    async def scenario() -> None:
        async with receiver(namespace) as (url, _), httpx.AsyncClient() as http:
            ok = await http.get(url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                             "hub.challenge": "1158201444"})
            assert (ok.status_code, ok.text) == (200, "1158201444")
            for params in ({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
                           {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
                           {"hub.challenge": "1"}):
                refused = await http.get(url, params=params)
                assert refused.status_code == 403 and "1" not in refused.text

    run(scenario)


def test_signed_deliveries_are_published_as_received(namespace: Namespace) -> None:
    facebook = fixture_lines("facebook_webhooks.jsonl")
    instagram = fixture_lines("instagram_webhooks.jsonl")

    async def scenario() -> None:
        async with receiver(namespace) as (url, status), httpx.AsyncClient() as http:
            bodies = facebook + instagram
            # Concurrent deliveries share broker flushes; each is answered once kept.
            answers = await asyncio.gather(*(
                http.post(url, content=b, headers={"X-Hub-Signature-256": sign(b),
                                                   "Content-Type": "application/json"}) for b in bodies))
            assert [a.status_code for a in answers] == [200] * len(bodies)
            other = b'{"object": "user", "entry": [{"id": "1", "time": 1, "changes": []}]}'
            ignored = await http.post(url, content=other, headers={"X-Hub-Signature-256": sign(other)})
            assert ignored.status_code == 200  # signed but not ours to read: acknowledged, not published
            assert status.received == len(bodies) + 1

    run(scenario)
    for platform, lines in (("facebook", facebook), ("instagram", instagram)):
        got = raw_payloads(namespace, platform)
        assert sorted(orjson.dumps(p) for p, _ in got) == sorted(orjson.dumps(orjson.loads(b)) for b in lines)
        for payload, headers in got:
            assert headers["source"] == "webhook"
            assert headers["via_account"] == payload["entry"][0]["id"]


def test_forged_unsigned_resigned_and_oversized_deliveries_publish_nothing(namespace: Namespace) -> None:
    body = fixture_lines("facebook_webhooks.jsonl")[0]
    tampered = body.replace(b"unreadable", b"perfectly fine")
    big = b'{"object": "page", "entry": [{"id": "700001", "pad": "' + b"x" * LIMIT + b'"}]}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    attempts: list[tuple[str, bytes | Any, dict[str, str], int]] = [
        ("wrong signature", body, {"X-Hub-Signature-256": sign(body, "not-the-secret")}, 403),
        ("missing header", body, {}, 403),
        ("replayed body, another body's signature", body, {"X-Hub-Signature-256": sign(tampered)}, 403),
        ("tampered body, the original's signature", tampered, {"X-Hub-Signature-256": sign(body)}, 403),
        ("sha1 header only", body, {"X-Hub-Signature": "sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest()},
         403),
        ("malformed header", body, {"X-Hub-Signature-256": "sha256=zz"}, 403),
        ("oversized, signed", big, {"X-Hub-Signature-256": sign(big)}, 413),
    ]

    async def scenario() -> None:
        async with receiver(namespace) as (url, status), httpx.AsyncClient() as http:
            for what, content, headers, code in attempts:
                answer = await http.post(url, content=content, headers=headers)
                assert answer.status_code == code, what
            streamed = await http.post(url, content=chunks(), headers={"X-Hub-Signature-256": sign(big)})
            assert streamed.status_code == 413, "oversized chunked body"
            assert status.received == 0 and status.published == 0
            assert status.last_error.startswith("413")
            await asyncio.sleep(0.3)  # anything wrongly queued would be published by now

    run(scenario)
    assert raw_payloads(namespace, "facebook") == []
    assert raw_payloads(namespace, "instagram") == []
