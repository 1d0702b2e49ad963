"""Reading detection results back from the store and recomputing them (the tests and `rapport chaos`).

The reference is :func:`streams.detect.recompute.recompute` over the interactions and changes
read back from the store, per account, at the account's final event-time watermark (its
latest event time), which is where a replay of history leaves its deadlines.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import astuple, dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client as StoreClient

from streams.clients import ClientsFile
from streams.detect.recompute import recompute
from streams.detect_io.open_items import expected_open_items, interaction_texts, stored_open_items
from streams.detect_io.queries import quote
from streams.detect_io.tables import OPEN_ITEMS_TABLE, TABLES
from streams.figures import BRAND_REPLIES, FROM_OTHERS
from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS, Change, Interaction

Rows = dict[str, set[tuple[Any, ...]]]


def _ms(value: Any) -> Any:
    return int(round(value.timestamp() * 1000)) if hasattr(value, "timestamp") else value


def read_inputs(client: StoreClient, where: str = "1") -> tuple[dict[str, list[Interaction]], list[Change]]:
    """Interactions per account key, and every change, as stored (``FINAL``, ``where`` they match)."""
    by_key: dict[str, list[Interaction]] = defaultdict(list)
    res = client.query(f"SELECT {', '.join(INTERACTION_COLUMNS)} FROM interactions FINAL WHERE {where}")
    for row in res.result_rows:
        values = [_ms(v) for v in row]
        values[13] = tuple(values[13])
        msg = Interaction(*values)
        by_key[f"{msg.client_id}:{msg.account_id}"].append(msg)
    res = client.query(f"SELECT {', '.join(CHANGE_COLUMNS)} FROM changes FINAL WHERE {where}")
    changes = [Change(*(_ms(v) for v in row)) for row in res.result_rows]
    return by_key, changes


def account_where(client_id: str, account_id: str) -> str:
    return f"client_id = {quote(client_id)} AND account_id = {quote(account_id)}"


@dataclass
class TableDiff:
    """Detection tables against the recomputation, summed over accounts (samples kept, not rows)."""

    want: Counter[str] = field(default_factory=Counter)
    got: Counter[str] = field(default_factory=Counter)
    missing: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: defaultdict(list))
    extra: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: defaultdict(list))
    missing_n: Counter[str] = field(default_factory=Counter)
    extra_n: Counter[str] = field(default_factory=Counter)

    def add(self, table: str, want: set[tuple[Any, ...]], got: set[tuple[Any, ...]], limit: int) -> None:
        self.want[table] += len(want)
        self.got[table] += len(got)
        for rows, n, samples in ((want - got, self.missing_n, self.missing), (got - want, self.extra_n, self.extra)):
            n[table] += len(rows)
            samples[table] += sorted(rows, key=str)[:max(0, limit - len(samples[table]))]

    def text(self) -> str:
        lines = []
        for table in sorted(set(self.missing_n) | set(self.extra_n)):
            if self.missing_n[table] or self.extra_n[table]:
                lines.append(f"{table}: {self.missing_n[table]} missing, {self.extra_n[table]} unexpected "
                             f"(want {self.want[table]}, got {self.got[table]})")
                lines += [f"  - {r}" for r in self.missing[table]] + [f"  + {r}" for r in self.extra[table]]
        return "\n".join(lines)


def table_diff(clients: ClientsFile, client: StoreClient, limit: int = 5) -> str:
    """:func:`expected_rows` against :func:`stored_rows`, the rollup against its truth and the
    open items against the expected rows' open set, one tracked account at a time, so memory
    holds one account's inputs and rows, never the store's (a million-event run). Empty when equal."""
    out = TableDiff()
    unattributed = [Change(*(_ms(v) for v in row)) for row in client.query(
        f"SELECT {', '.join(CHANGE_COLUMNS)} FROM changes FINAL WHERE client_id = ''").result_rows]
    tracked: set[tuple[str, str]] = set()
    for c, acc in clients.accounts():
        if (c.id, acc.account_id) in tracked:
            continue
        tracked.add((c.id, acc.account_id))
        where = account_where(c.id, acc.account_id)
        by_key, own = read_inputs(client, where)
        msgs = by_key.get(f"{c.id}:{acc.account_id}", [])
        want: Rows = {spec.name: set() for spec in TABLES}
        if msgs:
            wm = max(m.created_at for m in msgs)
            upd = recompute(c, acc.account_id, msgs, [*own, *unattributed], wm)
            for spec, rows in zip(TABLES, (upd.threads, upd.conversations, upd.connections, upd.responses,
                                           upd.alerts), strict=True):
                want[spec.name] = {astuple(r) for r in rows}  # type: ignore[call-overload]
        del by_key, msgs
        got = stored_rows(client, where)
        for spec in TABLES:
            out.add(spec.name, want[spec.name], got[spec.name], limit)
        out.add("activity_minutely", rollup_truth(client, where), rollup_rows(client, where), limit)
        out.add(OPEN_ITEMS_TABLE, expected_open_items(want["responses"], want["alerts"],
                                                      interaction_texts(client, where)),
                stored_open_items(client, where), limit)
    others = " AND ".join(f"NOT ({account_where(c, a)})" for c, a in sorted(tracked)) or "1"
    for spec in TABLES:  # rows of accounts nobody tracks are unexpected
        out.add(spec.name, set(), stored_rows(client, others)[spec.name], limit)
    return out.text()


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


def rollup_truth(client: StoreClient, where: str = "1") -> set[tuple[Any, ...]]:
    """activity_minutely as it must be: aggregated afresh from the FINAL state (``where`` it matches)."""
    sql = f"""
    SELECT i.client_id, i.account_id, i.platform, i.minute, i.messages, i.likes, i.reposts, i.follows,
           i.from_others, i.brand_replies, r.inbound, r.answered, r.breached, r.cancelled
    FROM (SELECT client_id, account_id, platform, toStartOfMinute(created_at) AS minute,
                 countIf(kind NOT IN ('like', 'repost', 'follow')) AS messages, countIf(kind = 'like') AS likes,
                 countIf(kind = 'repost') AS reposts, countIf(kind = 'follow') AS follows,
                 countIf({FROM_OTHERS}) AS from_others, countIf({BRAND_REPLIES}) AS brand_replies
          FROM interactions FINAL WHERE {where} GROUP BY client_id, account_id, platform, minute) AS i
    LEFT JOIN (SELECT client_id, account_id, platform, toStartOfMinute(received_at) AS minute, count() AS inbound,
                      countIf(status = 'answered') AS answered, countIf(status = 'breached') AS breached,
                      countIf(status = 'cancelled') AS cancelled
               FROM responses FINAL WHERE {where} GROUP BY client_id, account_id, platform, minute) AS r
    ON i.client_id = r.client_id AND i.account_id = r.account_id AND i.platform = r.platform AND i.minute = r.minute
    """
    return {tuple(_ms(v) for v in row) for row in client.query(sql).result_rows}


def rollup_rows(client: StoreClient, where: str = "1") -> set[tuple[Any, ...]]:
    """activity_minutely as stored, without its zeroed rows (a minute nothing is left in
    counts nothing, the same as no row: every reader sums)."""
    sql = ("SELECT client_id, account_id, platform, minute, messages, likes, reposts, follows, from_others, "
           "brand_replies, inbound, answered, breached, cancelled FROM activity_minutely FINAL "
           f"WHERE ({where}) AND messages + inbound + likes + reposts + follows + from_others + brand_replies > 0")
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


def stored_keys(client: StoreClient) -> Iterator[list[tuple[str, str, str, str]]]:
    """``interactions FINAL``'s keys (its sort key), one account at a time: a page is one
    account's, so a million-row table never sits in memory at once."""
    accounts = client.query("SELECT DISTINCT client_id, account_id FROM interactions").result_rows
    for c, a in sorted((str(c), str(a)) for c, a in accounts):
        rows = client.query("SELECT client_id, account_id, platform, event_id FROM interactions FINAL "
                            f"WHERE {account_where(c, a)}").result_rows
        yield [tuple(str(v) for v in r) for r in rows]  # type: ignore[misc]


def dead_letter_count(client: StoreClient) -> int:
    return int(client.query("SELECT count() FROM raw_events FINAL WHERE outcome = 'dead'").result_rows[0][0])
