"""The open-items table: the responses still waiting for an answer, kept from ``responses FINAL``.

The unanswered queue and the unanswered-mention alert rule show the few messages without an
answer; ``responses`` holds every inbound message ever received, so reading it ``FINAL`` for
them costs all of history. ``open_items`` (schemas/migrations/0012_open_items.sql) holds one
row per response whose status is ``open`` or ``breached``, with its breach alert.

Like ``activity_minutely`` it is not fed row by row by the core, whose rows of one batch may
reach the store in a different order than they were made (a rebuild's diff, then the batch):
it is *recomputed* from the ``FINAL`` state of ``responses`` and ``alerts`` for every key the
write touched, after those tables are written and before the batch is acknowledged, with the
step's (newer) version. So it is exact whatever happened before: a redelivered batch
rewrites the same rows, and an account rebuilt after a crash is recomputed whole, which
heals a crash between the detection tables and this refresh. A key whose response left the
open set (answered, cancelled, a row a rebuild no longer produces) and that the table still
shows is written again as deleted; a key that never was open is not written at all, so the
table never holds more than the open set and the rows leaving it (removed by its CLEANUP
merges).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from streams.detect_io.queries import DetectStore, chunked, packed, quote, quote_list
from streams.detect_io.tables import OPEN_ITEMS_TABLE
from streams.figures import ALERT_OPEN, UNANSWERED

KeyScope = tuple[str, str, str]  # (client_id, account_id, platform)
_KEY = ("client_id", "account_id", "platform", "event_id")
OPEN_ROW_COLUMNS = ("client_id", "account_id", "platform", "event_id", "author_id", "author_handle", "text", "url",
                    "received_at", "due_at", "status", "alert_status", "opened_at", "alert_text")
"""An open item as compared: its columns without the deletion flag and version."""
_COLUMNS = (*OPEN_ROW_COLUMNS, "deleted", "version")


def _account(client_id: str, account_id: str) -> str:
    return f"client_id = {quote(client_id)} AND account_id = {quote(account_id)}"


def scopes(accounts: Iterable[tuple[str, str]], keys: dict[KeyScope, set[str]], list_budget: int) -> Iterator[str]:
    """Disjoint conditions covering every key to recompute: whole accounts, then the other keys
    per (client, account, platform), id lists cut under ``list_budget`` bytes."""
    whole = sorted(set(accounts))
    for c, a in whole:
        yield f"({_account(c, a)})"
    for (c, a, p), ids in sorted(keys.items()):
        if (c, a) in whole or not ids:
            continue
        for chunk in chunked(ids, list_budget):
            yield f"({_account(c, a)} AND platform = {quote(p)} AND event_id IN {quote_list(chunk)})"


def open_rows_sql(where: str) -> str:
    """The open items ``where`` picks, as ``responses FINAL``, ``alerts FINAL`` and ``interactions``
    hold them now: one row per key with an unanswered response or an open alert (columns of
    :data:`OPEN_ROW_COLUMNS`).

    The response columns are those of an unanswered response ('' and 1970 otherwise), the alert
    columns those of an open alert. Both sets are read, not one derived from the other: the
    queue must show exactly the unanswered responses and the rule exactly the open alerts. Who
    wrote the message, its text and link are the stored interaction's, latest version by
    ``argMax`` (``interactions`` has no deletion flag, so that is what ``FINAL`` keeps), read
    only for the keys picked, by the whole sort key.
    """
    key = ", ".join(_KEY)
    on = {t: " AND ".join(f"{t}.{c} = k.{c}" for c in _KEY) for t in ("r", "a", "i")}
    return f"""WITH
    r AS (SELECT {key}, author_id, received_at, due_at, status FROM responses FINAL
          WHERE ({where}) AND {UNANSWERED}),
    a AS (SELECT {key}, due_at, status, opened_at, text FROM alerts FINAL WHERE ({where}) AND {ALERT_OPEN}),
    k AS (SELECT {key} FROM r UNION DISTINCT SELECT {key} FROM a),
    i AS (SELECT {key}, argMax(author_handle, version) AS author_handle, argMax(text, version) AS text,
                 argMax(url, version) AS url
          FROM interactions WHERE ({where}) AND ({key}) IN (SELECT {key} FROM k) GROUP BY {key})
SELECT k.client_id AS client_id, k.account_id AS account_id, k.platform AS platform, k.event_id AS event_id,
       r.author_id AS author_id, i.author_handle AS author_handle, i.text AS text, i.url AS url,
       r.received_at AS received_at, if(r.event_id != '', r.due_at, a.due_at) AS due_at, r.status AS status,
       a.status AS alert_status, a.opened_at AS opened_at, a.text AS alert_text
FROM k
LEFT JOIN r ON {on["r"]}
LEFT JOIN a ON {on["a"]}
LEFT JOIN i ON {on["i"]}"""


def refresh_sql(version: int, where: str) -> str:
    """One statement: the open items ``where`` picks (:func:`open_rows_sql`), and a deleted row
    for each key ``where`` picks that the table shows and that is open no more."""
    key = ", ".join(_KEY)
    cols = ", ".join(OPEN_ROW_COLUMNS)
    return f"""
INSERT INTO {OPEN_ITEMS_TABLE} ({", ".join(_COLUMNS)})
WITH now_open AS ({open_rows_sql(where)})
SELECT {cols}, false, {int(version)} FROM now_open
UNION ALL
SELECT {cols}, true, {int(version)}
FROM {OPEN_ITEMS_TABLE} FINAL
WHERE ({where}) AND ({key}) NOT IN (SELECT {key} FROM now_open)
"""


def touched_keys(rows: Mapping[str, Mapping[tuple[str, ...], Any]],
                 messages: Mapping[KeyScope, set[str]] | None = None) -> dict[KeyScope, set[str]]:
    """The keys a step may change open items of, per scope: those of its ``responses`` and
    ``alerts`` rows, and its batch's ``messages`` (their text may have changed)."""
    out: dict[KeyScope, set[str]] = defaultdict(set)
    for scope, ids in (messages or {}).items():
        out[scope] |= ids
    for table in ("responses", "alerts"):
        for c, a, p, event_id in rows.get(table, {}):
            out[(c, a, p)].add(event_id)
    return out


def refresh_open_items(store: DetectStore, version: int, accounts: Iterable[tuple[str, str]],
                       keys: dict[KeyScope, set[str]]) -> int:
    """Recompute the open items of ``accounts`` (whole) and ``keys``; the statements sent.

    Under the store client's bound as every detection statement (:class:`DetectStore`'s
    budgets): the condition appears four times in a statement, so a group of conditions
    fills at most a quarter of the terms budget.
    """
    sent = 0
    for group in packed(scopes(accounts, keys, store.list_budget), max(1024, store.terms_budget // 4)):
        store.client.command(refresh_sql(version, " OR ".join(group)), settings={"max_query_size": 64 * 1024 * 1024})
        sent += 1
    return sent


# --- what the table must hold (the check of every run: streams/chaos/check.py, tests) ----------

_RESPONSE_STATUS = 10  # ResponseRow's columns (streams/detect/rows.py)
_ALERT_OPENED, _ALERT_DUE, _ALERT_STATUS, _ALERT_TEXT = 4, 5, 7, 8  # AlertRow's


Tuple = tuple[Any, ...]


def expected_open_items(responses: Iterable[Tuple], alerts: Iterable[Tuple],
                        texts: Mapping[Tuple, Tuple]) -> set[Tuple]:
    """The open items of these response and alert rows (tuples in the row types' column order,
    times in epoch ms; withdrawn alerts left out, as ``FINAL`` hides them), as :func:`open_rows_sql`
    makes them: a row per key with an unanswered response or an open alert, with the message's
    ``(author_handle, text, url)`` from ``texts`` (:func:`interaction_texts`)."""
    unanswered = {r[:4]: r for r in responses if r[_RESPONSE_STATUS] in ("open", "breached")}
    open_alerts = {a[:4]: a for a in alerts if a[_ALERT_STATUS] == "breached"}
    out: set[Tuple] = set()
    for key in unanswered.keys() | open_alerts.keys():
        r, a = unanswered.get(key), open_alerts.get(key)
        message = texts.get(key, ("", "", ""))
        received = (r[5], r[6]) if r is not None else (0, a[_ALERT_DUE])  # type: ignore[index]
        alert = (a[_ALERT_STATUS], a[_ALERT_OPENED], a[_ALERT_TEXT]) if a is not None else ("", 0, "")
        out.add((*key, r[4] if r is not None else "", *message, *received,
                 r[_RESPONSE_STATUS] if r is not None else "", *alert))
    return out


def interaction_texts(client: Any, where: str = "1") -> dict[Tuple, Tuple]:
    """``(author_handle, text, url)`` of every message ``where`` picks, as ``interactions FINAL`` holds it."""
    rows = client.query("SELECT client_id, account_id, platform, event_id, author_handle, text, url "
                        f"FROM interactions FINAL WHERE {where}").result_rows
    return {tuple(row[:4]): tuple(row[4:]) for row in rows}


def stored_open_items(client: Any, where: str = "1") -> set[Tuple]:
    """``open_items FINAL`` (``where`` it matches) as :func:`expected_open_items` writes rows."""
    cols = ", ".join(f"toUnixTimestamp64Milli({c})" if c.endswith("_at") else c for c in OPEN_ROW_COLUMNS)
    rows = client.query(f"SELECT {cols} FROM {OPEN_ITEMS_TABLE} FINAL WHERE {where}").result_rows
    return {tuple(row) for row in rows}
