"""The interactions envelope codec: both versions read alike, every refusal names its reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.agents.envelopes import split_rows
from streams.contracts.envelopes import (
    Envelope,
    decode_envelope,
    encode_envelope,
    envelope_head,
)
from streams.contracts.tables import CHANGES, INTERACTIONS
from streams.detect_io.engine import Batch
from streams.interaction import Change
from tests.support.interactions import change_row, interaction, interaction_row


def rows() -> tuple[list[list[Any]], list[list[Any]]]:
    """Rows as the normalizer writes them (a reply, a like, an attributed and an unattributed change)."""
    inter = [interaction("reddit", "t1_a", "reply", "u1", 60_000, parent_id="t3_r", mentioned_ids=("x",)),
             interaction("reddit", "like:u2:t1_a", "like", "u2", 185_000)]
    changes = [Change("reddit", "t1_a", "edit", 200_000, "new", "u1", "c", "acct", "stream", "k", 2),
               Change("mastodon", "9", "delete", 210_000, "", "", "", "", "stream", "k2", 3)]
    return [interaction_row(i) for i in inter], [change_row(c) for c in changes]


def wire(rows_: list[list[Any]]) -> list[list[Any]]:
    """Rows as they come back from JSON (tuples become lists)."""
    return orjson.loads(orjson.dumps(rows_))  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", [1, 2])
def test_both_versions_round_trip_to_the_same_rows(version: int) -> None:
    inter, changes = rows()
    env = decode_envelope(encode_envelope(Envelope(inter, changes), version))
    assert isinstance(env, Envelope), env
    assert env.version == version and env.dropped == ()
    assert env.interactions == wire(inter) and env.changes == wire(changes)


def test_version_1_carries_no_version_and_version_2_names_its_columns() -> None:
    inter, changes = rows()
    v1 = orjson.loads(encode_envelope(Envelope(inter, changes), 1))
    v2 = orjson.loads(encode_envelope(Envelope(inter, changes), 2))
    assert set(v1) == {"i", "c"}  # what workers before the version read
    assert v2["v"] == 2 and v2["columns"] == {"i": list(INTERACTIONS.columns), "c": list(CHANGES.columns)}
    assert v2["i"] == v1["i"] and v2["c"] == v1["c"]


def test_a_batch_of_old_and_new_envelopes_is_the_batch_of_either() -> None:
    inter, changes = rows()
    old = decode_envelope(encode_envelope(Envelope(inter[:1], changes[:1]), 1))
    new = decode_envelope(encode_envelope(Envelope(inter[1:], changes[1:]), 2))
    same = decode_envelope(encode_envelope(Envelope(inter, changes), 1))
    assert isinstance(old, Envelope) and isinstance(new, Envelope) and isinstance(same, Envelope)
    mixed, single = Batch.of([old, new]), Batch.of([same])
    assert mixed.by_key == single.by_key and mixed.unattributed == single.unattributed
    assert mixed.latest == single.latest == {"c:acct": 185_000}
    assert mixed.minutes == single.minutes and mixed.events == single.events == 4
    (msgs, applied), = mixed.by_key.values()
    assert [m.event_id for m in msgs] == ["t1_a"] and msgs[0].mentioned_ids == ("x",)  # signals stay undecoded
    assert [c.change for c in applied] == ["edit"] and [c.event_id for c in mixed.unattributed] == ["9"]


def test_a_newer_writer_is_read_by_name() -> None:
    """Reordered columns, one more column, one nullable column fewer: rows mapped by name."""
    inter, changes = rows()
    theirs = [c for c in reversed(INTERACTIONS.columns) if c != "quoted_id"] + ["sentiment"]
    their_rows = [[dict(zip(INTERACTIONS.columns, r, strict=True)).get(c, 0.5) for c in theirs] for r in wire(inter)]
    value = orjson.dumps({"v": 2, "columns": {"i": theirs, "c": list(CHANGES.columns)}, "i": their_rows,
                          "c": changes})
    env = decode_envelope(value)
    assert isinstance(env, Envelope), env
    assert env.dropped == ("i.sentiment",)
    q = INTERACTIONS.position("quoted_id")
    assert env.interactions == [[None if n == q else v for n, v in enumerate(r)] for r in wire(inter)]
    assert env.changes == wire(changes)


@pytest.mark.parametrize(("value", "reason"), [
    (b"{not json", "undecodable interactions envelope"),
    (b"[1, 2]", "envelope is not an object but list"),
    (b'{"i": [], "x": []}', "unknown parts ['x']"),
    (b'{"i": {}}', "envelope part 'i' is not a list"),
    (b'{"i": [3]}', "i[0] is not a list of values"),
    (b'{"v": 3, "i": []}', "envelope version 3 is not one this worker reads"),
    (b'{"v": "2", "i": []}', 'envelope version "2" is not one this worker reads'),
    (b'{"v": 2, "i": []}', "version 2 envelope has no 'columns' object"),
    (b'{"v": 2, "columns": {"i": ["a", 1], "c": []}, "i": []}', "columns.i is not a list of column names"),
    (b'{"v": 2, "columns": {"i": ["a", "a"], "c": []}, "i": []}', "columns.i names a column twice"),
    (b'{"v": 2, "columns": {"i": [], "c": []}, "i": [], "extra": 1}', "unknown parts ['extra']"),
])
def test_refusals_name_their_reason(value: bytes, reason: str) -> None:
    got = decode_envelope(value)
    assert isinstance(got, str) and reason in got, got


def test_row_problems_name_the_row_and_column() -> None:
    inter, _ = rows()
    good = wire(inter)[0]
    width = len(INTERACTIONS.columns)

    def refused(env: dict[str, Any]) -> str:
        got = decode_envelope(orjson.dumps(env))
        assert isinstance(got, str), got
        return got

    assert f"i[0] has 3 values, expected {width}" in refused({"i": [good[:3]]})
    assert f"i[1] has {width + 1} values" in refused({"i": [good, [*good, 1]]})
    bad_time = list(good)
    bad_time[INTERACTIONS.position("created_at")] = "soon"
    assert "i[0].created_at is str, expected epoch milliseconds" in refused({"i": [bad_time]})
    bad_key = list(good)
    bad_key[INTERACTIONS.position("client_id")] = 7
    assert "i[0].client_id is int, expected a string" in refused({"i": [bad_key]})
    bool_time = list(good)
    bool_time[INTERACTIONS.position("version")] = True
    assert "i[0].version is bool" in refused({"i": [bool_time]})
    # version 2: the rows are checked against the columns the envelope names
    cols = {"i": list(INTERACTIONS.columns), "c": list(CHANGES.columns)}
    assert "i[0].created_at is str" in refused({"v": 2, "columns": cols, "i": [bad_time], "c": []})
    lacking = {"i": [c for c in INTERACTIONS.columns if c != "event_id"], "c": cols["c"]}
    short = [v for c, v in zip(INTERACTIONS.columns, good, strict=True) if c != "event_id"]
    assert "i rows lack column 'event_id'" in refused({"v": 2, "columns": lacking, "i": [short], "c": []})


def test_split_records_of_a_version_2_envelope_each_decode() -> None:
    inter, changes = rows()
    many = [list(inter[n % 2]) for n in range(400)]
    for n, row in enumerate(many):
        row[INTERACTIONS.position("event_id")] = f"e{n}"
    values = list(split_rows(envelope_head(2), Envelope(many, changes).parts(), budget=16 * 1024))
    assert len(values) > 3 and all(len(v) <= 16 * 1024 for v in values)
    decoded = [decode_envelope(v) for v in values]
    assert all(isinstance(e, Envelope) and e.version == 2 for e in decoded), decoded[0]
    assert [r for e in decoded if isinstance(e, Envelope) for r in e.interactions] == wire(many)
    assert [r for e in decoded if isinstance(e, Envelope) for r in e.changes] == wire(changes)


def test_unknown_writer_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version 3"):
        envelope_head(3)
