"""Reading detection results back from the store and recomputing them (the tests and `rapport chaos`).

The reference is :func:`streams.detect.batch.recompute` over the interactions and changes
read back from the store, per account, at the account's final event-time watermark (its
latest event time), which is where a replay of history leaves its deadlines.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import astuple
from typing import Any

from clickhouse_connect.driver.client import Client as StoreClient

from streams.clients import ClientsFile
from streams.detect.batch import recompute
from streams.detect_io.tables import TABLES
from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS, Change, Interaction

Rows = dict[str, set[tuple[Any, ...]]]


def _ms(value: Any) -> Any:
    return int(round(value.timestamp() * 1000)) if hasattr(value, "timestamp") else value


def read_inputs(client: StoreClient) -> tuple[dict[str, list[Interaction]], list[Change]]:
    """Interactions per account key, and every change, as stored (``FINAL``)."""
    by_key: dict[str, list[Interaction]] = defaultdict(list)
    res = client.query(f"SELECT {', '.join(INTERACTION_COLUMNS)} FROM interactions FINAL")
    for row in res.result_rows:
        values = [_ms(v) for v in row]
        values[13] = tuple(values[13])
        msg = Interaction(*values)
        by_key[f"{msg.client_id}:{msg.account_id}"].append(msg)
    res = client.query(f"SELECT {', '.join(CHANGE_COLUMNS)} FROM changes FINAL")
    changes = [Change(*(_ms(v) for v in row)) for row in res.result_rows]
    return by_key, changes


def expected_rows(clients: ClientsFile, client: StoreClient) -> Rows:
    """Every detection row the reference recomputation yields for the stored events."""
    by_key, changes = read_inputs(client)
    out: Rows = {spec.name: set() for spec in TABLES}
    for c, acc in clients.accounts():
        msgs = by_key.get(f"{c.id}:{acc.account_id}", [])
        if not msgs:
            continue
        mine = [ch for ch in changes if ch.client_id in ("", c.id) and ch.account_id in ("", acc.account_id)]
        wm = max(m.created_at for m in msgs)
        upd = recompute(c, acc.account_id, msgs, mine, wm)
        for spec, rows in zip(TABLES, (upd.threads, upd.conversations, upd.connections, upd.responses,
                                       upd.alerts), strict=True):
            out[spec.name].update(astuple(r) for r in rows)  # type: ignore[arg-type,call-overload]
    return out


def stored_rows(client: StoreClient, where: str = "1") -> Rows:
    """Every detection table's ``FINAL`` rows (``where`` they match), in the row types' column order."""
    out: Rows = {}
    for spec in TABLES:
        res = client.query(f"SELECT {', '.join(spec.row_columns)} FROM {spec.name} FINAL WHERE {where}")
        out[spec.name] = {tuple(_ms(v) for v in row) for row in res.result_rows}
    return out


def rollup_truth(client: StoreClient) -> set[tuple[Any, ...]]:
    """activity_minutely as it must be: aggregated afresh from the FINAL state."""
    sql = """
    SELECT i.client_id, i.account_id, i.platform, i.minute, i.messages, i.likes, i.reposts, i.follows,
           r.inbound, r.answered, r.breached, r.cancelled
    FROM (SELECT client_id, account_id, platform, toStartOfMinute(created_at) AS minute,
                 countIf(kind NOT IN ('like', 'repost', 'follow')) AS messages, countIf(kind = 'like') AS likes,
                 countIf(kind = 'repost') AS reposts, countIf(kind = 'follow') AS follows
          FROM interactions FINAL GROUP BY client_id, account_id, platform, minute) AS i
    LEFT JOIN (SELECT client_id, account_id, platform, toStartOfMinute(received_at) AS minute, count() AS inbound,
                      countIf(status = 'answered') AS answered, countIf(status = 'breached') AS breached,
                      countIf(status = 'cancelled') AS cancelled
               FROM responses FINAL GROUP BY client_id, account_id, platform, minute) AS r
    ON i.client_id = r.client_id AND i.account_id = r.account_id AND i.platform = r.platform AND i.minute = r.minute
    """
    return {tuple(_ms(v) for v in row) for row in client.query(sql).result_rows}


def rollup_rows(client: StoreClient) -> set[tuple[Any, ...]]:
    sql = ("SELECT client_id, account_id, platform, minute, messages, likes, reposts, follows, inbound, answered, "
           "breached, cancelled FROM activity_minutely FINAL")
    return {tuple(_ms(v) for v in row) for row in client.query(sql).result_rows}


def diff(want: Rows, got: Rows, limit: int = 5) -> str:
    """A readable difference (empty when equal)."""
    lines = []
    for table in want:
        missing = sorted(want[table] - got.get(table, set()), key=str)
        extra = sorted(got.get(table, set()) - want[table], key=str)
        if missing or extra:
            lines.append(f"{table}: {len(missing)} missing, {len(extra)} unexpected "
                         f"(want {len(want[table])}, got {len(got.get(table, set()))})")
            lines += [f"  - {r}" for r in missing[:limit]] + [f"  + {r}" for r in extra[:limit]]
    return "\n".join(lines)


def interaction_keys(client: StoreClient) -> tuple[int, set[tuple[str, str, str, str]]]:
    """``interactions FINAL``: its row count and its distinct keys (sort key)."""
    rows = client.query("SELECT client_id, account_id, platform, event_id FROM interactions FINAL").result_rows
    return len(rows), {tuple(str(v) for v in r) for r in rows}  # type: ignore[misc]


def dead_letter_count(client: StoreClient) -> int:
    return int(client.query("SELECT count() FROM raw_events FINAL WHERE outcome = 'dead'").result_rows[0][0])
