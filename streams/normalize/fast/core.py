"""What every fast normalizer shares: plain-value readers, attribution tables, row output.

The checked path spends most of its time on care that only a bad payload needs: a
:class:`~streams.normalize.access.Node` per object with its field path, a ``Draft``, an
``Audience`` and a frozen ``Interaction`` per row. Here fields are read with ``dict.get``
and exact type checks, attribution is one dict lookup per name in tables derived once per
:class:`AccountIndex`, and rows are built directly as lists in column order (what the
interactions topic carries), so the batch path never builds an ``Interaction`` at all.

A reader that meets anything unexpected raises :class:`Fallback`; helpers reused from the
checked path may raise ``BadPayload`` or another parse error instead. Either way
:func:`attempt` returns ``None`` and the caller runs the checked normalizer, whose outcome
(with its precise field path) is the reference. Checks here may be stricter than the checked
path's (an ``int`` subclass is refused, say), which only costs a fallback; never looser.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.interaction import Change, Interaction
from streams.normalize.access import MAX_MS, epoch_to_ms, iso_to_ms
from streams.normalize.base import AccountIndex, AccountRef, Normalized, Outcome, Skipped, normalize_listen
from streams.normalize.emit import NO_ACCOUNT

Key = tuple[str, str]  # (client_id, account_id): what a row names of the account it concerns
Row = list[Any]
UNATTRIBUTED: tuple[Key, ...] = (("", ""),)
_from_iso = datetime.fromisoformat
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class Fallback(Exception):
    """The fast path met something it does not handle; the checked path decides."""


# What a fast normalizer may raise to give up: its own Fallback, BadPayload (a ValueError)
# from a reused checked helper, and whatever a plain read of an odd value raises.
FALLBACK_ERRORS = (
    Fallback, KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError,
)


# readers: each takes the raw value of a field (``d.get(key)``) ---------------------------
def ident(value: Any) -> str:
    """``Node.ident``: a non-empty id, stripped; numbers accepted as ids."""
    if type(value) is str:
        value = value.strip()
        if value:
            return value
    elif type(value) is int:
        return str(value)
    raise Fallback


def opt_ident(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return ident(value)


def text(value: Any) -> str:
    if type(value) is str:
        return value
    raise Fallback


def opt_text(value: Any, default: str = "") -> str:
    if value is None:
        return default
    if type(value) is str:
        return value
    raise Fallback


def obj(value: Any) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise Fallback


def opt_obj(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is dict:
        return value
    raise Fallback


def opt_array(value: Any) -> list[Any]:
    if value is None:
        return []
    if type(value) is list:
        return value
    raise Fallback


def objects(value: Any) -> list[dict[str, Any]]:
    """``Node.objects``: an optional array whose every element is an object."""
    if value is None:
        return []
    if type(value) is list:
        for item in value:
            if type(item) is not dict:
                raise Fallback
        return value
    raise Fallback


def number(value: Any) -> float:
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return value  # type: ignore[no-any-return]
    raise Fallback


def flag(value: Any) -> bool:
    if value is None:
        return False
    if type(value) is bool:
        return value
    raise Fallback


def iso_ms(value: Any) -> int:
    """``access.iso_to_ms`` inlined (it is on every X and Mastodon payload)."""
    if type(value) is not str:
        raise Fallback
    parsed = _from_iso(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    ms: int = (parsed - _EPOCH) // _ONE_MS
    if 0 <= ms < MAX_MS:
        return ms
    raise Fallback


def epoch_ms(value: Any, unit: str = "auto") -> int:
    return epoch_to_ms(number(value), "", unit)


def time_ms(value: Any) -> int:
    """``Node.time_ms``: an epoch number or an ISO string (the Graph API sends both)."""
    if type(value) is str:
        stripped = value.strip()
        if stripped.isdigit():
            return epoch_to_ms(int(stripped), "", "auto")
        return iso_to_ms(value, "")
    return epoch_ms(value)


# attribution -------------------------------------------------------------------------
def _keys(refs: list[AccountRef]) -> tuple[Key, ...]:
    return tuple((r.client_id, r.account_id) for r in refs)


class Tables:
    """One platform's slice of an :class:`AccountIndex`, keyed by the looked-up name alone.

    Only non-empty entries are kept, so ``name in tables.ids`` means "tracked".
    """

    __slots__ = ("platform", "index", "ids", "handles", "listens", "_arrivals")

    def __init__(self, index: AccountIndex, platform: str) -> None:
        self.platform = platform
        self.index = index
        self.ids = {k: _keys(v) for (p, k), v in index.by_id.items() if p == platform and k and v}
        self.handles = {k: _keys(v) for (p, k), v in index.by_handle.items() if p == platform and v}
        self.listens = {k: _keys(v) for (p, k), v in index.by_listen.items() if p == platform and v}
        self._arrivals: dict[tuple[str, str | None], tuple[Key, ...]] = {}

    def arrival_keys(self, source: str, via_account: str | None) -> tuple[Key, ...]:
        """``Audience.arrival``: the accounts an arrival names by itself, memoised."""
        cached = self._arrivals.get((source, via_account))
        if cached is None:
            index, platform = self.index, self.platform
            refs: list[AccountRef] = []
            if via_account:
                refs += index.accounts(platform, via_account) or index.accounts_by_handle(platform, via_account)
            if source.startswith("listen:"):
                refs += index.listeners(platform, source.removeprefix("listen:"))
            cached = self._arrivals[(source, via_account)] = _keys(refs)
        return cached


def tables_for(index: AccountIndex, platform: str) -> Tables:
    tables: Tables | None = index.fast_tables.get(platform)
    if tables is None:
        tables = index.fast_tables[platform] = Tables(index, platform)
    return tables


class Context:
    """What the payloads of one raw record share: their platform's tables and the arrival."""

    __slots__ = (
        "platform", "ids", "handles", "listens", "source", "received_at", "via_account", "arrival", "_listened",
    )

    def __init__(self, tables: Tables, source: str, received_at: int, via_account: str | None) -> None:
        self.platform = tables.platform
        self.ids = tables.ids
        self.handles = tables.handles
        self.listens = tables.listens
        self.source = source
        self.received_at = received_at
        self.via_account = via_account
        self.arrival = tables.arrival_keys(source, via_account)
        # Listened sources repeat within a record (a search rule, a subreddit): each is
        # canonicalised once. Per record, so it cannot grow without bound.
        self._listened: dict[str, tuple[Key, ...]] = {}

    def audience(
        self, ids: Iterable[str | None], names: Iterable[str | None] = (),
        listened: Iterable[str | None] = (),
    ) -> list[Key]:
        """The sorted, distinct accounts a payload names, its arrival always included: what
        ``Audience(...).ids(*ids).names(*names).listened(*listened).arrival(a).refs()`` gives."""
        found = [*self.arrival]
        table = self.ids  # holds no empty name and no None: "in" also skips those
        for account_id in ids:
            if account_id in table:
                found += table[account_id]
        if names:
            table = self.handles
            for handle in names:
                if handle:
                    handle = handle.lower().lstrip("@")
                    if handle in table:
                        found += table[handle]
        if listened:
            memo = self._listened
            for source in listened:
                if source:
                    keys = memo.get(source)
                    if keys is None:
                        keys = memo[source] = self.listens.get(normalize_listen(source), ())
                    found += keys
        if len(found) > 1:
            first = found[0]
            for key in found:
                if key != first:
                    return sorted(set(found))
            return [first]
        return found

    def tracked_ids(self, account_ids: Collection[str]) -> bool:
        """``any(emit.tracked_id(...) for ...)``: is any of these ids a tracked account's?"""
        return not self.ids.keys().isdisjoint(account_ids)

    def tracked_names(self, handles: Iterable[str | None]) -> bool:
        """``any(emit.tracked_name(...) for ...)``: does any name (any case, ``@`` or not)
        belong to a tracked account?"""
        table = self.handles
        for handle in handles:
            if handle and handle.lower().lstrip("@") in table:
                return True
        return False


# output ------------------------------------------------------------------------------
class Rows:
    """The rows of one payload, as :class:`~streams.normalize.emit.Collector` would make them."""

    __slots__ = ("ctx", "raw_key", "interactions", "changes", "skips")

    def __init__(self, ctx: Context, raw_key: str) -> None:
        self.ctx = ctx
        self.raw_key = raw_key
        self.interactions: list[Row] = []
        self.changes: list[Row] = []
        self.skips: list[str] = []

    def interaction(
        self, keys: list[Key], event_id: str, kind: str, author_id: str, created_at: int, *,
        author_handle: str = "", parent_id: str | None = None, parent_author_id: str | None = None,
        root_id: str | None = None, quoted_id: str | None = None, quoted_author_id: str | None = None,
        recipient_id: str | None = None, mentioned_ids: tuple[str, ...] = (), text: str = "",
        lang: str = "", url: str = "", client_created_at: int | None = None,
    ) -> None:
        """One row per account in ``keys``, columns in ``Interaction`` field order."""
        if not keys:
            self.skips.append(NO_ACCOUNT)
            return
        ctx = self.ctx
        at = ctx.received_at
        client_id, account_id = keys[0]
        row = [
            client_id, account_id, ctx.platform, event_id, kind, author_id, author_handle, parent_id,
            parent_author_id, root_id, quoted_id, quoted_author_id, recipient_id, mentioned_ids, text, lang,
            url, created_at, client_created_at, at, ctx.source, False, None, self.raw_key, at,
        ]
        self.interactions.append(row)
        for client_id, account_id in keys[1:]:
            self.interactions.append([client_id, account_id, *row[2:]])

    def change(
        self, keys: list[Key], event_id: str, change: str, changed_at: int, text: str, author_id: str,
    ) -> None:
        """One row per account, or one unattributed row (see ``Collector.change``)."""
        ctx = self.ctx
        for client_id, account_id in keys or UNATTRIBUTED:
            self.changes.append([
                ctx.platform, event_id, change, changed_at, text, author_id, client_id, account_id,
                ctx.source, self.raw_key, ctx.received_at,
            ])

    def skip(self, reason: str) -> None:
        self.skips.append(reason)

    def skip_reason(self) -> str:
        """Why a payload without rows is skipped (``Collector.outcome``'s choice)."""
        if not self.skips:
            return "payload holds no events"
        return next((r for r in self.skips if r != NO_ACCOUNT), NO_ACCOUNT)

    def outcome(self) -> Outcome:
        if self.interactions or self.changes:
            return Normalized(
                tuple(Interaction(*row) for row in self.interactions),
                tuple(Change(*row) for row in self.changes),
            )
        return Skipped(self.skip_reason())


FastNormalizer = Callable[[Any, Rows], None]


def attempt(fast: FastNormalizer, payload: Any, ctx: Context, raw_key: str) -> Rows | None:
    """The rows of ``payload``, or ``None`` when the checked path must decide."""
    rows = Rows(ctx, raw_key)
    try:
        fast(payload, rows)
    except FALLBACK_ERRORS:
        return None
    return rows
