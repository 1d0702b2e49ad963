"""The canonical records: :class:`Interaction` and :class:`Change`.

Defined by ``schemas/interaction.json``; a guard test checks that these dataclasses, the
ClickHouse DDL and the sink's column lists agree with it, so the schema lives in one
place. Pure: no Kafka, no ClickHouse, no faust; times are UTC epoch milliseconds so that
the records are cheap to build, compare and serialise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from streams.resources import interaction_schema

KINDS: tuple[str, ...] = ("post", "reply", "quote", "mention", "repost", "like", "follow", "dm")
SIGNAL_KINDS: frozenset[str] = frozenset({"like", "repost", "follow"})
SCHEMA_PATH = interaction_schema()  # the checkout's schemas/ or the wheel's copy


@dataclass(frozen=True, slots=True)
class Interaction:
    """One normalized platform event as it concerns one tracked account."""

    client_id: str
    account_id: str
    platform: str
    event_id: str
    kind: str
    author_id: str
    author_handle: str
    parent_id: str | None
    parent_author_id: str | None
    root_id: str | None
    quoted_id: str | None
    quoted_author_id: str | None
    recipient_id: str | None
    mentioned_ids: tuple[str, ...]
    text: str
    lang: str
    url: str
    created_at: int
    client_created_at: int | None
    ingested_at: int
    source: str
    deleted: bool
    edited_at: int | None
    raw_key: str
    version: int

    @property
    def key(self) -> str:
        """The Kafka key: all state of one tracked account lives in one partition."""
        return f"{self.client_id}:{self.account_id}"



@dataclass(frozen=True, slots=True)
class Change:
    """An edit or delete of an earlier event; never overwrites the original row."""

    platform: str
    event_id: str
    change: str
    changed_at: int
    text: str
    author_id: str
    client_id: str
    account_id: str
    source: str
    raw_key: str
    version: int

    @property
    def key(self) -> str:
        return f"{self.client_id}:{self.account_id}"


INTERACTION_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Interaction))
CHANGE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Change))


@cache
def schema() -> dict[str, Any]:
    """The parsed ``schemas/interaction.json``."""
    with SCHEMA_PATH.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data
