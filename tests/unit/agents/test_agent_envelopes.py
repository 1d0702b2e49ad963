"""Records agents produce stay under the broker's size limit and decode to the same rows."""

from __future__ import annotations

import orjson

from streams.agents.envelopes import split_rows


def test_small_envelope_is_one_record_equal_to_plain_json() -> None:
    env = {"i": [["a", 1], ["b", 2]], "c": [["x"]]}
    assert list(split_rows(b"{", env)) == [orjson.dumps(env)]
    assert list(split_rows(b"{", {"i": [], "c": []})) == [b'{"i":[],"c":[]}']


def test_large_envelope_is_split_in_order_under_the_budget() -> None:
    rows = [["row", i, "x" * 300] for i in range(5000)]
    changes = [["chg", i] for i in range(300)]
    chunks = list(split_rows(b"{", {"i": rows, "c": changes}, budget=64 * 1024))
    assert len(chunks) > 10 and all(len(c) <= 64 * 1024 for c in chunks)
    decoded = [orjson.loads(c) for c in chunks]
    assert [r for d in decoded for r in d["i"]] == rows
    assert [r for d in decoded for r in d["c"]] == changes


def test_head_fields_repeat_in_every_record() -> None:
    head = orjson.dumps({"client_id": "c", "account_id": "a"})[:-1] + b","
    chunks = list(split_rows(head, {"rows": [{"n": i} for i in range(1000)]}, budget=4096))
    decoded = [orjson.loads(c) for c in chunks]
    assert all(d["client_id"] == "c" and d["account_id"] == "a" for d in decoded)
    assert [r["n"] for d in decoded for r in d["rows"]] == list(range(1000))
