"""`rapport report`: per client and tracked account, connections beside vanity, from the store.

Every figure is one of the catalogue (streams/figures.py; docs/metrics.md lists what each
one means), the same definitions the board and Grafana use. A client's line is computed
over all its accounts' rows (``GROUP BY ... WITH ROLLUP``): counts are the sum over its
accounts, as shared/README.md asks, and response-time quantiles are those of all its
answered messages. ``--since``/``--until`` bound the figures that have a time column
(inclusive, as Grafana's time range is); those of the state as it stands now ignore them.

Mounted on the CLI by :func:`register_report`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
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


def render(report: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Rapport report: connections beside vanity", expand=False)
    heads = ("client / account", "threads", "convs", "turns", "returning", "inbound", "answered",
             "in SLA", "1st resp p50", "p90", "business p50", "p90", "unanswered", "open alerts", "breached",
             "likes", "reposts", "follows")
    for head in heads:
        table.add_column(head, justify="left" if head == "client / account" else "right")

    def cells(name: str, fig: dict[str, Any], style: str = "") -> list[str]:
        counts = ("threads", "conversations", "turns", "returning_people", "inbound", "answered")
        times = ("first_response_median_s", "first_response_p90_s", "first_response_business_median_s",
                 "first_response_business_p90_s")
        tail = ("unanswered", "alerts_open", "alerts_breached", "likes", "reposts", "follows")
        rate = fig["reply_rate_in_sla"]
        return [f"[{style}]{name}[/{style}]" if style else name, *(f"{fig[c]:,}" for c in counts),
                "-" if rate is None else f"{rate:.0%}", *(_duration(fig[t]) for t in times),
                *(f"{fig[c]:,}" for c in tail)]

    for entry in report:
        table.add_row(*cells(entry["client_id"], entry, "bold"))
        for acc in entry["accounts"]:
            table.add_row(*cells(f"  {acc['account_id']}", acc))
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


def register_report(app: typer.Typer) -> None:
    """Mount ``rapport report`` on the CLI app."""

    @app.command()
    def report(
        client: Annotated[str | None, typer.Option("--client", help="Only this client id.")] = None,
        fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data dir (default .rapport/).")] = None,
        clients: Annotated[Path | None, typer.Option("--clients", help="Clients file (TOML).")] = None,
        since: Annotated[str | None, typer.Option(
            "--since", help="Range start, ISO 8601 (UTC unless it names a zone); inclusive.")] = None,
        until: Annotated[str | None, typer.Option(
            "--until", help="Range end, ISO 8601 (UTC unless it names a zone); inclusive.")] = None,
    ) -> None:
        """Per client and account: threads, conversations, turns, returning people, inbound,
        answered, reply rate within SLA, first response (wall and business), unanswered, alerts,
        and vanity signals beside them (docs/metrics.md defines each)."""
        from streams.cli import _friendly, _settings
        from streams.errors import ConfigError

        with _friendly():
            if fmt not in ("table", "json"):
                raise ConfigError(f"--format must be table or json, not {fmt!r}")
            run_report(_settings(data_dir, clients), client, fmt, Console(stderr=True),
                       _instant(since, "--since"), _instant(until, "--until"))


def _instant(text: str | None, option: str) -> datetime | None:
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
