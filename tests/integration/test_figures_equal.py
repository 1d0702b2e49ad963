"""Every figure is the same on every surface, and the batch recomputation's.

Simulated traffic goes through a real worker into the store. For each client (and each
account), over the whole history and over a part of it, every figure shown by
`rapport report` (its JSON output), by the terminal board (its summary lines) and by every
Grafana figure panel (queries expanded and sent the way Grafana's datasource sends them)
must be equal, figure by figure, and equal to the same figure computed in Python from
:func:`streams.detect.recompute.recompute` over the stored interactions (streams/chaos/check.py).
"""

from __future__ import annotations

import math
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from rich.console import Console

from streams import figures
from streams.board.queries import read_board
from streams.board.render import summary_lines
from streams.chaos.check import diff, expected_rows, read_inputs, stored_rows
from streams.clients import PLATFORMS, load_clients
from streams.detect.recompute import recompute
from streams.detect.rows import AlertRow, ConnectionRow, ConversationRow, ResponseRow, ThreadRow
from streams.grafana import sql
from streams.grafana.macros import TimeContext, expand
from streams.ingest.publisher import Publisher
from streams.report import run_report
from streams.simulator.traffic import Simulator
from streams.store.client import connect
from tests.support.grafana_client import GrafanaClickHouse
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration
START_MS = 1_790_000_000_000  # September 2026: history, so deadlines follow event time
EVENTS = 3000
FIGURE_PANELS = (sql.CONVERSATIONS, sql.RETURNING, sql.RESPONSE_STATS, sql.CLIENTS_TABLE, sql.CONNECTIONS_VS_VANITY)
Range = tuple[datetime, datetime]


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def _quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between order statistics (``quantileExactInclusive``)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[round(q * 100) - 1]


def reference(clients: Any, client: Any, rng: Range) -> dict[tuple[str, str], dict[str, Any]]:
    """Every report figure per (client, account) and per (client, ''), from the recomputation."""
    by_key, changes = read_inputs(client)
    lo, hi = _ms(rng[0]), _ms(rng[1])
    now = time.time() * 1000

    def within(ms: int | None) -> bool:
        return ms is not None and lo <= ms <= hi

    rows: dict[tuple[str, str], dict[str, list[Any]]] = {}
    for c, acc in clients.accounts():
        msgs = by_key.get(f"{c.id}:{acc.account_id}", [])
        if not msgs:
            continue
        mine = [ch for ch in changes if ch.client_id in ("", c.id) and ch.account_id in ("", acc.account_id)]
        upd = recompute(c, acc.account_id, msgs, mine, max(m.created_at for m in msgs))
        got = {"threads": [r for r in upd.threads if not r.retracted],
               "conversations": [r for r in upd.conversations if not r.retracted],
               "connections": list(upd.connections), "responses": list(upd.responses), "alerts": list(upd.alerts),
               "interactions": msgs}
        for key in ((c.id, acc.account_id), (c.id, "")):
            bucket = rows.setdefault(key, {})
            for name, items in got.items():
                bucket.setdefault(name, []).extend(items)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, r in rows.items():
        th: list[ThreadRow] = r["threads"]
        cv: list[ConversationRow] = [x for x in r["conversations"] if within(x.started_at)]
        cn: list[ConnectionRow] = r["connections"]
        rs: list[ResponseRow] = r["responses"]
        al: list[AlertRow] = [a for a in r["alerts"] if within(a.opened_at)]
        received = [x for x in rs if within(x.received_at)]
        answered = [x for x in received if x.status == "answered"]
        due = [x for x in rs if x.status != "cancelled" and within(x.due_at) and x.due_at <= now]
        in_sla = [x for x in due if x.status == "answered" and x.answered_at is not None and x.answered_at <= x.due_at]
        signals = [m for m in r["interactions"] if within(m.created_at // 60_000 * 60_000)]
        wall = [x.response_s for x in answered if x.response_s is not None]
        business = [x.response_business_s for x in answered if x.response_business_s is not None]
        out[key] = {
            "threads": sum(1 for t in th if within(t.first_at)), "conversations": len(cv),
            "turns": sum(x.turns for x in cv), "people": len(cn), "returning_people": sum(1 for x in cn if x.returning),
            "inbound": len(received), "answered": len(answered),
            "cancelled": sum(1 for x in received if x.status == "cancelled"), "due": len(due),
            "answered_in_sla": len(in_sla), "reply_rate_in_sla": len(in_sla) / len(due) if due else None,
            "first_response_median_s": _quantile(wall, 0.5), "first_response_p90_s": _quantile(wall, 0.9),
            "first_response_business_median_s": _quantile(business, 0.5),
            "first_response_business_p90_s": _quantile(business, 0.9),
            "open": sum(1 for x in rs if x.status == "open"), "breached": sum(1 for x in rs if x.status == "breached"),
            "unanswered": sum(1 for x in rs if x.status in ("open", "breached")),
            "alerts_open": sum(1 for a in al if a.status == "breached"), "alerts_breached": len(al),
            "alerts_resolved": sum(1 for a in al if a.status == "resolved"),
            "likes": sum(1 for m in signals if m.kind == "like"),
            "reposts": sum(1 for m in signals if m.kind == "repost"),
            "follows": sum(1 for m in signals if m.kind == "follow"),
        }
    return out


def same(a: Any, b: Any) -> bool:
    """Equal figures: counts exactly, times and ratios to the report's rounding; no value is None/NaN."""
    def empty(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    if empty(a) or empty(b):
        return empty(a) and empty(b)
    return bool(float(a) == pytest.approx(float(b), abs=0.001))


def _publish(ns: Namespace) -> None:
    clients = load_clients(ns.settings.clients)
    pub = Publisher(ns.settings.model_copy(update={"publish_batch": 50}), ns.broker_url)
    for ev in Simulator(clients, seed=23, start_ms=START_MS).events(EVENTS):
        pub.add(ev.platform, orjson.dumps(ev.payload), ev.source, via_account=ev.via_account or "")
    pub.close()


def test_every_figure_is_equal_on_every_surface(namespace: Namespace, capsys: pytest.CaptureFixture[str]) -> None:
    ns = namespace
    _publish(ns)
    with ns.worker():
        ns.drain()
    clients = load_clients(ns.settings.clients)
    client = connect(ns.store_url, ns.settings)
    grafana = GrafanaClickHouse(ns.store_url, ns.settings.store_database)
    grafana.connect()
    try:
        assert not diff(expected_rows(clients, client), stored_rows(client)), "the store is not the recomputation"
        first, last = (t.replace(tzinfo=UTC) for t in
                       client.query("SELECT min(created_at), max(created_at) FROM interactions").result_rows[0])
        span = (last - first) / 3
        whole = (first.replace(microsecond=0) - timedelta(days=1), datetime.now(UTC).replace(microsecond=0)
                 + timedelta(days=1))
        part = ((first + span).replace(microsecond=0), (first + 2 * span).replace(microsecond=0))
        compared = 0
        for rng in (whole, part):
            want = reference(clients, client, rng)
            capsys.readouterr()
            run_report(ns.settings, None, "json", Console(stderr=True), rng[0], rng[1])
            report = orjson.loads(capsys.readouterr().out)
            lines: dict[tuple[str, str], dict[str, Any]] = {}
            for entry in report:
                lines[(entry["client_id"], "")] = entry
                for acc in entry["accounts"]:
                    lines[(entry["client_id"], acc["account_id"])] = acc
            assert set(lines) == set(want)
            for key, figs in want.items():  # the report is the recomputation
                for name, value in figs.items():
                    assert same(lines[key][name], value), (rng, key, name, lines[key][name], value)
                    compared += 1

            ctx = TimeContext(rng[0], rng[1], 3600)
            for c in clients.clients:
                accounts = [a.account_id for a in c.accounts if (c.id, a.account_id) in lines]
                for chosen, line in [(accounts, lines[(c.id, "")]),
                                     *(([a], lines[(c.id, a)]) for a in accounts)]:
                    variables = {"client": [c.id], "account": chosen, "platform": list(PLATFORMS)}
                    for query in FIGURE_PANELS:
                        rows = grafana.query(expand(query.sql, variables, ctx)).dicts()
                        assert len(rows) == 1, (query.key, c.id, chosen, rows)
                        for name in query.columns:
                            if name == "client_id":
                                assert rows[0][name] == c.id
                                continue
                            assert same(rows[0][name], line[name]), \
                                (rng, query.key, c.id, chosen, name, rows[0][name], line[name])
                            compared += 1
                    # a series of figures: summed over the range, each series is the figure
                    series = grafana.query(expand(sql.INBOUND_SERIES.sql, variables, ctx)).dicts()
                    for name in ("inbound", "due", "answered_in_sla"):
                        total = sum(int(r[name]) for r in series)
                        assert total == line[name], (rng, "inbound_series", c.id, chosen, name, total, line[name])
                        compared += 1

        # the board: all time, its summary lines show the report's figures
        board = read_board(client)
        capsys.readouterr()
        run_report(ns.settings, None, "json", Console(stderr=True))
        report = {e["client_id"]: e for e in orjson.loads(capsys.readouterr().out)}
        shown: dict[str, dict[str, str]] = {}
        for text in summary_lines(board, clients):
            fields = dict(part.split("=", 1) for part in text.split())
            if "client" in fields:
                shown.setdefault(fields.pop("client"), {}).update(fields)
        for c in clients.clients:
            for name, value in shown[c.id].items():
                name = {"per_min": "ingested_last_minute"}.get(name, name)
                if name in figures.REPORT:
                    assert same(float(value), report[c.id][name]), (c.id, name, value, report[c.id][name])
                    compared += 1
        # the board's counts of stored interactions, from the interactions read back
        by_key, _ = read_inputs(client)
        signals = ("like", "repost", "follow")
        for c in clients.clients:
            msgs = [m for key, ms in by_key.items() if key.startswith(f"{c.id}:") for m in ms]
            want_totals = {
                "interactions": len(msgs),
                "from_others": sum(1 for m in msgs if m.kind not in signals and m.author_id not in ("", m.account_id)),
                "brand_replies": sum(1 for m in msgs if m.kind not in signals and m.author_id == m.account_id
                                     and m.kind != "post"),
            }
            for name, value in want_totals.items():
                assert int(shown[c.id][name]) == value, (c.id, name, shown[c.id][name], value)
                compared += 1
        latest = last
        recent = {e["client_id"]: e for e in board.recent}
        capsys.readouterr()
        run_report(ns.settings, None, "json", Console(stderr=True), latest - timedelta(hours=1), latest)
        hour = {e["client_id"]: e for e in orjson.loads(capsys.readouterr().out)}
        for cid, entry in hour.items():
            for name in ("inbound", "answered", "alerts_breached"):
                assert recent[cid][name] == entry[name], (cid, name)
        assert compared > 1000, compared
    finally:
        client.close()
