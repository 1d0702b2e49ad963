"""`rapport report`: per client and tracked account, connections beside vanity, from the store.

Every figure is read from the detection tables and ``interactions`` with ``FINAL``
(docs/metrics.md says what each one means). A client's line is computed over all its
accounts' rows (``GROUP BY ... WITH ROLLUP``): counts are the sum over its accounts, as
shared/README.md asks, and response-time quantiles are those of all its answered messages.

Quantiles are exact with linear interpolation between order statistics
(``quantileExactInclusive``, the same as Python's ``statistics.quantiles(method="inclusive")``).

Mounted on the CLI by :func:`register_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from clickhouse_connect.driver.client import Client as StoreClient
from rich.console import Console
from rich.table import Table

from streams.settings import Settings
from streams.store.client import store_for

# One query per table, grouped by client and account WITH ROLLUP (account_id '' is the
# client's line; the grand total row, client_id '', is dropped).
QUERIES: dict[str, str] = {
    "threads": "SELECT client_id, account_id, count() AS threads FROM threads FINAL {where} "
               "GROUP BY client_id, account_id WITH ROLLUP",
    "conversations": "SELECT client_id, account_id, count() AS conversations, sum(turns) AS turns "
                     "FROM conversations FINAL {where} GROUP BY client_id, account_id WITH ROLLUP",
    "connections": "SELECT client_id, account_id, count() AS people, countIf(returning) AS returning_people "
                   "FROM connections FINAL {where} GROUP BY client_id, account_id WITH ROLLUP",
    "responses": """
        SELECT client_id, account_id, count() AS inbound,
               countIf(status = 'answered') AS answered,
               countIf(status = 'answered' AND answered_at <= due_at) AS answered_in_sla,
               countIf(status = 'open') AS pending,
               countIf(status = 'cancelled') AS cancelled,
               quantileExactInclusiveIf(0.5)(response_s, status = 'answered') AS first_response_median_s,
               quantileExactInclusiveIf(0.9)(response_s, status = 'answered') AS first_response_p90_s,
               quantileExactInclusiveIf(0.5)(response_business_s, status = 'answered')
                   AS first_response_business_median_s,
               quantileExactInclusiveIf(0.9)(response_business_s, status = 'answered')
                   AS first_response_business_p90_s
        FROM responses FINAL {where} GROUP BY client_id, account_id WITH ROLLUP""",
    "alerts": "SELECT client_id, account_id, countIf(status = 'breached') AS alerts_open, count() AS alerts_breached, "
              "countIf(status = 'resolved') AS alerts_resolved FROM alerts FINAL {where} "
              "GROUP BY client_id, account_id WITH ROLLUP",
    "signals": "SELECT client_id, account_id, countIf(kind = 'like') AS likes, countIf(kind = 'repost') AS reposts, "
               "countIf(kind = 'follow') AS follows FROM interactions FINAL {where} "
               "GROUP BY client_id, account_id WITH ROLLUP",
}

COUNTS = ("threads", "conversations", "turns", "people", "returning_people", "inbound", "answered",
          "answered_in_sla", "pending", "cancelled", "alerts_open", "alerts_breached", "alerts_resolved",
          "likes", "reposts", "follows")
TIMES = ("first_response_median_s", "first_response_p90_s", "first_response_business_median_s",
         "first_response_business_p90_s")
FIELDS = (*COUNTS, *TIMES)


def collect(client: StoreClient, client_id: str | None = None) -> list[dict[str, Any]]:
    """One object per client: its figures, and the same per account under ``accounts``."""
    where = "WHERE client_id = {client:String}" if client_id else ""
    params = {"client": client_id} if client_id else {}
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for sql in QUERIES.values():
        result = client.query(sql.format(where=where), parameters=params)
        for row in result.result_rows:
            values = dict(zip(result.column_names, row, strict=True))
            key = (values.pop("client_id"), values.pop("account_id"))
            if not key[0]:
                continue  # the grand total
            lines.setdefault(key, {}).update(values)
    out: dict[str, dict[str, Any]] = {}
    for (cid, aid), values in sorted(lines.items()):
        figures = {f: _clean(f, values.get(f), values) for f in FIELDS}
        entry = out.setdefault(cid, {"client_id": cid, "accounts": []})
        if aid:
            entry["accounts"].append({"account_id": aid, **figures})
        else:
            entry.update(figures)
    return list(out.values())


def _clean(name: str, value: Any, values: dict[str, Any]) -> Any:
    if name in TIMES:
        # quantile*If over no answered message yields NaN (or 0): there is no figure.
        if not values.get("answered") or value is None or value != value:
            return None
        return round(float(value), 3)
    return int(value or 0)




def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def render(report: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Rapport report: connections beside vanity", expand=False)
    heads = ("client / account", "threads", "convs", "turns", "returning", "inbound", "answered",
             "1st resp p50", "p90", "business p50", "p90", "open alerts", "breached", "likes", "reposts",
             "follows")
    for head in heads:
        table.add_column(head, justify="left" if head == "client / account" else "right")

    def cells(name: str, fig: dict[str, Any], style: str = "") -> list[str]:
        counts = ("threads", "conversations", "turns", "returning_people", "inbound", "answered")
        tail = ("alerts_open", "alerts_breached", "likes", "reposts", "follows")
        return [f"[{style}]{name}[/{style}]" if style else name, *(f"{fig[c]:,}" for c in counts),
                *(_duration(fig[t]) for t in TIMES), *(f"{fig[c]:,}" for c in tail)]

    for entry in report:
        table.add_row(*cells(entry["client_id"], entry, "bold"))
        for acc in entry["accounts"]:
            table.add_row(*cells(f"  {acc['account_id']}", acc))
    console.print(table)


def run_report(settings: Settings, client_id: str | None, fmt: str, console: Console) -> list[dict[str, Any]]:
    with store_for(settings, console) as client:
        report = collect(client, client_id)
    if fmt == "json":
        print(orjson.dumps(report).decode(), flush=True)
    else:
        render(report, Console())
    return report


def register_report(app: typer.Typer) -> None:
    """Mount ``rapport report`` on the CLI app."""

    @app.command()
    def report(
        client: Annotated[str | None, typer.Option("--client", help="Only this client id.")] = None,
        fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data dir (default .rapport/).")] = None,
        clients: Annotated[Path | None, typer.Option("--clients", help="Clients file (TOML).")] = None,
    ) -> None:
        """Per client and account: threads, conversations, turns, returning people, inbound,
        answered, first response (wall and business), alerts, and vanity signals beside them."""
        from streams.cli import _friendly, _settings
        from streams.errors import ConfigError

        with _friendly():
            if fmt not in ("table", "json"):
                raise ConfigError(f"--format must be table or json, not {fmt!r}")
            run_report(_settings(data_dir, clients), client, fmt, Console(stderr=True))
