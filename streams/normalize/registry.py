"""The single dispatcher of normalization: one module per platform, one way to call it.

A platform normalizer is ``(payload, Rows) -> None``: it reads one decoded payload (the
caller splits arrays) with the readers of :mod:`streams.normalize.access` and writes its
rows, or its skip reasons, into :class:`~streams.normalize.rows.Rows`. It signals malformed
input with :class:`BadPayload` (whose text names the field). Here every call is guarded so
that for *any* JSON value the result is rows or a :class:`DeadLetter`, never an exception:
anything else that escapes from parsing untrusted data is a dead letter too, with the
exception type in the reason so that a parser bug is still visible in the DLQ.

:func:`normalize_rows` is what the batch path (:mod:`streams.normalize.records`) calls, with
a :class:`Context` built once per raw record; :func:`normalize` is the same for one payload
with typed outcomes (tests, replays, the ingest programs' own checks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.normalize.base import AccountIndex, Arrival, BadPayload, DeadLetter, Outcome
from streams.normalize.bluesky import normalize_bluesky
from streams.normalize.facebook import normalize_facebook
from streams.normalize.instagram import normalize_instagram
from streams.normalize.mastodon import normalize_mastodon
from streams.normalize.reddit import normalize_reddit
from streams.normalize.rows import Context, Rows, tables_for
from streams.normalize.x import normalize_x

Normalizer = Callable[[Any, Rows], None]

NORMALIZERS: dict[str, Normalizer] = {
    "bluesky": normalize_bluesky,
    "reddit": normalize_reddit,
    "mastodon": normalize_mastodon,
    "x": normalize_x,
    "facebook": normalize_facebook,
    "instagram": normalize_instagram,
}

# What parsing untrusted, arbitrarily nested JSON may raise besides BadPayload. Deeply
# nested input can exhaust the stack; it is as malformed as a wrong type.
_PARSE_ERRORS = (
    KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError,
)


def normalize_rows(platform: str, payload: Any, ctx: Context, raw_key: str) -> Rows | DeadLetter:
    """The rows of one payload of ``platform``, or why it is a dead letter; never raises for
    any JSON value."""
    normalizer = NORMALIZERS.get(platform)
    if normalizer is None:
        return DeadLetter(f"unknown platform {platform!r}")
    rows = Rows(ctx, raw_key)
    try:
        normalizer(payload, rows)
    except BadPayload as exc:
        return DeadLetter(f"{platform}: {exc}")
    except _PARSE_ERRORS as exc:
        return DeadLetter(f"{platform}: unexpected {type(exc).__name__}: {exc}"[:500])
    return rows


def normalize(platform: str, payload: Any, arrival: Arrival, index: AccountIndex) -> Outcome:
    """Normalize one payload of ``platform`` to a typed outcome; never raises for any JSON value."""
    if platform not in NORMALIZERS:
        return DeadLetter(f"unknown platform {platform!r}")
    ctx = Context(tables_for(index, platform), arrival.source, arrival.received_at, arrival.via_account)
    out = normalize_rows(platform, payload, ctx, arrival.raw_key)
    return out if isinstance(out, DeadLetter) else out.outcome()
