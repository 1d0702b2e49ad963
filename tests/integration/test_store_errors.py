"""Store errors classified by code on the real store, and retries that are never silent.

Codes are provoked with real SQL on the session's chDB store: a data error becomes a dead
letter, UNKNOWN_TABLE (a store never migrated) and TOO_MANY_PARTS are retried, each step
logged with its code and shown in ``pipeline_metrics`` and on the board, and the batch is
stored once the store recovers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from streams.agents.retry import is_transient
from streams.board.queries import read_board
from streams.grafana import sql
from streams.ingest.publisher import Publisher
from streams.interaction import INTERACTION_COLUMNS
from streams.store.client import connect
from streams.store.errors import error_code, is_data_error
from streams.store.migrations import migrate
from streams.store.writer import IncompleteInsert, TableWriter
from tests.integration.test_batch_commit import comment, expected_keys, stored_keys
from tests.support.grafana_client import GrafanaClickHouse
from tests.support.stack import Namespace, stop_process, unique_name, wait_until

pytestmark = pytest.mark.integration


def _raises(call) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        call()
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("no error")


def test_codes_of_the_real_store_are_classified(namespace: Namespace) -> None:
    client = connect(namespace.store_url, namespace.settings)
    try:
        unknown = _raises(lambda: client.query("SELECT * FROM no_such_table"))
        assert isinstance(unknown, DatabaseError) and error_code(unknown) == 60
        assert not is_data_error(unknown) and is_transient(unknown)  # "code: 6" in its text no more
        client.command("CREATE TABLE tight (a UInt32) ENGINE = MergeTree PARTITION BY a ORDER BY a "
                       "SETTINGS max_parts_in_total = 2")
        bad_number = _raises(lambda: client.raw_insert("tight", ["a"], b'["x"]\n', fmt="JSONCompactEachRow"))
        assert error_code(bad_number) == 27 and is_data_error(bad_number) and not is_transient(bad_number)
        assert "created_at" in INTERACTION_COLUMNS
        bad_time = _raises(lambda: client.raw_insert(
            "interactions", ["created_at"], b'["soon"]\n', fmt="JSONCompactEachRow"))
        assert is_data_error(bad_time) and not is_transient(bad_time), bad_time
        # TOO_MANY_PARTS: chDB refuses the block of a streamed insert without an error (the
        # store answers 200 with written_rows 0), so the writer checks the written rows.
        writer = TableWriter(client, "tight", ["a"], (), None, 100)
        writer.write([[1]])
        writer.write([[2]])
        incomplete = _raises(lambda: writer.write([[3]]))
        assert isinstance(incomplete, IncompleteInsert) and is_transient(incomplete)
    finally:
        client.close()


def test_a_store_never_migrated_is_retried_visibly_then_stored(namespace: Namespace) -> None:
    db = unique_name("bare")
    settings = namespace.settings.model_copy(update={"store_database": db})
    ns = Namespace(settings, namespace.broker_url, namespace.store_url, namespace.log_dir)
    admin = connect(ns.store_url, settings, database=None)
    admin.command(f"CREATE DATABASE {db}")  # no tables: every agent's first write is UNKNOWN_TABLE
    payloads = [comment(i) for i in range(30)]
    pub = Publisher(settings, ns.broker_url)
    for payload in payloads:
        pub.add("reddit", payload, "test")
    pub.close()
    worker = ns.start_worker("bare")
    ns.workers.append(worker)
    try:
        wait_until(lambda: "code 60" in ns.log_tail() and "retrying in" in ns.log_tail(), timeout_s=60)
        migrate(ns.store_url, settings)
        ns.drain()
        final, keys = stored_keys(ns)
        want = expected_keys(ns, payloads)
        assert final == len(want) and keys == want, ns.log_tail()
        assert "succeeded after" in ns.log_tail()
    finally:
        stop_process(worker)
        admin.command(f"DROP DATABASE IF EXISTS {db}")
        admin.close()


def publish(pub: Publisher, payloads: list[bytes]) -> None:
    for payload in payloads:
        pub.add("reddit", payload, "test")
    pub.flush()


@contextmanager
def stalled_sink(ns: Namespace, client, break_store: str, held: int) -> Iterator[list[bytes]]:  # type: ignore[no-untyped-def]
    """In a worker: a warm batch stored, then the store broken by ``break_store`` and ``held``
    more payloads published. The block watches the stall, mends the store and drains; on the
    way out every payload, warm and held, must be stored exactly once. Yields the warm ones."""
    warm, later = [comment(i) for i in range(10)], [comment(i) for i in range(10, 10 + held)]
    pub = Publisher(ns.settings, ns.broker_url)
    try:
        with ns.worker():
            publish(pub, warm)
            ns.drain()
            client.command(break_store)
            publish(pub, later)
            yield warm
    finally:
        pub.close()
    final, keys = stored_keys(ns)
    want = expected_keys(ns, warm + later)
    assert final == len(want) and keys == want, ns.log_tail()


def test_too_many_parts_is_retried_and_shown_on_the_board(namespace: Namespace) -> None:
    ns = namespace
    client = connect(ns.store_url, ns.settings)
    try:
        with stalled_sink(ns, client, "ALTER TABLE interactions MODIFY SETTING max_parts_in_total = 1", 50) as warm:

            def stalled() -> list[dict]:
                return [s for s in read_board(client).stalls if s["stage"] == "sink"]

            stalls = wait_until(stalled, timeout_s=60)
            assert "IncompleteInsert" in stalls[0]["detail"] and "interactions" in stalls[0]["detail"]
            assert final_count(client) == len(expected_keys(ns, warm))  # nothing of the held batch yet
            client.command("ALTER TABLE interactions MODIFY SETTING max_parts_in_total = 100000")
            ns.drain()
            wait_until(lambda: not stalled(), timeout_s=30)  # the next flush says "ok"
    finally:
        client.close()


def test_a_stall_shows_its_error_code_on_the_board_and_the_pipeline_grafana_board(namespace: Namespace) -> None:
    """A table renamed away (UNKNOWN_TABLE, 60) stalls the sink; both boards name the code."""
    ns = namespace
    client = connect(ns.store_url, ns.settings)
    grafana = GrafanaClickHouse(ns.store_url, ns.settings.store_database)
    grafana.connect()
    try:
        with stalled_sink(ns, client, "RENAME TABLE interactions TO interactions_away", 30):

            def board_stalls() -> list[dict]:
                try:  # until a flush records the stall, the board cannot read its figures
                    return [s for s in read_board(client).stalls if s["error_code"] == 60]
                except DatabaseError:
                    return []

            def grafana_stalls() -> list[dict]:
                return [r for r in grafana.query(sql.STALLED_STAGES.sql).dicts() if r["error_code"] == 60]

            stalls = wait_until(board_stalls, timeout_s=60)
            assert stalls[0]["stage"] in ("sink", "detect") and "code 60" in stalls[0]["detail"]
            shown = wait_until(grafana_stalls, timeout_s=10)
            assert {r["stage"] for r in shown} == {s["stage"] for s in stalls}
            client.command("RENAME TABLE interactions_away TO interactions")
            ns.drain()
            wait_until(lambda: not grafana.query(sql.STALLED_STAGES.sql).rows, timeout_s=30)
    finally:
        client.close()


def final_count(client) -> int:  # type: ignore[no-untyped-def]
    return int(client.query("SELECT count() FROM interactions FINAL").result_rows[0][0])
