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
from streams.interaction import SIGNAL_KINDS

KeyScope = tuple[str, str, str]  # (client_id, account_id, platform)
_KEY = ("client_id", "account_id", "platform", "event_id")
OPEN_ROW_COLUMNS = ("client_id", "account_id", "platform", "event_id", "author_id", "author_handle", "text", "url",
                    "received_at", "due_at", "status", "alert_status", "opened_at", "alert_text")
"""An open item as compared: its columns without the deletion flag and version."""
_COLUMNS = (*OPEN_ROW_COLUMNS, "deleted", "version")
_SIGNALS = "(" + ", ".join(f"'{k}'" for k in sorted(SIGNAL_KINDS)) + ")"


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


def refresh_sql(version: int, where: str) -> str:
    """One statement: every key ``where`` picks that is open now or that the table shows, with
    its row as ``responses FINAL``, ``alerts FINAL`` and ``interactions`` hold it now, deleted
    when it is open no more.

    A key is open when its response is unanswered or its alert open. Both sets are read, not one
    derived from the other: the queue must show exactly the unanswered responses and the rule
    exactly the open alerts. The response columns are those of an unanswered response ('' and
    1970 otherwise), the alert columns those of an open alert. Who wrote the message, its text
    and link are the stored interaction's latest version by ``argMax`` (``interactions`` has no
    deletion flag, so that is what ``FINAL`` keeps).

    Each table is read once: the three sets are one ``UNION ALL`` grouped by key, where ``max``
    picks the one side's value over the other sides' blanks (ClickHouse computes a CTE again at
    each reference, so joins of the sets against their union read every table twice). The sets'
    columns have names of their own (``r_status``, ``a_status``): a blank aliased ``status`` would
    stand for the column ``status`` in that branch's ``WHERE``.
    """
    key = ", ".join(_KEY)
    on = " AND ".join(f"i.{c} = k.{c}" for c in _KEY)
    never = "toDateTime64(0, 3, 'UTC')"
    blank_r = f"'' AS r_author, {never} AS r_received, {never} AS r_due, '' AS r_status"
    blank_a = f"{never} AS a_due, '' AS a_status, {never} AS a_opened, '' AS a_text"
    return f"""
INSERT INTO {OPEN_ITEMS_TABLE} ({", ".join(_COLUMNS)})
SELECT k.client_id, k.account_id, k.platform, k.event_id, k.r_author, i.author_handle, i.text, i.url,
       k.r_received, if(k.unanswered, k.r_due, k.a_due), k.r_status, k.a_status, k.a_opened, k.a_text,
       NOT (k.unanswered OR k.alerted), {int(version)}
FROM (
    SELECT {key}, max(r_author) AS r_author, max(r_received) AS r_received, max(r_due) AS r_due,
           max(r_status) AS r_status, max(a_due) AS a_due, max(a_status) AS a_status, max(a_opened) AS a_opened,
           max(a_text) AS a_text, max(is_r) AS unanswered, max(is_a) AS alerted
    FROM (
        SELECT {key}, author_id AS r_author, received_at AS r_received, due_at AS r_due, status AS r_status,
               {blank_a}, 1 AS is_r, 0 AS is_a
        FROM responses FINAL WHERE ({where}) AND {UNANSWERED}
        UNION ALL
        SELECT {key}, {blank_r}, due_at AS a_due, status AS a_status, opened_at AS a_opened, text AS a_text,
               0 AS is_r, 1 AS is_a
        FROM alerts FINAL WHERE ({where}) AND {ALERT_OPEN}
        UNION ALL
        SELECT {key}, {blank_r}, {blank_a}, 0 AS is_r, 0 AS is_a
        FROM {OPEN_ITEMS_TABLE} FINAL WHERE ({where})
    )
    GROUP BY {key}
) AS k
LEFT JOIN (
    SELECT {key}, argMax(author_handle, version) AS author_handle, argMax(text, version) AS text,
           argMax(url, version) AS url
    FROM interactions WHERE ({where}) AND kind NOT IN {_SIGNALS}
    GROUP BY {key}
) AS i ON {on}
"""


def touched_keys(rows: Mapping[str, Mapping[tuple[str, ...], Any]]) -> dict[KeyScope, set[str]]:
    """The keys a step's ``responses`` and ``alerts`` rows change, per scope."""
    out: dict[KeyScope, set[str]] = defaultdict(set)
    for table in ("responses", "alerts"):
        for c, a, p, event_id in rows.get(table, {}):
            out[(c, a, p)].add(event_id)
    return out


def refresh_open_items(store: DetectStore, version: int, accounts: Iterable[tuple[str, str]],
                       keys: dict[KeyScope, set[str]], messages: Mapping[KeyScope, set[str]] | None = None) -> int:
    """Recompute the open items of ``accounts`` (whole), ``keys``, and those of ``messages``
    (a batch's messages: their stored text may have changed) that the table holds; the
    statements sent.

    Most of a batch's messages are no open item, and those that become one have a response
    row among ``keys``: the others are looked up in the (small) table first, so a batch costs
    the reads of its open items, not of every message it brings.

    Under the store client's bound as every detection statement (:class:`DetectStore`'s
    budgets): the condition appears four times in a statement, so a group of conditions
    fills at most a quarter of the terms budget.
    """
    whole = set(accounts)
    rest = {scope: ids - keys.get(scope, set()) for scope, ids in (messages or {}).items() if scope[:2] not in whole}
    held = []  # a message term holds its list twice: half the list, half the group
    for term in scopes((), {s: ids for s, ids in rest.items() if ids}, store.list_budget // 2):
        held.append(f"({term} AND ({', '.join(_KEY)}) IN (SELECT {', '.join(_KEY)} FROM {OPEN_ITEMS_TABLE} "
                    f"WHERE {term}))")
    groups = [*packed(scopes(accounts, keys, store.list_budget), max(1024, store.terms_budget // 4)),
              *packed(held, max(1024, store.terms_budget // 8))]
    for group in groups:
        store.client.command(refresh_sql(version, " OR ".join(group)), settings={"max_query_size": 64 * 1024 * 1024})
    return len(groups)


# --- what the table must hold (the check of every run: streams/chaos/check.py, tests) ----------

_RESPONSE_STATUS = 10  # ResponseRow's columns (streams/detect/rows.py)
_ALERT_OPENED, _ALERT_DUE, _ALERT_STATUS, _ALERT_TEXT = 4, 5, 7, 8  # AlertRow's


Tuple = tuple[Any, ...]


def expected_open_items(responses: Iterable[Tuple], alerts: Iterable[Tuple],
                        texts: Mapping[Tuple, Tuple]) -> set[Tuple]:
    """The open items of these response and alert rows (tuples in the row types' column order,
    times in epoch ms; withdrawn alerts left out, as ``FINAL`` hides them), as :func:`refresh_sql`
    writes them: a row per key with an unanswered response or an open alert, with the message's
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
