"""Attribution and record building shared by every platform normalizer.

The rules of /work/shared/README.md ("Which interactions concern an account") live here
once: a platform module only says *which* ids, names and sources its payload names, and
:class:`Audience` turns them into tracked accounts. :class:`Collector` then stamps the
arrival fields (source, version, raw key) the same way for every platform, so a replayed
payload yields byte-identical rows whatever platform it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.interaction import Change, Interaction
from streams.normalize.base import (
    AccountIndex,
    AccountRef,
    Arrival,
    Normalized,
    Outcome,
    Skipped,
)

NO_ACCOUNT = "concerns no tracked account"


@dataclass(slots=True)
class Draft:
    """The payload-derived part of an :class:`Interaction` (everything but attribution)."""

    platform: str
    event_id: str
    kind: str
    author_id: str
    created_at: int
    author_handle: str = ""
    parent_id: str | None = None
    parent_author_id: str | None = None
    root_id: str | None = None
    quoted_id: str | None = None
    quoted_author_id: str | None = None
    recipient_id: str | None = None
    mentioned_ids: tuple[str, ...] = ()
    text: str = ""
    lang: str = ""
    url: str = ""
    client_created_at: int | None = None


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


class Audience:
    """The tracked accounts one payload concerns, collected from what it names."""

    __slots__ = ("platform", "index", "_refs")

    def __init__(self, platform: str, index: AccountIndex) -> None:
        self.platform = platform
        self.index = index
        self._refs: dict[tuple[str, str], AccountRef] = {}

    def _add(self, refs: list[AccountRef]) -> None:
        for ref in refs:
            self._refs.setdefault((ref.client_id, ref.account_id), ref)

    def ids(self, *account_ids: str | None) -> Audience:
        for account_id in account_ids:
            self._add(self.index.accounts(self.platform, account_id))
        return self

    def names(self, *handles: str | None) -> Audience:
        for handle in handles:
            self._add(self.index.accounts_by_handle(self.platform, handle))
        return self

    def listened(self, *sources: str | None) -> Audience:
        for source in sources:
            self._add(self.index.listeners(self.platform, source))
        return self

    def arrival(self, arrival: Arrival) -> Audience:
        """The account's own sources: an inbox/webhook/notification stream (``via_account``)
        or a listened source named by the delivery itself (``listen:<source>``)."""
        if arrival.via_account:
            refs = self.index.accounts(self.platform, arrival.via_account)
            self._add(refs or self.index.accounts_by_handle(self.platform, arrival.via_account))
        if arrival.source.startswith("listen:"):
            self.listened(arrival.source.removeprefix("listen:"))
        return self

    def refs(self) -> list[AccountRef]:
        """Sorted, so the same payload always yields its rows in the same order."""
        return [self._refs[k] for k in sorted(self._refs)]

    def __bool__(self) -> bool:
        return bool(self._refs)


def tracked_id(index: AccountIndex, platform: str, account_id: str | None) -> bool:
    return bool(index.accounts(platform, account_id))


def tracked_name(index: AccountIndex, platform: str, handle: str | None) -> bool:
    return bool(index.accounts_by_handle(platform, handle))


@dataclass(slots=True)
class Collector:
    """Accumulates the rows of one payload; ends as one :data:`Outcome`."""

    arrival: Arrival
    interactions: list[Interaction] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)

    def interaction(self, draft: Draft, audience: Audience) -> None:
        refs = audience.refs()
        if not refs:
            self.skips.append(NO_ACCOUNT)
            return
        a = self.arrival
        for ref in refs:
            self.interactions.append(
                Interaction(
                    client_id=ref.client_id,
                    account_id=ref.account_id,
                    platform=draft.platform,
                    event_id=draft.event_id,
                    kind=draft.kind,
                    author_id=draft.author_id,
                    author_handle=draft.author_handle,
                    parent_id=draft.parent_id,
                    parent_author_id=draft.parent_author_id,
                    root_id=draft.root_id,
                    quoted_id=draft.quoted_id,
                    quoted_author_id=draft.quoted_author_id,
                    recipient_id=draft.recipient_id,
                    mentioned_ids=draft.mentioned_ids,
                    text=draft.text,
                    lang=draft.lang,
                    url=draft.url,
                    created_at=draft.created_at,
                    client_created_at=draft.client_created_at,
                    ingested_at=a.received_at,
                    source=a.source,
                    deleted=False,
                    edited_at=None,
                    raw_key=a.raw_key,
                    version=a.received_at,
                )
            )

    def change(
        self,
        *,
        platform: str,
        event_id: str,
        change: str,
        changed_at: int,
        text: str,
        author_id: str,
        audience: Audience,
    ) -> None:
        """One row per concerned account, or one unattributed row (empty client/account):
        a change must never be lost, since a delete may cancel a pending alert that was
        attributed through a path this payload no longer shows."""
        a = self.arrival
        targets = [(r.client_id, r.account_id) for r in audience.refs()] or [("", "")]
        for client_id, account_id in targets:
            self.changes.append(
                Change(
                    platform=platform,
                    event_id=event_id,
                    change=change,
                    changed_at=changed_at,
                    text=text,
                    author_id=author_id,
                    client_id=client_id,
                    account_id=account_id,
                    source=a.source,
                    raw_key=a.raw_key,
                    version=a.received_at,
                )
            )

    def skip(self, reason: str) -> None:
        self.skips.append(reason)

    def outcome(self) -> Outcome:
        if self.interactions or self.changes:
            return Normalized(tuple(self.interactions), tuple(self.changes))
        if not self.skips:
            return Skipped("payload holds no events")
        # "concerns no tracked account" is the least informative reason; prefer another.
        reasons = [r for r in self.skips if r != NO_ACCOUNT] or self.skips
        return Skipped(reasons[0])
