"""`rapport report`: per client and tracked account, connections beside vanity, from the store.

Every figure is one of the catalogue (streams/figures.py; docs/metrics.md lists what each
one means), the same definitions the board and Grafana use. A client's line is computed
over all its accounts' rows (``GROUP BY ... WITH ROLLUP``): counts are the sum over its
accounts, as shared/README.md asks, and response-time quantiles are those of all its
answered messages. ``--since``/``--until`` bound the figures that have a time column
(inclusive, as Grafana's time range is); those of the state as it stands now ignore them.

The command's options are declared in :mod:`streams.cli`, like every command's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client as StoreClient
from rich.console import Console
from rich.table import Table

from streams import figures
from streams.settings import Settings
from streams.store.client import store_for


def collect(client: StoreClient, client_id: str | None = None, since: datetime | None = None,
            until: datetime | None = None, names: tuple[str, ...] = figures.REPORT) -> list[dict[str, Any]]:
    """One object per client: its figures, and the same per account under ``accounts``.

    One query per table of the catalogue (streams/figures.py), grouped by client and
    account ``WITH ROLLUP``: account ``''`` is the client's line, the grand total (client
    ``''``) is dropped.
    """
    scope = figures.params_scope(client_id, since=since, until=until)
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for table in figures.tables_of(names):
        mine = [n for n in names if figures.BY_NAME[n].table == table]
        sql = figures.table_sql(table, mine, scope, ("client_id", "account_id"), rollup=True)
        result = client.query(sql, parameters=scope.parameters)
        for row in result.result_rows:
            values = dict(zip(result.column_names, row, strict=True))
            key = (values.pop("client_id"), values.pop("account_id"))
            if not key[0]:
                continue  # the grand total
            lines.setdefault(key, {}).update(values)
    out: dict[str, dict[str, Any]] = {}
    for (cid, aid), values in sorted(lines.items()):
        shown = {n: figures.clean(n, values.get(n)) for n in names}
        entry = out.setdefault(cid, {"client_id": cid, "accounts": []})
        if aid:
            entry["accounts"].append({"account_id": aid, **shown})
        else:
            entry.update(shown)
    return list(out.values())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


# Two tables of at most ten figures each, so both fit a 120-column terminal.
_TABLES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("connections", (("threads", "threads"), ("convs", "conversations"), ("turns", "turns"),
                     ("returning", "returning_people"), ("inbound", "inbound"), ("answered", "answered"),
                     ("in SLA", "reply_rate_in_sla"), ("unanswered", "unanswered"), ("breached", "breached"))),
    ("first response, alerts, vanity", (
        ("p50", "first_response_median_s"), ("p90", "first_response_p90_s"),
        ("business p50", "first_response_business_median_s"), ("business p90", "first_response_business_p90_s"),
        ("open alerts", "alerts_open"), ("alerts ever", "alerts_breached"), ("likes", "likes"),
        ("reposts", "reposts"), ("follows", "follows"))),
)


def _cell(name: str, value: Any) -> str:
    unit = figures.BY_NAME[name].unit
    if unit == "seconds":
        return _duration(value)
    if unit == "ratio":
        return "-" if value is None else f"{value:.0%}"
    return f"{value:,}"


def render(report: list[dict[str, Any]], console: Console) -> None:
    names = [e["client_id"] for e in report] + [f"  {a['account_id']}" for e in report for a in e["accounts"]]
    width = min(max((len(n) for n in names), default=8), 24)
    for title, columns in _TABLES:
        table = Table(title=f"Rapport report: {title}", expand=False)
        table.add_column("client / account", min_width=width, no_wrap=True, overflow="ellipsis")
        for head, _ in columns:
            table.add_column(head, justify="right")
        for entry in report:
            table.add_row(f"[bold]{entry['client_id']}[/bold]", *(_cell(n, entry[n]) for _, n in columns))
            for acc in entry["accounts"]:
                table.add_row(f"  {acc['account_id']}", *(_cell(n, acc[n]) for _, n in columns))
        console.print(table)


def run_report(settings: Settings, client_id: str | None, fmt: str, console: Console,
               since: datetime | None = None, until: datetime | None = None) -> list[dict[str, Any]]:
    with store_for(settings, console) as client:
        report = collect(client, client_id, since, until)
    if fmt == "json":
        print(orjson.dumps(report).decode(), flush=True)
    else:
        render(report, Console())
    return report


def parse_instant(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time; naive ones are UTC, like every time in the store."""
    from datetime import UTC

    from streams.errors import ConfigError

    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} must be an ISO 8601 time (2026-11-01 or 2026-11-01T09:00Z), "
                          f"not {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
