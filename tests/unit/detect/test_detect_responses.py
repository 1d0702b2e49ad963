"""First responses, SLA status, deletes, sweeps and alerts."""

from __future__ import annotations

from detect_builders import WEEKDAYS_9_17, local_ms, make_client, make_delete, make_msg

from streams.detect.account_state import AccountState
from streams.detect.responses import (
    ALERT_BREACHED,
    ALERT_CANCELLED,
    ALERT_RESOLVED,
    ANSWERED,
    BREACHED,
    CANCELLED,
    OPEN,
    alert_state,
    first_answer,
    response_status,
)
from streams.detect.rows import ResponseRow
from streams.interaction import Interaction

MIN = 60_000
FRI_1645 = local_ms("UTC", 2024, 3, 8, 16, 45)
MON_0915 = local_ms("UTC", 2024, 3, 11, 9, 15)


def state(sla: int = 30) -> AccountState:
    return AccountState(make_client(hours=WEEKDAYS_9_17, sla=sla), "acct")


def inbound(eid: str, at: int, root: str = "t", author: str = "p1") -> Interaction:
    return make_msg(eid, "mention", author, mentions=("acct",), root=root, at=at)


def answer(eid: str, at: int, to: str = "p1", root: str = "t", parent: str = "m1") -> Interaction:
    return make_msg(eid, "reply", "acct", parent=parent, pa=to, root=root, at=at)


def responses(s: AccountState) -> dict[str, ResponseRow]:
    return {r.event_id: r for r in s.snapshot().responses}


def test_pure_status_and_alert_rules() -> None:
    assert first_answer([5, 10, 20], 6) == 10
    assert first_answer([5, 10, 20], 10) == 10
    assert first_answer([5], 6) is None
    assert response_status(100, None, None, 99) == OPEN
    assert response_status(100, None, None, 100) == BREACHED
    assert response_status(100, 150, None, 0) == ANSWERED
    assert response_status(100, None, 50, 200) == CANCELLED
    assert response_status(100, 150, 120, 200) == CANCELLED
    assert alert_state(100, None, None, 99) is None
    assert alert_state(100, None, None, 100) == (ALERT_BREACHED, None)
    assert alert_state(100, 100, None, 200) is None  # answered by its deadline
    assert alert_state(100, 150, None, 200) == (ALERT_RESOLVED, 150)
    assert alert_state(100, None, 90, 200) is None  # deleted before the deadline
    assert alert_state(100, None, 130, 200) == (ALERT_CANCELLED, 130)


def test_due_in_business_time_and_response_time_in_wall_and_business_time() -> None:
    s = state()
    s.apply([inbound("m1", FRI_1645), answer("a", MON_0915 - 5 * MIN)])
    row = responses(s)["m1"]
    assert row.due_at == MON_0915
    assert row.answered_at == MON_0915 - 5 * MIN
    assert row.response_s == (MON_0915 - 5 * MIN - FRI_1645) / 1000
    assert row.response_business_s == 25 * 60
    assert row.status == ANSWERED and not row.late


def test_answering_a_follow_up_answers_the_earlier_messages() -> None:
    s = state()
    s.apply([inbound("m1", FRI_1645), inbound("m2", FRI_1645 + 10 * MIN), answer("a", MON_0915 + MIN)])
    rows = responses(s)
    assert rows["m1"].answered_at == rows["m2"].answered_at == MON_0915 + MIN
    assert rows["m1"].late and not rows["m2"].late  # m1 was due Monday 09:15, m2 09:25


def test_an_earlier_account_message_or_another_thread_is_no_answer() -> None:
    s = state()
    s.apply(
        [
            answer("before", FRI_1645 - MIN, parent="x"),
            answer("elsewhere", FRI_1645 + MIN, root="other"),
            answer("to-someone-else", FRI_1645 + MIN, to="p2"),
            inbound("m1", FRI_1645),
        ]
    )
    assert responses(s)["m1"].answered_at is None


def test_sweep_opens_alert_at_the_deadline_and_a_later_answer_resolves_it() -> None:
    s = state()
    s.apply([inbound("m1", FRI_1645)])
    assert responses(s)["m1"].status == OPEN
    assert not s.sweep(MON_0915 - 1)
    swept = s.sweep(MON_0915)
    assert [r.status for r in swept.responses] == [BREACHED]
    (alert,) = swept.alerts
    assert (alert.opened_at, alert.due_at, alert.resolved_at, alert.status) == (
        MON_0915,
        MON_0915,
        None,
        ALERT_BREACHED,
    )
    assert "@p1" in alert.text and "m1" in alert.text
    assert not s.sweep(MON_0915 + MIN)  # nothing new
    late = s.apply([answer("a", MON_0915 + 7 * MIN)])
    assert [(r.status, r.late) for r in late.responses] == [(ANSWERED, True)]
    assert [(a.status, a.resolved_at) for a in late.alerts] == [(ALERT_RESOLVED, MON_0915 + 7 * MIN)]


def test_replay_closes_deadlines_up_to_the_watermark_only() -> None:
    s = state()
    s.apply([inbound("m1", FRI_1645), inbound("m2", MON_0915)])
    s.sweep(MON_0915 + MIN)  # the last event time of the replay
    rows = responses(s)
    assert (rows["m1"].status, rows["m2"].status) == (BREACHED, OPEN)


def test_an_answer_that_arrives_after_the_sweep_withdraws_a_wrong_alert() -> None:
    s = state()
    s.apply([inbound("m1", FRI_1645)])
    assert s.sweep(MON_0915 + MIN).alerts
    late_arrival = s.apply([answer("a", MON_0915 - MIN)])  # answered in time, delivered late
    assert [a.status for a in late_arrival.alerts] == ["withdrawn"]
    assert responses(s)["m1"].status == ANSWERED
    assert s.snapshot().alerts == ()


def test_delete_before_the_deadline_cancels_without_alert() -> None:
    s = state()
    s.apply([inbound("m1", FRI_1645)], [make_delete("m1", FRI_1645 + 5 * MIN)])
    s.sweep(MON_0915 + 60 * MIN)
    assert responses(s)["m1"].status == CANCELLED
    assert s.snapshot().alerts == ()


def test_delete_arriving_before_the_message_still_applies() -> None:
    s = state()
    s.apply([], [make_delete("m1", FRI_1645 + 5 * MIN)])
    s.apply([inbound("m1", FRI_1645)])
    assert responses(s)["m1"].status == CANCELLED


def test_delete_after_the_breach_cancels_the_open_alert() -> None:
    s = state()
    s.apply([inbound("m1", FRI_1645)])
    s.sweep(MON_0915 + MIN)
    upd = s.apply([], [make_delete("m1", MON_0915 + 2 * MIN)])
    assert [r.status for r in upd.responses] == [CANCELLED]
    assert [(a.status, a.resolved_at) for a in upd.alerts] == [(ALERT_CANCELLED, MON_0915 + 2 * MIN)]


def test_deleted_posts_still_count_everywhere_else() -> None:
    s = state()
    s.apply(
        [inbound("m1", FRI_1645), answer("a", FRI_1645 + MIN)],
        [make_delete("a", FRI_1645 + 2 * MIN)],
    )
    snap = s.snapshot()
    assert snap.threads[0].posts == 2
    assert snap.conversations[0].turns == 2
    assert responses(s)["m1"].status == ANSWERED
