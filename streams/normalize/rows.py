"""Attribution and row output shared by every platform normalizer.

The rules of /work/shared/README.md ("Which interactions concern an account") live here
once: a platform module only says *which* ids, names and sources its payload names, and
:meth:`Context.audience` turns them into tracked accounts with one dict lookup per name, in
tables derived once per :class:`~streams.normalize.base.AccountIndex`. :class:`Rows` then
stamps the arrival fields (source, version, raw key) the same way for every platform and
writes each row directly as a list in column order (what the interactions topic carries),
so the batch path never builds an ``Interaction``; :meth:`Rows.outcome` builds them for the
callers that want typed records.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from streams.interaction import Change, Interaction
from streams.normalize.base import AccountIndex, AccountRef, Normalized, Outcome, Skipped, normalize_listen

NO_ACCOUNT = "concerns no tracked account"
Key = tuple[str, str]  # (client_id, account_id): what a row names of the account it concerns
Row = list[Any]
UNATTRIBUTED: tuple[Key, ...] = (("", ""),)


def kind_of(*, dm: bool, parent: str | None, quoted: str | None, mentions_tracked: bool) -> str:
    """The README's precedence, relative to nothing but the payload."""
    if dm:
        return "dm"
    if parent:
        return "reply"
    if quoted:
        return "quote"
    if mentions_tracked:
        return "mention"
    return "post"


def unique(items: list[str]) -> tuple[str, ...]:
    """Order-preserving de-duplication (mention lists repeat names)."""
    return tuple(dict.fromkeys(i for i in items if i))


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
        """The sorted, distinct accounts a payload names by id, by handle or by a listened
        source, the accounts its arrival names always included (sorted, so the same payload
        always yields its rows in the same order)."""
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
        """Is any of these ids a tracked account's?"""
        return not self.ids.keys().isdisjoint(account_ids)

    def tracked_names(self, handles: Iterable[str | None]) -> bool:
        """Does any name (any case, ``@`` or not)
        belong to a tracked account?"""
        table = self.handles
        for handle in handles:
            if handle and handle.lower().lstrip("@") in table:
                return True
        return False


# output ------------------------------------------------------------------------------
class Rows:
    """The rows of one payload, in column order, with the reasons it was skipped if it has none."""

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
        """One row per concerned account, or one unattributed row (empty client/account): a
        change must never be lost, since a delete may cancel a pending alert that was
        attributed through a path this payload no longer shows."""
        ctx = self.ctx
        for client_id, account_id in keys or UNATTRIBUTED:
            self.changes.append([
                ctx.platform, event_id, change, changed_at, text, author_id, client_id, account_id,
                ctx.source, self.raw_key, ctx.received_at,
            ])

    def skip(self, reason: str) -> None:
        self.skips.append(reason)

    def skip_reason(self) -> str:
        """Why a payload without rows is skipped: "concerns no tracked account" is the least
        informative reason, so any other comes first."""
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

