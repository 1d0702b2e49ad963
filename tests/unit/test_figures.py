"""The catalogue of figures (streams/figures.py) is the only definition, and docs/metrics.md lists it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams import figures
from streams.grafana import sql

REPO = Path(__file__).resolve().parents[2]


def test_docs_list_the_catalogue() -> None:
    text = (REPO / "docs" / "metrics.md").read_text()
    start, end = text.index(figures.DOCS_BEGIN), text.index(figures.DOCS_END) + len(figures.DOCS_END)
    assert text[start:end] == figures.docs_table(), "docs/metrics.md is stale: run `python -m streams.figures`"


def test_every_figure_aggregate_is_defined_in_the_catalogue_only() -> None:
    """Surfaces build figures from the catalogue; no other module aggregates responses or
    connections by status (detect_io writes the per-minute rollup, which is storage, and
    streams/chaos/check.py re-aggregates it from scratch as the truth the rollup is held to)."""
    pattern = re.compile(r"quantileExact\w*\(|countIf\(status|countIf\(returning")
    not_surfaces = {"streams/figures.py", "streams/chaos/check.py"}
    offenders = [p.relative_to(REPO).as_posix() for p in (REPO / "streams").rglob("*.py")
                 if pattern.search(p.read_text()) and p.relative_to(REPO).as_posix() not in not_surfaces
                 and "detect_io" not in p.parts]
    assert offenders == []


def test_grafana_figure_panels_read_catalogue_figures() -> None:
    for query in (sql.CONVERSATIONS, sql.RETURNING, sql.RESPONSE_STATS, sql.CLIENTS_TABLE, sql.CONNECTIONS_VS_VANITY):
        names = [c for c in query.columns if c != "client_id"]
        assert set(names) <= set(figures.BY_NAME), query.key
        for name in names:
            assert figures.BY_NAME[name].expression(figures.GRAFANA_SCOPE) in query.sql, (query.key, name)


def test_report_and_board_figures_are_catalogued() -> None:
    assert set(figures.REPORT) | set(figures.TOTALS) <= set(figures.BY_NAME)
    assert len(figures.BY_NAME) == len(figures.FIGURES)


def test_scopes_write_the_range_per_figure() -> None:
    scope = figures.params_scope("acme", "acme_official", datetime(2026, 11, 1, tzinfo=UTC),
                                 datetime(2026, 12, 1, tzinfo=UTC))
    assert scope.parameters == {"client": "acme", "account": "acme_official",
                                "since": 1_793_491_200_000, "until": 1_796_083_200_000}
    sql_text = figures.table_sql("responses", ["inbound", "due", "unanswered"], scope)
    assert "countIf(received_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')" in sql_text
    assert "due_at <= fromUnixTimestamp64Milli({until:Int64}, 'UTC') AND due_at <= now()" in sql_text
    assert "countIf(status IN ('open', 'breached')) AS unanswered" in sql_text  # no range: a state now
    assert figures.params_scope().where == "1" and figures.params_scope().in_range("x") == "1"
    # one time column shared by every figure read: the range prunes in WHERE too
    assert "WHERE client_id = {client:String} AND account_id = {account:String} AND started_at >=" in \
        figures.table_sql("conversations", ["conversations", "turns"], scope)
    with pytest.raises(ValueError, match="not read from"):
        figures.table_sql("responses", ["likes"], scope)


def test_clean_gives_surface_values() -> None:
    assert figures.clean("inbound", None) == 0
    assert figures.clean("first_response_median_s", float("nan")) is None
    assert figures.clean("reply_rate_in_sla", None) is None
    assert figures.clean("first_response_p90_s", 12.34567) == 12.346


def test_report_range_options_are_iso_times() -> None:
    from typer.testing import CliRunner

    from streams.cli import app
    from streams.report import parse_instant

    assert parse_instant("2026-11-01", "--since") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_instant("2026-11-01T09:00:00+01:00", "--since") == datetime(2026, 11, 1, 8, tzinfo=UTC)
    result = CliRunner().invoke(app, ["report", "--since", "yesterday", "--clients", "clients.example.toml"])
    assert result.exit_code == 2
    assert "--since must be an ISO 8601 time" in result.output
