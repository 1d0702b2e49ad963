"""HTTP plumbing shared by the agents: one client, response checks, SSE and JSON lines.

Responses are turned into the supervisor's vocabulary here: 429 (and an exhausted quota)
becomes :class:`RateLimited` with the platform's own wait, 401/403
:class:`CredentialsRefused`, other failures :class:`Retry`. Payloads stay bytes: agents
publish them as received.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from streams.ingest.agent import CredentialsRefused, RateLimited, Retry, retry_after_s
from streams.ingest.cursors import STORE_DOWN
from streams.settings import Settings

# Failures a supervisor retries quietly (one log line, no traceback): the platform's
# transport, or the store that holds the resume points.
TRANSIENT: tuple[type[BaseException], ...] = (httpx.HTTPError, OSError, TimeoutError, *STORE_DOWN)


def http_client(settings: Settings, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client whose read timeout doubles as stall detection on streams."""
    timeout = httpx.Timeout(settings.ingest_http_timeout_s, read=settings.ingest_stall_s)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=True, trust_env=False, **kwargs)


def _snippet(body: bytes) -> str:
    text = body[:200].decode("utf-8", errors="replace").replace("\n", " ").strip()
    return text or "(empty body)"


def check(response: httpx.Response, what: str, body: bytes | None = None) -> None:
    """Raise the supervisor's exception for a failed response; return for a 2xx."""
    code = response.status_code
    if 200 <= code < 300:
        return
    detail = f"{what}: HTTP {code} {_snippet(body) if body is not None else ''}".strip()
    if code == 429:
        raise RateLimited(detail, retry_after_s(response.headers), status=code)
    if code in (401, 403):
        raise CredentialsRefused(detail, status=code)
    # Some servers announce a wait on 503 too.
    raise Retry(detail, retry_after_s(response.headers) if code == 503 else None, status=code)


async def checked_stream(response: httpx.Response, what: str) -> None:
    """For streaming responses: read the (short) error body before raising."""
    if not 200 <= response.status_code < 300:
        body = await response.aread()
        check(response, what, body)


async def get_json(client: httpx.AsyncClient, url: str, what: str, **kwargs: Any) -> tuple[Any, httpx.Response]:
    """GET a JSON document; failures raise the supervisor's exceptions."""
    response = await client.get(url, **kwargs)
    body = response.content
    check(response, what, body)
    try:
        return orjson.loads(body), response
    except orjson.JSONDecodeError as exc:
        raise Retry(f"{what}: response is not JSON: {_snippet(body)}") from exc


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs of a server-sent-events stream (comments are heartbeats)."""
    event, data = "message", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


async def json_lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """Non-empty lines of a newline-delimited JSON stream (blank lines are keep-alives)."""
    async for line in response.aiter_lines():
        stripped = line.strip()
        if stripped:
            yield stripped.encode()
