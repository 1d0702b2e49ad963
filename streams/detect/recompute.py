"""Reference recomputation: every detection metric of one account, from scratch.

Deliberately plain: whole-list passes, dictionaries, recursion through parents; no
incremental state, no caching beyond memo tables. It shares with the incremental code only
the definitions that *are* the specification (the addressing rules, business time, the
status functions and the row types), so the tests can hold
:class:`~streams.detect.account_state.AccountState` to it for every arrival order.

The result is an :class:`~streams.detect.rows.Updates` holding every row, sorted by key,
as :meth:`AccountState.snapshot` returns them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from streams.clients import Client
from streams.detect.addressing import (
    addressees,
    is_inbound,
    payload_addressing,
    persons_addressed_by_account,
)
from streams.detect.business_time import BusinessCalendar
from streams.detect.identity import canonical_id, is_person
from streams.detect.responses import NEVER, alert_state, response_status
from streams.detect.rows import (
    AlertRow,
    ConnectionRow,
    ConversationRow,
    ResponseRow,
    ThreadRow,
    Updates,
)
from streams.interaction import SIGNAL_KINDS, Change, Interaction

Key = tuple[str, str]  # (platform, event id)


def _parent(m: Interaction) -> str | None:
    if m.kind == "dm" or not m.parent_id or m.parent_id == m.event_id:
        return None
    return m.parent_id


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def recompute(
    client: Client,
    account_id: str,
    interactions: Iterable[Interaction],
    changes: Iterable[Change] = (),
    watermark_ms: int = NEVER,
    calendar: BusinessCalendar | None = None,
) -> Updates:
    """All rows of ``account_id`` given these interactions, changes and sweep watermark."""
    cal = calendar or BusinessCalendar.from_client(client)
    msgs: dict[Key, Interaction] = {}
    for m in interactions:
        if m.client_id == client.id and m.account_id == account_id and m.kind not in SIGNAL_KINDS:
            msgs.setdefault((m.platform, m.event_id), m)

    def account(platform: str) -> str:
        return canonical_id(platform, account_id)

    def author(k: Key) -> str:
        return canonical_id(k[0], msgs[k].author_id)

    # Roots: what the payload says, else the top of the chain through known posts.
    def declared(m: Interaction) -> str | None:
        if m.root_id:
            return m.root_id
        if m.kind == "dm":
            a = canonical_id(m.platform, m.author_id)
            other = canonical_id(m.platform, m.recipient_id) if a == account(m.platform) else a
            return "dm:" + other
        return m.event_id if _parent(m) is None else None

    # Loops rather than recursion so that reply chains of any length are fine. Cycles
    # (impossible on the platforms, so only in bad data) are cut to keep this finite; the
    # incremental code cuts them too but, having no true answer to agree on, elsewhere.
    root: dict[Key, str] = {}

    def root_of(k: Key) -> str:
        chain: list[Key] = []
        while k not in root:
            r = declared(msgs[k])
            if r is not None:
                root[k] = r
                break
            p = (k[0], _parent(msgs[k]) or "")
            if p not in msgs or p in chain:  # missing parent (or a cycle in bad data)
                root[k] = p[1]
                break
            chain.append(k)
            k = p
        for link in chain:
            root[link] = root[k]
        return root[k]

    # Depth: 0 for the root, 1 under it, parent's + 1, 2 under a missing parent.
    depth: dict[Key, int] = {}

    def depth_of(k: Key) -> int:
        chain: list[Key] = []
        while k not in depth:
            r, p = root_of(k), _parent(msgs[k])
            if k[1] == r:
                depth[k] = 0
            elif p is None or p == r:
                depth[k] = 1
            elif (k[0], p) in msgs and root_of((k[0], p)) == r and (k[0], p) not in chain:
                chain.append(k)
                k = (k[0], p)
            else:
                depth[k] = 2
        for i, link in enumerate(reversed(chain), start=1):
            depth[link] = depth[k] + i
        return depth[chain[0]] if chain else depth[k]

    by_thread: dict[Key, list[Key]] = defaultdict(list)
    for k in msgs:
        by_thread[(k[0], root_of(k))].append(k)
    threads = []
    for tid in sorted(by_thread):
        ks = by_thread[tid]
        threads.append(
            ThreadRow(
                client.id,
                account_id,
                tid[0],
                tid[1],
                posts=len(ks),
                depth=max(depth_of(k) for k in ks),
                participants=len({author(k) for k in ks if is_person(author(k))}),
                account_posts=sum(1 for k in ks if author(k) == account(k[0])),
                first_at=min(msgs[k].created_at for k in ks),
                last_at=max(msgs[k].created_at for k in ks),
            )
        )

    # Addressing, then the (thread, person) exchanges.
    inbound: dict[tuple[Key, str], list[Key]] = defaultdict(list)
    outbound: dict[tuple[Key, str], list[Key]] = defaultdict(list)
    for k, m in msgs.items():
        said = payload_addressing(m)
        p = _parent(m)
        parent_author = author((k[0], p)) if p is not None and (k[0], p) in msgs else None
        addressed = addressees(said.author, said.named, said.parent_author, parent_author)
        tid = (k[0], root_of(k))
        acct = account(k[0])
        if is_inbound(said.author, addressed, acct):
            inbound[(tid, said.author)].append(k)
        for person in persons_addressed_by_account(said.author, addressed, acct):
            outbound[(tid, person)].append(k)

    handles: dict[Key, tuple[tuple[int, str], str]] = {}
    for (tid, person), ks in inbound.items():
        for k in ks:
            h = msgs[k].author_handle
            order = (msgs[k].created_at, k[1])
            if h and ((tid[0], person) not in handles or handles[(tid[0], person)][0] < order):
                handles[(tid[0], person)] = (order, h)

    def handle(platform: str, person: str) -> str:
        return handles[(platform, person)][1] if (platform, person) in handles else ""

    conversations = []
    per_person: dict[Key, list[ConversationRow]] = defaultdict(list)
    for tid, person in sorted(set(inbound) & set(outbound)):
        turns = [(msgs[k].created_at, k[1], "person") for k in inbound[(tid, person)]]
        turns += [(msgs[k].created_at, k[1], "account") for k in outbound[(tid, person)]]
        turns.sort()
        row = ConversationRow(
            client.id,
            account_id,
            tid[0],
            tid[1],
            person,
            handle(tid[0], person),
            turns=len(turns),
            opened_by=turns[0][2],
            started_at=turns[0][0],
            last_at=turns[-1][0],
        )
        conversations.append(row)
        per_person[(tid[0], person)].append(row)
    connections = []
    for (platform, person), rows in sorted(per_person.items()):
        connections.append(
            ConnectionRow(
                client.id,
                account_id,
                platform,
                person,
                handle(platform, person),
                conversations=len(rows),
                turns=sum(r.turns for r in rows),
                first_at=min(r.started_at for r in rows),
                last_at=max(r.last_at for r in rows),
                returning=len({r.root_id for r in rows}) >= 2,
            )
        )

    # First responses, statuses and alerts.
    deleted: dict[Key, int] = {}
    for ch in changes:
        if ch.change == "delete":
            k = (ch.platform, ch.event_id)
            deleted[k] = min(deleted.get(k, ch.changed_at), ch.changed_at)
    responses = []
    alerts = []
    for (tid, person), ks in inbound.items():
        answer_times = [msgs[a].created_at for a in outbound.get((tid, person), [])]
        for k in ks:
            m = msgs[k]
            t = m.created_at
            due = cal.add_business(t, client.sla_minutes)
            later = [a for a in answer_times if a >= t]
            answered = min(later) if later else None
            d = deleted.get(k)
            responses.append(
                ResponseRow(
                    client.id,
                    account_id,
                    k[0],
                    k[1],
                    person,
                    t,
                    due,
                    answered,
                    None if answered is None else (answered - t) / 1000,
                    None if answered is None else cal.business_seconds_between(t, answered),
                    response_status(due, answered, d, watermark_ms),
                )
            )
            alert = alert_state(due, answered, d, watermark_ms)
            if alert is not None:
                who = f"@{m.author_handle}" if m.author_handle else person
                text = (
                    f"{who} got no first response within {client.sla_minutes} business minutes "
                    f"({k[0]} {k[1]}, received {_iso(t)}, due {_iso(due)})"
                )
                alerts.append(AlertRow(client.id, account_id, k[0], k[1], due, due, alert[1], alert[0], text))
    responses.sort(key=lambda r: r.key)
    alerts.sort(key=lambda r: r.key)
    return Updates(tuple(threads), tuple(conversations), tuple(connections), tuple(responses), tuple(alerts))
