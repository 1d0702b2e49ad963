"""The single entry point of normalization: ``normalize(platform, payload, arrival, index)``.

It dispatches one decoded payload (the caller splits arrays) to its platform module and
guarantees the contract the agents rely on: for *any* JSON value it returns one of
:class:`Normalized`, :class:`Skipped` or :class:`DeadLetter`, never raises. A normalizer
signals malformed input with :class:`BadPayload` (whose text names the field); anything
else that escapes from parsing untrusted data is a dead letter too, with the exception
type in the reason so that a parser bug is still visible in the DLQ.

Each payload first meets its platform's fast path (:mod:`streams.normalize.fast`), which
handles the payload shapes it expects and gives up on anything else; the checked
normalizer then decides, so its outcome and reasons are the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.normalize.base import AccountIndex, Arrival, BadPayload, DeadLetter, Outcome
from streams.normalize.bluesky import normalize_bluesky
from streams.normalize.facebook import normalize_facebook
from streams.normalize.fast import FAST
from streams.normalize.fast.core import Context, attempt, tables_for
from streams.normalize.instagram import normalize_instagram
from streams.normalize.mastodon import normalize_mastodon
from streams.normalize.reddit import normalize_reddit
from streams.normalize.x import normalize_x

Normalizer = Callable[[Any, Arrival, AccountIndex], Outcome]

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


def normalize(platform: str, payload: Any, arrival: Arrival, index: AccountIndex) -> Outcome:
    """Normalize one payload of ``platform``; never raises for any JSON value."""
    fast = FAST.get(platform)
    if fast is not None:
        ctx = Context(tables_for(index, platform), arrival.source, arrival.received_at, arrival.via_account)
        rows = attempt(fast, payload, ctx, arrival.raw_key)
        if rows is not None:
            return rows.outcome()
    return normalize_checked(platform, payload, arrival, index)


def normalize_checked(platform: str, payload: Any, arrival: Arrival, index: AccountIndex) -> Outcome:
    """The checked path alone: what :func:`normalize` gives, at the checked path's speed."""
    normalizer = NORMALIZERS.get(platform)
    if normalizer is None:
        return DeadLetter(f"unknown platform {platform!r}")
    try:
        return normalizer(payload, arrival, index)
    except BadPayload as exc:
        return DeadLetter(f"{platform}: {exc}")
    except _PARSE_ERRORS as exc:
        return DeadLetter(f"{platform}: unexpected {type(exc).__name__}: {exc}"[:500])
