"""One builder of test interactions: every field defaulted, the ones a test cares about named."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS, Change, Interaction
from streams.simulator.traffic import SimEvent


def interaction(platform: str, eid: str, kind: str, author: str, at: int, **fields: object) -> Interaction:
    """An interaction of client ``c``/account ``acct`` at event time ``at``; ``fields`` override."""
    base: dict[str, object] = dict(
        client_id="c", account_id="acct", platform=platform, event_id=eid, kind=kind, author_id=author,
        author_handle="", parent_id=None, parent_author_id=None, root_id=None, quoted_id=None,
        quoted_author_id=None, recipient_id=None, mentioned_ids=(), text="", lang="", url="",
        created_at=at, client_created_at=None, ingested_at=at, source="stream", deleted=False,
        edited_at=None, raw_key="", version=1,
    )
    base.update(fields)
    return Interaction(**base)  # type: ignore[arg-type]


def interaction_row(i: Interaction) -> list[Any]:
    """The interaction as the sink's envelope and the store carry it: a list in column order."""
    return [getattr(i, name) for name in INTERACTION_COLUMNS]


def change_row(c: Change) -> list[Any]:
    """The change as a list in column order."""
    return [getattr(c, name) for name in CHANGE_COLUMNS]


def arrival_payloads(events: Iterable[SimEvent]) -> list[tuple[str, bytes, str, str, int]]:
    """``(platform, body, source, via account, received at)`` per simulated event.

    Arrival times are part of the input (a Mastodon delete carries no time of its own, and the
    arrival orders two versions of one event): tests that compare two runs give every payload
    the same time in both, a few seconds after it happened, never two in the same millisecond.
    """
    return [(ev.platform, orjson.dumps(ev.payload), ev.source, ev.via_account or "", ev.event_ms + 5000 + i)
            for i, ev in enumerate(events)]
