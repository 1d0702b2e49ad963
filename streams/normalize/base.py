"""Outcome types and attribution shared by every platform normalizer.

A normalizer is a pure function ``(payload, Arrival, AccountIndex) -> Outcome``. It never
raises for bad input: a malformed payload becomes :class:`DeadLetter` with a precise
reason; a well-formed event that concerns no metric becomes :class:`Skipped` (counted,
not dead-lettered); everything else is :class:`Normalized`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.clients import ClientsFile
from streams.interaction import Change, Interaction


@dataclass(frozen=True, slots=True)
class Arrival:
    """How a payload reached us: needed for attribution and for reproducible versions."""

    platform: str
    source: str  # stream | inbox | webhook | listen:<src> | replay | simulate
    received_at: int  # epoch ms, the version of every row this payload yields
    raw_key: str
    # For sources owned by one account (an inbox, a Page webhook), which account it is.
    via_account: str | None = None


@dataclass(frozen=True, slots=True)
class Normalized:
    interactions: tuple[Interaction, ...] = ()
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class Skipped:
    """Well-formed, but concerns no metric (identity events, unknown collections, ...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Cannot be parsed or processed; the payload goes to the DLQ with this reason."""

    reason: str


Outcome = Normalized | Skipped | DeadLetter


class BadPayload(ValueError):
    """Raised inside a normalizer to dead-letter a payload; caught by the registry."""


@dataclass(frozen=True, slots=True)
class AccountRef:
    client_id: str
    account_id: str
    handle: str


def _ref_lists() -> dict[tuple[str, str], list[AccountRef]]:
    return defaultdict(list)


@dataclass(slots=True)
class AccountIndex:
    """Tracked accounts of the clients file, indexed for attribution per platform.

    Built once per clients file; lookups are case-insensitive on handles because Reddit
    names and handles are. Do not change an index once it is in use: the fast path caches
    per-platform tables derived from it (:func:`streams.normalize.rows.tables_for`).
    """

    by_id: dict[tuple[str, str], list[AccountRef]] = field(default_factory=_ref_lists)
    by_handle: dict[tuple[str, str], list[AccountRef]] = field(default_factory=_ref_lists)
    by_listen: dict[tuple[str, str], list[AccountRef]] = field(default_factory=_ref_lists)
    # platform -> rows.Tables, filled on first use (typed Any: rows imports this module).
    fast_tables: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, clients: ClientsFile) -> AccountIndex:
        index = cls()
        for client, acc in clients.accounts():
            ref = AccountRef(client.id, acc.account_id, acc.handle)
            index.by_id[(acc.platform, acc.account_id)].append(ref)
            if acc.handle:
                index.by_handle[(acc.platform, acc.handle.lower().lstrip("@"))].append(ref)
            if acc.platform == "reddit":
                index.by_handle[(acc.platform, acc.account_id.lower())].append(ref)
            for src in acc.listen:
                index.by_listen[(acc.platform, normalize_listen(src))].append(ref)
        return index

    def accounts(self, platform: str, account_id: str | None) -> list[AccountRef]:
        if not account_id:
            return []
        return self.by_id.get((platform, account_id), [])

    def accounts_by_handle(self, platform: str, handle: str | None) -> list[AccountRef]:
        if not handle:
            return []
        return self.by_handle.get((platform, handle.lower().lstrip("@")), [])

    def listeners(self, platform: str, source: str | None) -> list[AccountRef]:
        if not source:
            return []
        return self.by_listen.get((platform, normalize_listen(source)), [])

    def all_on(self, platform: str) -> list[AccountRef]:
        out: list[AccountRef] = []
        for (plat, _), refs in self.by_id.items():
            if plat == platform:
                out.extend(refs)
        return out


def normalize_listen(source: str) -> str:
    """Canonical form of a listened source: ``r/acme``, ``#coffee``, case-folded."""
    s = source.strip().lower()
    if s.startswith("/r/"):
        s = s[1:]
    return s


def raw_key_of(payload: Any) -> str:
    """Archive key of a payload: a content hash of its canonical JSON bytes.

    Offsets restart with the embedded broker, so the archive cannot be keyed by offset;
    the same payload delivered twice maps to one archive row.
    """
    return raw_key_of_json(orjson.dumps(payload))


def raw_key_of_json(data: bytes) -> str:
    """:func:`raw_key_of` for a payload already serialised with ``orjson.dumps``: the
    archive needs those bytes anyway, so a batch serialises each payload once."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
