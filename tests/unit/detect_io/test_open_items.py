"""The open-items table (streams/detect_io/open_items.py): its DDL, scopes, keys and expected rows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.detect.rows import AlertRow, ResponseRow, Updates
from streams.detect_io.open_items import OPEN_ROW_COLUMNS, expected_open_items, refresh_sql, scopes, touched_keys
from streams.detect_io.queries import chunked, quote_list
from streams.detect_io.tables import Collector
from tests.unit.detect_io.test_detect_tables import ddl


def test_ddl_is_keyed_as_responses_with_a_deletion_flag_and_cleanup_merges() -> None:
    cols, engine = ddl("open_items")
    assert [n for n, _ in cols] == [*OPEN_ROW_COLUMNS, "deleted", "version"]
    assert "ReplacingMergeTree(version, deleted)" in engine
    assert "ORDER BY (client_id, account_id, platform, event_id)" in engine
    assert "PARTITION BY" not in engine  # a row's status changes: it must not move partitions
    assert "enable_replacing_merge_with_cleanup_for_min_age_to_force_merge = 1" in engine


@given(st.sets(st.text(alphabet="abc:/'\\", min_size=1, max_size=60), max_size=400),
       st.integers(min_value=256, max_value=4096))
def test_scopes_list_every_key_in_chunks_within_budget(ids: set[str], budget: int) -> None:
    got = list(scopes([], {("c", "a", "x"): ids}, budget))
    chunks = list(chunked(ids, budget))
    head = "(client_id = 'c' AND account_id = 'a' AND platform = 'x' AND event_id IN "
    assert got == [f"{head}{quote_list(chunk)})" for chunk in chunks]
    assert sorted(v for chunk in chunks for v in chunk) == sorted(ids)


def test_whole_accounts_are_one_scope_and_their_keys_are_not_listed_again() -> None:
    got = list(scopes([("c", "a")], {("c", "a", "x"): {"e1"}, ("c", "b", "x"): {"e2"}}, 1024))
    assert got == ["(client_id = 'c' AND account_id = 'a')",
                   "(client_id = 'c' AND account_id = 'b' AND platform = 'x' AND event_id IN ('e2'))"]


def test_the_statement_reads_each_table_once_and_flags_the_rows_that_left() -> None:
    sql = refresh_sql(7, "(client_id = 'c')")
    assert sql.count("(client_id = 'c')") == 4  # the condition's uses (within the bound's budget)
    for table in ("responses", "alerts", "open_items"):
        assert sql.count(f"FROM {table} FINAL") == 1, table
    assert sql.count("FROM interactions") == 1
    assert "status IN ('open', 'breached')" in sql and "status = 'breached'" in sql
    assert "NOT (k.unanswered OR k.alerted), 7" in sql


def test_touched_keys_are_the_written_responses_and_alerts() -> None:
    col = Collector()
    col.add(Updates(responses=(ResponseRow("c", "a", "x", "e1", "p", 1, 2, None, None, None, "open"),),
                    alerts=(AlertRow("c", "a", "bluesky", "e2", 2, 2, None, "breached", "t"),)))
    assert touched_keys(col.rows) == {("c", "a", "x"): {"e1"}, ("c", "a", "bluesky"): {"e2"}}


def test_expected_open_items_are_the_unanswered_responses_and_the_open_alerts() -> None:
    def response(event_id: str, status: str) -> tuple[object, ...]:
        return ("c", "a", "x", event_id, "p", 1, 2, None, None, None, status)

    responses = [response("open", "open"), response("late", "breached"), response("done", "answered"),
                 response("gone", "cancelled")]
    alerts = [("c", "a", "x", "late", 2, 2, None, "breached", "@p got no answer"),
              ("c", "a", "x", "done", 2, 2, 5, "resolved", "@p got no answer"),
              ("c", "a", "x", "gone", 2, 2, None, "breached", "@p: an alert left open")]
    texts = {("c", "a", "x", "open"): ("pat", "hello?", "https://x.com/p/1")}
    assert expected_open_items(responses, alerts, texts) == {
        ("c", "a", "x", "open", "p", "pat", "hello?", "https://x.com/p/1", 1, 2, "open", "", 0, ""),
        ("c", "a", "x", "late", "p", "", "", "", 1, 2, "breached", "breached", 2, "@p got no answer"),
        ("c", "a", "x", "gone", "", "", "", "", 0, 2, "", "breached", 2, "@p: an alert left open"),
    }
