"""Bounded detection state gives the same rows as unbounded state (hypothesis).

The random worlds of :mod:`tests.property.test_detect_arrival_order` are applied in random
orders and batches; between batches the state is swept and its idle threads and persons
evicted with a random horizon, keeping at most a random (often zero) number of evicted
thread ids, so that both the remembered and the forgotten paths run. Before each batch the
state is restored the way :class:`streams.detect_io.engine.Detector` restores it, from a
simulated store: the interactions and changes seen so far (``interactions FINAL``,
``changes FINAL``) and the rows emitted so far folded by key (the detection tables
``FINAL``). What the store holds at the end must equal the plain batch recomputation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.detect.account_state import AccountState
from streams.detect.addressing import parent_of
from streams.detect.conversations import ConversationSummary
from streams.detect.identity import canonical_id
from streams.detect.persons import PersonKey, StoredPerson
from streams.detect.recompute import recompute
from streams.detect.rows import Updates
from streams.detect.threads import declared_root
from streams.interaction import SIGNAL_KINDS, Change, Interaction
from tests.property.test_detect_arrival_order import BASE, CALENDAR, CLIENT, MIN, fold, worlds

DAY = 1440 * MIN


def closure(seen: Iterable[Interaction], roots: set[str], ids: set[str]) -> dict[str, Interaction]:
    """What :meth:`DetectStore.thread_closure` returns, over the interactions of one platform."""
    pool = list(seen)
    found: dict[str, Interaction] = {}
    roots_done: set[str] = set()
    ids_done: set[str] = set()
    while True:
        roots, ids = roots - roots_done, ids - ids_done
        if not roots and not ids:
            return found
        dm = {r.removeprefix("dm:") for r in roots if r.startswith("dm:")}
        plain = {r for r in roots if not r.startswith("dm:")}
        keys = plain | ids
        roots_done |= roots
        ids_done |= ids
        roots, ids = set(), set()
        for m in pool:
            hit = (m.root_id in plain or m.event_id in keys or m.parent_id in keys
                   or (m.kind == "dm" and not m.root_id and (m.author_id in dm or m.recipient_id in dm)))
            if not hit or m.event_id in found:
                continue
            found[m.event_id] = m
            ids.add(m.event_id)
            if m.parent_id:
                ids.add(m.parent_id)
            if m.root_id:
                roots.add(m.root_id)
            elif m.kind == "dm":
                roots.update(f"dm:{p}" for p in (m.author_id, m.recipient_id or "") if p)


def stored_persons(keys: set[PersonKey], rows: Updates, seen: Iterable[Interaction]) -> list[StoredPerson]:
    """Evicted persons as the store gives them back: conversation rows, and the handle of
    their latest inbound message (responses rows name the inbound messages)."""
    by_id = {(m.platform, m.event_id): m for m in seen}
    out = []
    for platform, person in sorted(keys):
        convs = {(c.platform, c.root_id): ConversationSummary(c.turns, c.opened_by, c.started_at, c.last_at)
                 for c in rows.conversations if (c.platform, c.person_id) == (platform, person)}
        best: tuple[tuple[int, str], str] | None = None
        for r in rows.responses:
            m = by_id.get((r.platform, r.event_id))
            if (r.platform, r.author_id) == (platform, person) and m is not None and m.author_handle:
                cand = ((m.created_at, m.event_id), m.author_handle)
                best = cand if best is None or cand > best else best
        if convs or best is not None:
            key, handle = best if best is not None else ((0, ""), "")
            out.append(StoredPerson(platform, person, convs, handle, key) if best is not None
                       else StoredPerson(platform, person, convs))
    return out


def restore(state: AccountState, seen: list[Interaction], seen_changes: list[Change], rows: Updates,
            msgs: list[Interaction], chs: Iterable[Change] = ()) -> tuple[list[Interaction], list[Change]]:
    """The engine's restore (``Detector._restore`` then the persons) against the simulated store."""
    book = state.book
    found: list[Interaction] = []
    if book.evicted or book.forgotten:
        roots: dict[str, set[str]] = defaultdict(set)
        ids: dict[str, set[str]] = defaultdict(set)
        for platform, root in state.needs_restore(msgs):
            roots[platform].add(root)
        evicted_platforms = {p for p, _ in book.evicted} | book.forgotten
        for c in chs:  # a delete of a status not in memory wakes its (evicted) thread
            if c.change == "delete" and c.platform in evicted_platforms and book.post(c.platform, c.event_id) is None:
                ids[c.platform].add(c.event_id)
        for m in msgs:
            if m.platform in evicted_platforms and m.kind not in SIGNAL_KINDS:
                parent = parent_of(m)
                if (parent is not None and declared_root(m, book.account(m.platform)) is None
                        and book.post(m.platform, parent) is None):
                    ids[m.platform].add(parent)
        for platform in sorted(set(roots) | set(ids)):
            got = closure((m for m in seen if m.platform == platform), roots[platform], ids[platform])
            found.extend(got.values())
    restored_ids = {(m.platform, m.event_id) for m in found}
    deletes = [c for c in seen_changes if (c.platform, c.event_id) in restored_ids]
    persons = state.persons_to_restore(msgs, woken=found)
    state.restore_persons(stored_persons(persons, rows, seen))
    return found, deletes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), data=st.data())
def test_evicting_threads_and_persons_between_batches_changes_no_stored_row(
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

    max_evicted = data.draw(st.sampled_from([0, 0, 1, 3, 100_000]), label="max evicted ids")
    max_convs = data.draw(st.sampled_from([None, None, 0, 1, 2]), label="settled conversations kept")
    state = AccountState(CLIENT, "acct", calendar=CALENDAR, max_evicted=max_evicted, max_person_convs=max_convs)
    emitted: list[Updates] = []
    seen: list[Interaction] = []
    seen_changes: list[Change] = []
    for msgs, chs in batches:
        stored = fold(emitted)
        found, deletes = restore(state, seen, seen_changes, stored, msgs, chs)
        # As Detector.commit: the woken threads first, as they were (with the alerts the
        # store holds for their messages), then the batch with the deletes of its late
        # statuses that memory may have dropped.
        restored_ids = {(m.platform, m.event_id) for m in found}
        state.restore_alerts({(a.platform, a.event_id): (a.status, a.resolved_at)
                              for a in stored.alerts if (a.platform, a.event_id) in restored_ids})
        fresh = {(m.platform, m.event_id) for m in msgs}
        emitted.append(state.apply([m for m in found if (m.platform, m.event_id) not in fresh], deletes))
        look_up = {(p, e) for p, ids in state.deletes_to_look_up(msgs).items() for e in ids}
        late = [c for c in seen_changes if c.change == "delete" and (c.platform, c.event_id) in look_up]
        emitted.append(state.apply(msgs, [*late, *chs]))
        seen.extend(msgs)
        seen_changes.extend(chs)
        if data.draw(st.booleans()):
            wm = data.draw(st.integers(BASE, watermark), label="sweep")
            emitted.append(state.sweep(wm))
            if data.draw(st.booleans()):
                horizon = data.draw(st.integers(1, 3 * 1440), label="horizon minutes") * MIN
                state.evict_idle(state.watermark, horizon)
    emitted.append(state.sweep(watermark))
    assert fold(emitted) == expected


def test_a_person_evicted_with_their_threads_is_restored_from_the_store() -> None:
    """Two conversations, both evicted with their person; a third one makes them returning
    with three conversations, which only the restored conversation rows can know."""
    def convo(root: str, at: int) -> list[Interaction]:
        from tests.support.interactions import interaction
        return [
            interaction("x", root, "mention", "p1", at, mentioned_ids=("acct",), root_id=root, author_handle="pee"),
            interaction("x", f"{root}r", "reply", "acct", at + MIN, parent_id=root, parent_author_id="p1",
                        root_id=root),
        ]
    state = AccountState(CLIENT, "acct", calendar=CALENDAR, max_evicted=0)
    first = [*convo("a", BASE), *convo("b", BASE + DAY)]
    emitted = [state.apply(first), state.sweep(BASE + 2 * DAY)]
    state.evict_idle(BASE + 10 * DAY, DAY)
    assert state.persons_in_memory() == 0 and state.book.forgotten == {"x"}
    assert state.counters["evicted_persons"] == 1
    late = convo("c", BASE + 10 * DAY)
    assert state.persons_to_restore(late) == {("x", canonical_id("x", "p1"))}
    found, deletes = restore(state, first, [], fold(emitted), late)
    assert found == [] and state.counters["restored_persons"] == 1
    out = state.apply(late)
    (conn,) = out.connections
    assert (conn.conversations, conn.turns, conn.returning, conn.person_handle) == (3, 6, True, "pee")


def test_a_returning_person_past_the_bound_folds_and_is_restored_only_when_the_fold_changes() -> None:
    """p1 talked in threads a and b long ago and in d lately, so d keeps them in memory. With
    no settled conversation kept, a and b are folded into p1's running roll-up at eviction:
    the person is partial. A new conversation c counts a and b from the roll-up, with no
    store read; only a batch that wakes a or b, or gives p1 a new handle (every
    conversation row carries it), restores them first."""
    def convo(root: str, at: int, handle: str = "pee") -> list[Interaction]:
        from tests.support.interactions import interaction
        return [
            interaction("x", root, "mention", "p1", at, mentioned_ids=("acct",), root_id=root, author_handle=handle),
            interaction("x", f"{root}r", "reply", "acct", at + MIN, parent_id=root, parent_author_id="p1",
                        root_id=root),
        ]
    state = AccountState(CLIENT, "acct", calendar=CALENDAR, max_evicted=0, max_person_convs=0)
    first = [*convo("a", BASE), *convo("b", BASE + DAY), *convo("d", BASE + 10 * DAY - 60 * MIN)]
    emitted = [state.apply(first), state.sweep(BASE + 10 * DAY)]
    state.evict_idle(BASE + 10 * DAY, DAY)
    person = ("x", canonical_id("x", "p1"))
    assert state.persons_in_memory() == 1 and state.partial_persons() == 1
    assert state.counters["folded_convs"] == 2 and state.counters["evicted_persons"] == 0
    assert state.conversations_in_memory() == 1  # d; a and b live on as the roll-up only
    assert state.persons_to_restore([]) == set()  # a batch of changes only: nothing folded can change

    late = convo("c", BASE + 10 * DAY + MIN)
    assert state.persons_to_restore(late) == set()
    found, _ = restore(state, first, [], fold(emitted), late)
    assert found == [] and state.counters["restored_persons"] == 0
    out = state.apply(late)
    (conn,) = out.connections
    assert (conn.conversations, conn.turns, conn.returning, conn.person_handle) == (4, 8, True, "pee")
    assert (conn.first_at, conn.last_at) == (BASE, BASE + 10 * DAY + 2 * MIN)

    renamed = convo("e", BASE + 10 * DAY + 5 * MIN, handle="p-one")
    assert state.persons_to_restore(renamed) == {person}
    woken = [m for m in first if m.root_id == "a"]
    answer = [*convo("a", BASE + 10 * DAY + 9 * MIN)][1:]
    assert state.persons_to_restore(answer, woken=woken) == {person}
    restore(state, [*first, *late], [], fold([*emitted, out]), renamed)
    assert state.partial_persons() == 0 and state.counters["restored_persons"] == 1
    (conn,) = state.apply(renamed).connections
    assert (conn.conversations, conn.turns, conn.person_handle) == (5, 10, "p-one")

    unbounded = AccountState(CLIENT, "acct", calendar=CALENDAR, max_evicted=0)
    unbounded.apply(first)
    unbounded.evict_idle(BASE + 10 * DAY, DAY)
    assert unbounded.partial_persons() == 0 and unbounded.counters["folded_convs"] == 0
