"""The open-items table (migration 0012) holds exactly the unanswered responses and their alerts.

Through a real worker it equals the open set of the batch recomputation; a redelivered step
rewrites the same rows; a store that lost the table's rows heals when the worker restarts
(every account is recomputed when it loads); rows leave when answered, cancelled or gone; and
a store filled under migrations 0001-0011 gets its open set when migrated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.chaos.check import expected_rows
from streams.clients import load_clients
from streams.detect.rows import AlertRow, ResponseRow
from streams.detect_io.open_items import (
    expected_open_items,
    interaction_texts,
    refresh_open_items,
    stored_open_items,
)
from streams.detect_io.queries import DetectStore
from streams.detect_io.tables import ALERTS, RESPONSES
from streams.ingest.publisher import Publisher
from streams.simulator.traffic import Simulator
from streams.store.client import connect
from streams.store.migrations import MIGRATIONS_DIR, migrate
from tests.support.stack import Namespace, unique_name, wait_until

pytestmark = pytest.mark.integration
START_MS = 1_790_000_000_000  # September 2026: history, so deadlines follow event time
HOUR = 3_600_000


def _publish(ns: Namespace, events: int) -> None:
    clients = load_clients(ns.settings.clients)
    pub = Publisher(ns.settings.model_copy(update={"publish_batch": 50}), ns.broker_url)
    for ev in Simulator(clients, seed=21, start_ms=START_MS).events(events):
        pub.add(ev.platform, orjson.dumps(ev.payload), ev.source, via_account=ev.via_account or "")
    pub.close()


def _expected(ns: Namespace, client: Any) -> set[tuple[Any, ...]]:
    want = expected_rows(load_clients(ns.settings.clients), client)
    return expected_open_items(want["responses"], want["alerts"], interaction_texts(client))


def test_open_items_equal_the_recomputation_and_heal_on_restart(namespace: Namespace) -> None:
    ns = namespace
    _publish(ns, 3000)
    with ns.worker():
        ns.drain()
    client = connect(ns.store_url, ns.settings)
    try:
        want = _expected(ns, client)
        assert stored_open_items(client) == want, ns.log_tail()
        statuses = {row[10] for row in want}
        assert "breached" in statuses and any(row[11] == "breached" for row in want), statuses
        assert all(row[5] or row[6] for row in want), "open items without their message"

        # A redelivered step (the same keys, recomputed at a newer version) changes nothing.
        store = DetectStore(client)
        accounts = {(c, a) for c, a, *_ in want}
        refresh_open_items(store, max(store.max_version(c, a) for c, a in accounts) + 1, accounts, {})
        assert stored_open_items(client) == want

        # The rows lost (a crash after the detection tables, before the refresh): a restarted
        # worker loads every account it owns and recomputes it whole.
        client.command("TRUNCATE TABLE open_items")
        assert stored_open_items(client) == set()
        with ns.worker():
            wait_until(lambda: stored_open_items(client) == want, timeout_s=90)
    finally:
        client.close()


def _response(event_id: str, status: str, received_at: int = START_MS) -> ResponseRow:
    answered = received_at + HOUR if status == "answered" else None
    return ResponseRow("acme", "acct", "x", event_id, "person", received_at, received_at + 2 * HOUR, answered,
                       None if answered is None else 3600.0, None if answered is None else 3600.0, status)


def _alert(event_id: str, status: str, received_at: int = START_MS) -> AlertRow:
    due = received_at + 2 * HOUR
    return AlertRow("acme", "acct", "x", event_id, due, due, None, status, f"@person: {event_id} unanswered")


# Each key's rows by version: (response status or "gone", alert status or None). The last wins.
HISTORY: dict[str, list[tuple[int, str, str | None]]] = {
    "e-open": [(1, "open", None)],
    "e-breached": [(1, "open", None), (2, "breached", "breached")],
    "e-answered": [(1, "open", None), (2, "answered", None)],
    "e-answered-late": [(1, "breached", "breached"), (3, "answered", "resolved")],
    "e-cancelled": [(1, "breached", "breached"), (3, "cancelled", "cancelled")],
    "e-gone": [(1, "open", None), (3, "gone", None)],
    "e-withdrawn": [(1, "breached", "breached"), (2, "answered", "withdrawn")],
    "e-only-answered": [(1, "answered", None)],
    # answered before its deadline after the sweep passed it, the alert not withdrawn: a state a
    # 150 k-event backfill left in 582 messages (alerts FINAL breached, responses FINAL answered).
    "e-stale-alert": [(1, "breached", "breached"), (2, "answered", None)],
}
UNANSWERED_AT_END = {"e-open", "e-breached"}
OPEN_ALERTS_AT_END = {"e-breached", "e-stale-alert"}


def _assert_open_sets(rows: set[tuple[Any, ...]]) -> None:
    """The queue's rows are the unanswered responses, the rule's the open alerts."""
    assert {r[3] for r in rows if r[10] in ("open", "breached")} == UNANSWERED_AT_END
    assert {r[3] for r in rows if r[11] == "breached"} == OPEN_ALERTS_AT_END
    assert {r[3] for r in rows} == UNANSWERED_AT_END | OPEN_ALERTS_AT_END


def _write_history(client: Any, upto_version: int, versions: range | None = None) -> None:
    """The rows of :data:`HISTORY` with version <= ``upto_version``, as the detection writer
    writes them (``gone``: the response row deleted, a withdrawn alert deleted)."""
    for event_id, steps in HISTORY.items():
        for version, status, alert in steps:
            if version > upto_version or (versions is not None and version not in versions):
                continue
            gone = status == "gone"
            row = _response(event_id, "open" if gone else status)
            client.insert(RESPONSES.name, [RESPONSES.store_row(row, gone, version)],
                          column_names=list(RESPONSES.columns))
            if alert is not None:
                client.insert(ALERTS.name, [ALERTS.store_row(_alert(event_id, alert), alert == "withdrawn", version)],
                              column_names=list(ALERTS.columns))


def _definition(client: Any) -> set[tuple[Any, ...]]:
    """The open set as its definition reads it: ``responses FINAL`` unanswered, its alert from ``alerts FINAL``."""
    responses = [(*r[:7], None, None, None, r[7]) for r in client.query(
        "SELECT client_id, account_id, platform, event_id, author_id, toUnixTimestamp64Milli(received_at), "
        "toUnixTimestamp64Milli(due_at), status FROM responses FINAL").result_rows]
    alerts = client.query("SELECT client_id, account_id, platform, event_id, toUnixTimestamp64Milli(opened_at), "
                          "toUnixTimestamp64Milli(due_at), NULL, status, text FROM alerts FINAL").result_rows
    return expected_open_items(responses, alerts, interaction_texts(client))


def test_refresh_keeps_the_open_set_and_rows_leave(namespace: Namespace) -> None:
    client = connect(namespace.store_url, namespace.settings)
    store = DetectStore(client)
    keys = {("acme", "acct", "x"): set(HISTORY)}
    try:
        _write_history(client, 1)
        refresh_open_items(store, 1, (), keys)
        assert {r[3] for r in stored_open_items(client)} == {k for k, s in HISTORY.items() if s[0][1] in
                                                           ("open", "breached")}
        assert stored_open_items(client) == _definition(client)
        for version in (2, 3):
            _write_history(client, version, range(version, version + 1))
            refresh_open_items(store, version, (), keys)
            assert stored_open_items(client) == _definition(client), version
        _assert_open_sets(stored_open_items(client))
        breached = next(r for r in stored_open_items(client) if r[3] == "e-breached")
        assert breached[10:] == ("breached", "breached", START_MS + 2 * HOUR, "@person: e-breached unanswered")
        stale = next(r for r in stored_open_items(client) if r[3] == "e-stale-alert")
        assert (stale[4], *stale[8:11]) == ("", 0, START_MS + 2 * HOUR, "")  # no unanswered response: not queued

        # Redelivered: the same step again, at a newer version, shows the same rows, and a key
        # that never was open is never written.
        before = stored_open_items(client)
        refresh_open_items(store, 4, (), keys)
        assert stored_open_items(client) == before
        never = client.command("SELECT count() FROM open_items WHERE event_id = 'e-only-answered'")
        assert int(never) == 0  # type: ignore[arg-type]
        # A whole account (a rebuild) gives the same set as its keys.
        refresh_open_items(store, 5, {("acme", "acct")}, {})
        assert stored_open_items(client) == before

        # A batch bringing an open message again (a newer version, its handle now known) and a
        # message that is no open item: the first row's text follows, the second is not written.
        for version, handle in ((1, ""), (2, "pat")):
            client.command(
                "INSERT INTO interactions (client_id, account_id, platform, event_id, kind, author_id, author_handle, "
                f"text, url, created_at, ingested_at, version) VALUES ('acme', 'acct', 'x', 'e-open', 'mention', "
                f"'person', '{handle}', 'hello?', 'https://x.com/e-open', {START_MS / 1000}, {START_MS / 1000}, "
                f"{version})")
        refresh_open_items(store, 6, (), {}, {("acme", "acct", "x"): {"e-open", "e-only-answered"}})
        row = next(r for r in stored_open_items(client) if r[3] == "e-open")
        assert row[5:8] == ("pat", "hello?", "https://x.com/e-open")
        assert stored_open_items(client) == _definition(client)
        assert int(client.command("SELECT count() FROM open_items WHERE event_id = 'e-only-answered'")) == 0  # type: ignore[arg-type]
    finally:
        client.close()


def _old_migrations(tmp: Path) -> Path:
    out = tmp / "migrations-0011"
    out.mkdir()
    for item in MIGRATIONS_DIR.iterdir():
        if item.name.endswith(".sql") and int(item.name[:4]) <= 11:
            (out / item.name).write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
    return out


def test_a_store_filled_under_0011_gets_its_open_set(namespace: Namespace, tmp_path: Path) -> None:
    database = unique_name("m")
    settings = namespace.settings.model_copy(update={"store_database": database})
    migrate(namespace.store_url, settings, directory=_old_migrations(tmp_path))
    client = connect(namespace.store_url, settings)
    try:
        assert int(client.command("EXISTS TABLE open_items")) == 0  # type: ignore[arg-type]
        _write_history(client, 3)
        applied = migrate(namespace.store_url, settings)
        assert [m.number for m in applied] == [12]
        got = stored_open_items(client)
        _assert_open_sets(got)
        assert got == _definition(client)
        assert migrate(namespace.store_url, settings) == []
        # The next write of a worker (a version above every stored one) takes over the rows.
        refresh_open_items(DetectStore(client), 10, {("acme", "acct")}, {})
        assert stored_open_items(client) == got
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()
