"""Arrival order never changes detection results (hypothesis).

Small random worlds (an account, a few persons, top posts, replies to known and never
delivered posts, mentions, DMs, quotes, unknown authors, duplicates, deletes) are fed to
:class:`AccountState` in random orders and batches with random intermediate sweeps. After
a final sweep, three things must equal the plain recomputation of :mod:`batch`:
the state's snapshot, the rows it emitted along the way folded by key (what the store
would hold after dedup), a state rebuilt from the stored interactions, and the state after
evicting its idle threads and restoring them from the stored interactions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.clients import Client, TrackedAccount
from streams.detect.account_state import AccountState
from streams.detect.business_time import BusinessCalendar
from streams.detect.recompute import recompute
from streams.detect.responses import ALERT_WITHDRAWN
from streams.detect.rows import Updates
from streams.interaction import Change, Interaction
from tests.support.interactions import interaction

MIN = 60_000
NY = ZoneInfo("America/New_York")
# Friday noon before the US spring-forward weekend: windows of a few days cross it.
BASE = int(datetime(2024, 3, 8, 12, 0, tzinfo=NY).timestamp() * 1000)
PLATFORMS = ("x", "mastodon", "bluesky", "reddit", "facebook")
CLIENT = Client(
    id="c",
    timezone="America/New_York",
    sla_minutes=60,
    hours={"mon": "09:00-12:00,13:00-17:00", "tue": "09:00-17:00", "fri": "09:00-17:00", "sat": "10:00-24:00"},
    accounts=(TrackedAccount(platform="x", account_id="acct"),),
)
CALENDAR = BusinessCalendar.from_client(CLIENT)




@st.composite
def worlds(draw: st.DrawFn) -> tuple[str, list[Interaction], list[Change], int]:
    """A platform, its interactions (incl. duplicates), deletes, and the final watermark."""
    platform = draw(st.sampled_from(PLATFORMS))

    def spelled(who: str) -> str:  # Reddit usernames arrive in any case
        return who.upper() if platform == "reddit" and who and draw(st.booleans()) else who

    n = draw(st.integers(1, 12))
    authors: list[str] = []
    times: list[int] = []
    tops: list[int] = []  # index of each node's top-level ancestor (or itself)
    msgs: list[Interaction] = []
    for i in range(n):
        shape = draw(st.sampled_from(["top", "top", "reply", "reply", "reply", "reply", "dm"]))
        if i == 0:
            shape = "top"
        # persons and the account take turns far more often than chance would have it
        author = draw(st.sampled_from(["acct", "acct", "p1", "p1", "p2", ""]))
        authors.append(author)
        parent = draw(st.integers(max(0, i - 3), i - 1)) if shape == "reply" else -1
        if parent >= 0 and draw(st.integers(0, 3)):
            at = times[parent] + draw(st.integers(0, 8 * 60)) * MIN  # mostly after the parent
        else:
            at = BASE + draw(st.integers(0, 4 * 24 * 60)) * MIN
        times.append(at)
        handle = draw(st.sampled_from(["", f"h{i}", "same"]))
        mentions = tuple(draw(st.lists(st.sampled_from(["acct", "p1", "p2"]), max_size=2, unique=True)))
        eid = f"e{i}"
        if shape == "reply":
            tops.append(tops[parent])
            kind = "reply"
            fields: dict[str, object] = dict(
                parent_id=f"e{parent}",
                parent_author_id=spelled(authors[parent]) if draw(st.booleans()) else None,
                root_id=None if platform == "mastodon" else f"e{tops[parent]}",
            )
        elif shape == "dm":
            tops.append(i)
            kind = "dm"
            other = draw(st.sampled_from(["p1", "p2"]))
            fields = dict(
                recipient_id=other if author == "acct" else "acct",
                root_id=f"conv-{other if author == 'acct' else author}" if draw(st.booleans()) else None,
            )
        else:
            tops.append(i)
            quoted = draw(st.sampled_from([None, "acct", "p1"]))
            kind = "quote" if quoted else ("mention" if "acct" in mentions else "post")
            fields = dict(
                quoted_id="q" if quoted else None,
                quoted_author_id=quoted,
                root_id=eid if draw(st.booleans()) and platform != "mastodon" else None,
            )
        msgs.append(
            interaction(
                platform, eid, kind, spelled(author), at, author_handle=handle, mentioned_ids=mentions, **fields
            )
        )
    delivered = [m for m in msgs if draw(st.integers(0, 9)) > 0]  # some posts never arrive
    duplicates = draw(st.lists(st.sampled_from(delivered), max_size=3)) if delivered else []
    deletes = [
        Change(
            platform,
            m.event_id,
            "delete",
            m.created_at + draw(st.integers(0, 3 * 24 * 60)) * MIN,
            "",
            "",
            "c",
            "acct",
            "stream",
            "",
            1,
        )
        for m in msgs
        if draw(st.integers(0, 5)) == 0
    ]
    watermark = BASE + draw(st.integers(0, 6 * 24 * 60)) * MIN
    return platform, delivered + duplicates, deletes, watermark


def fold(updates: list[Updates]) -> Updates:
    """What a store keyed by natural ids holds after the emitted rows (last write wins)."""
    tables: list[dict[Any, Any]] = [{}, {}, {}, {}, {}]
    for upd in updates:
        groups: tuple[tuple[Any, ...], ...] = (
            upd.threads,
            upd.conversations,
            upd.connections,
            upd.responses,
            upd.alerts,
        )
        for table, rows in zip(tables, groups, strict=True):
            for row in rows:
                gone = getattr(row, "retracted", False) or getattr(row, "status", "") == ALERT_WITHDRAWN
                if gone:
                    table.pop(row.key, None)
                else:
                    table[row.key] = row
    out = [tuple(table[k] for k in sorted(table)) for table in tables]
    return Updates(*out)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), data=st.data())
def test_every_arrival_order_matches_the_batch_recomputation(
    world: tuple[str, list[Interaction], list[Change], int], data: st.DataObject
) -> None:
    _, items, changes, watermark = world
    expected = recompute(CLIENT, "acct", items, changes, watermark, calendar=CALENDAR)

    order = data.draw(st.permutations(items), label="arrival order")
    batches: list[tuple[list[Interaction], list[Change]]] = [([], [])]
    for m in order:
        if data.draw(st.integers(0, 2)) == 0:
            batches.append(([], []))
        batches[-1][0].append(m)
    for ch in changes:
        batches[data.draw(st.integers(0, len(batches) - 1))][1].append(ch)

    state = AccountState(CLIENT, "acct", calendar=CALENDAR)
    emitted: list[Updates] = []
    for msgs, chs in batches:
        emitted.append(state.apply(msgs, chs))
        if data.draw(st.booleans()):
            emitted.append(state.sweep(data.draw(st.integers(BASE, watermark), label="sweep")))
    emitted.append(state.sweep(watermark))

    assert state.snapshot() == expected
    assert fold(emitted) == expected
    rebuilt = AccountState.rebuild(CLIENT, "acct", items, changes, watermark, calendar=CALENDAR)
    assert rebuilt.snapshot() == expected

    # Evict every idle thread, then wake them all: restoring re-applies what the store holds.
    state.evict_idle(now_ms=BASE + 30 * 86_400_000, horizon_ms=86_400_000)
    state.apply(items, changes)
    assert state.snapshot() == expected
