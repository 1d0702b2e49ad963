"""Conversations (thread, person) and connections (account, person)."""

from __future__ import annotations

from detect_builders import make_client, make_msg

from streams.detect.account_state import AccountState
from streams.detect.conversations import ConversationSummary, Pair, connection
from streams.detect.rows import ConnectionRow, ConversationRow
from streams.interaction import Interaction

MIN = 60_000


def snapshot(msgs: list[Interaction], platform: str = "x"):  # type: ignore[no-untyped-def]
    state = AccountState(make_client(platform=platform), "acct")
    state.apply(msgs)
    return state.snapshot()


def test_an_inbound_mention_answered_once_is_a_conversation_of_two_turns() -> None:
    snap = snapshot(
        [
            make_msg("m", "mention", "p1", mentions=("acct",), root="m", at=0, handle="pee"),
            make_msg("r", "reply", "acct", parent="m", pa="p1", root="m", at=5 * MIN),
        ]
    )
    assert snap.conversations == (ConversationRow("c", "acct", "x", "m", "p1", "pee", 2, "person", 0, 5 * MIN),)
    assert snap.connections == (ConnectionRow("c", "acct", "x", "p1", "pee", 1, 2, 0, 5 * MIN, False),)


def test_a_broadcast_is_not_a_conversation() -> None:
    snap = snapshot(
        [
            make_msg("p", "post", "acct", mentions=("p1", "p2"), root="p", at=0),
            make_msg("l", "reply", "p3", parent="p", pa="acct", root="p", at=1),  # no answer
        ]
    )
    assert snap.conversations == ()
    assert snap.connections == ()


def test_opened_by_the_account_and_turns_count_both_sides() -> None:
    snap = snapshot(
        [
            make_msg("p", "post", "acct", mentions=("p1",), root="p", at=0),
            make_msg("a", "reply", "p1", parent="p", pa="acct", root="p", at=1),
            make_msg("b", "reply", "acct", parent="a", pa="p1", root="p", at=2),
            make_msg("c", "reply", "p2", parent="b", pa="acct", root="p", at=3),  # other person
        ]
    )
    (conv,) = snap.conversations
    assert (conv.person_id, conv.turns, conv.opened_by, conv.started_at, conv.last_at) == (
        "p1",
        3,
        "account",
        0,
        2,
    )


def test_returning_person_has_conversations_in_two_threads() -> None:
    msgs = []
    for i, root in enumerate(("t1", "t2")):
        msgs += [
            make_msg(root, "mention", "p1", mentions=("acct",), root=root, at=i * 100),
            make_msg(root + "r", "reply", "acct", parent=root, pa="p1", root=root, at=i * 100 + 1),
        ]
    snap = snapshot(msgs)
    assert [c.root_id for c in snap.conversations] == ["t1", "t2"]
    assert snap.connections == (ConnectionRow("c", "acct", "x", "p1", "p1", 2, 4, 0, 101, True),)


def test_a_dm_exchange_is_a_conversation() -> None:
    snap = snapshot(
        [
            make_msg("d1", "dm", "p1", root="conv", recipient="acct", at=0),
            make_msg("d2", "dm", "acct", root="conv", recipient="p1", at=9),
        ]
    )
    assert [(c.root_id, c.turns) for c in snap.conversations] == [("conv", 2)]


def test_handle_is_the_persons_latest_inbound_handle() -> None:
    snap = snapshot(
        [
            make_msg("m", "mention", "p1", mentions=("acct",), root="m", at=0, handle="old"),
            make_msg("r", "reply", "acct", parent="m", pa="p1", root="m", at=1),
            make_msg("n", "mention", "p1", mentions=("acct",), root="n", at=5, handle="new"),
        ]
    )
    assert snap.conversations[0].person_handle == "new"
    assert snap.connections[0].person_handle == "new"


class _Turn:
    def __init__(self, id: str, at: int) -> None:
        self.id, self.at = id, at


def test_pair_is_idempotent_and_breaks_time_ties_by_event_id() -> None:
    pair = Pair("p1")
    assert pair.add_inbound(_Turn("b", 5))
    assert not pair.add_inbound(_Turn("b", 5))
    assert pair.summary() is None
    assert pair.add_outbound(_Turn("a", 5)) == pair.inbound  # answers "b" at the same instant
    assert pair.add_outbound(_Turn("a", 5)) is None
    assert pair.summary() == ConversationSummary(2, "account", 5, 5)


def test_pair_knows_which_messages_a_new_answer_answers_first() -> None:
    pair = Pair("p1")
    for eid, at in (("m1", 10), ("m2", 20), ("m3", 30), ("m4", 40)):
        pair.add_inbound(_Turn(eid, at))
    assert [t.id for t in pair.add_outbound(_Turn("a35", 35)) or []] == ["m1", "m2", "m3"]
    assert [t.id for t in pair.add_outbound(_Turn("a15", 15)) or []] == ["m1"]
    assert pair.add_outbound(_Turn("b15", 15)) == ()  # same instant as an existing answer
    assert [t.id for t in pair.add_outbound(_Turn("a50", 50)) or []] == ["m4"]
    assert [pair.first_answer(t) for t in (10, 16, 35, 41, 51)] == [15, 35, 35, 50, None]


def test_connection_roll_up() -> None:
    convs = [ConversationSummary(2, "person", 10, 20), ConversationSummary(3, "account", 5, 15)]
    conn = connection(convs)
    assert conn is not None
    assert (conn.conversations, conn.turns, conn.first_at, conn.last_at, conn.returning) == (
        2,
        5,
        5,
        20,
        True,
    )
    assert (conn.opened_by_account, conn.opened_by_person) == (1, 1)
    assert connection([]) is None
