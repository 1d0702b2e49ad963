"""The three dashboards: Agency overview, Client board, Pipeline health.

Fixed uids and panel ids, so the rendered JSON is the same on every run and links stay valid.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from streams.clients import PLATFORMS
from streams.grafana import sql
from streams.grafana.panels import (
    bar_panel,
    custom_variable,
    query_variable,
    series_panel,
    stat_panel,
    table_panel,
)

AGENCY_UID = "rapport-agency"
CLIENT_UID = "rapport-client"
PIPELINE_UID = "rapport-pipeline"
TAGS = ["rapport"]
_RED_WHEN_ANY = ((None, "green"), (1, "red"))


def _base(title: str, uid: str, description: str, time_from: str, refresh: str) -> dashboard.Dashboard:
    links: list[cogbuilder.Builder[dm.DashboardLink]] = [
        dashboard.DashboardLink(t).type(dm.DashboardLinkType.LINK).url(f"/d/{u}").icon("dashboard")
             .include_vars(True).keep_time(True).target_blank(False).as_dropdown(False).tags([]).tooltip(t)
             for t, u in (("Agency overview", AGENCY_UID), ("Client board", CLIENT_UID),
                          ("Pipeline health", PIPELINE_UID)) if u != uid]
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(TAGS).editable()
            .time(time_from, "now").refresh(refresh).timezone("browser").links(links)
            .tooltip(dm.DashboardCursorSync.CROSSHAIR))


def _scope(board: dashboard.Dashboard) -> dashboard.Dashboard:
    return (board.with_variable(query_variable("client", "Client", sql.VAR_CLIENT))
            .with_variable(query_variable("account", "Account", sql.VAR_ACCOUNT))
            .with_variable(query_variable("platform", "Platform", sql.VAR_PLATFORM)))


def _numbered(board: dashboard.Dashboard, panels: list[object]) -> dashboard.Dashboard:
    for number, panel in enumerate(panels, start=1):
        if isinstance(panel, dashboard.Row):
            board = board.with_row(panel.id(number))
        else:
            board = board.with_panel(panel.id(number))  # type: ignore[attr-defined]
    return board


def agency_overview() -> dashboard.Dashboard:
    board = _scope(_base("Rapport · Agency overview", AGENCY_UID,
                         "Per client: connections (real exchanges, people who come back) beside vanity counts.",
                         "now/d", "1m"))
    return _numbered(board, [
        stat_panel("Conversations", sql.CONVERSATIONS,
                   description="Conversations started in the time range (default: today)."),
        stat_panel("Returning people", sql.RETURNING,
                   description="People who talked with an account in two or more threads (all time)."),
        stat_panel("Reply rate within SLA", sql.RESPONSE_STATS, unit="percentunit", decimals=1,
                   description="Inbound messages answered by their deadline / inbound messages due in the range."),
        stat_panel("First response (business time)", sql.RESPONSE_STATS, unit="s", width=6,
                   description="Median and p90 first response, in the clients' business hours."),
        stat_panel("Unanswered now", sql.RESPONSE_STATS, thresholds=_RED_WHEN_ANY, width=6,
                   description="Inbound messages without an answer; breached ones are past their SLA."),
        table_panel("Clients", sql.CLIENTS_TABLE, overrides=[
            ("reply_rate_in_sla", {"unit": "percentunit", "decimals": 1}),
            ("first_response_business_median_s", {"unit": "s", "displayName": "median first response"}),
            ("first_response_business_p90_s", {"unit": "s", "displayName": "p90 first response"}),
            ("breached", {"thresholds": {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "red", "value": 1}]},
                "custom.cellOptions": {"type": "color-background"}}),
        ], description="Every figure per client; conversations and vanity in the time range."),
        bar_panel("Connections vs vanity", sql.CONNECTIONS_VS_VANITY, x_field="client_id",
                  description="Conversations beside likes, reposts and follows in the time range."),
        series_panel("Inbound and answered within SLA", sql.INBOUND_SERIES,
                     description="Inbound messages per interval of receipt; messages due and answered within "
                                 "SLA per interval of their deadline (the catalogue's inbound, due, answered_in_sla)."),
    ])


def client_board() -> dashboard.Dashboard:
    board = _scope(_base("Rapport · Client board", CLIENT_UID,
                         "One client's queue, threads, response times and the people who come back.",
                         "now-24h", "30s"))
    return _numbered(board, [
        table_panel("Unanswered queue", sql.UNANSWERED_QUEUE, height=10, overrides=[
            ("age_s", {"unit": "s", "displayName": "age"}),
            ("due_in_s", {"unit": "s", "displayName": "due in (negative: overdue by)", "thresholds": {
                "mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 0}]},
                "custom.cellOptions": {"type": "color-text"}}),
            ("link", {"links": [{"title": "open", "url": "${__value.raw}", "targetBlank": True}]}),
        ], description="Inbound messages without an answer, most urgent first (all time)."),
        table_panel("Active threads", sql.ACTIVE_THREADS, width=12,
                    description="Threads with activity in the time range."),
        bar_panel("Response-time distribution", sql.RESPONSE_TIMES, x_field="first_response",
                  description="First response in business time, messages received in the range."),
        table_panel("Top returning people", sql.TOP_RETURNING, width=12,
                    description="People with conversations in two or more threads (all time)."),
        series_panel("Conversations started per hour", sql.CONVERSATIONS_PER_HOUR, stack=True,
                     description="By platform."),
    ])


def pipeline_health() -> dashboard.Dashboard:
    board = (_base("Rapport · Pipeline health", PIPELINE_UID,
                   "Throughput, lag, dead letters and latencies of the Rapport pipeline.", "now-1h", "30s")
             .with_variable(query_variable("client", "Client", sql.VAR_CLIENT))
             .with_variable(custom_variable("platform", "Platform", list(PLATFORMS))))
    return _numbered(board, [
        table_panel("Stalled stages", sql.STALLED_STAGES, height=5,
                    description="Stages retrying a store or broker call right now (last two minutes), with the "
                                "store's error code: the pipeline is not moving while a row is here."),
        series_panel("Events/s by stage", sql.EVENTS_PER_STAGE, unit="ops",
                     description="normalize: payloads read; sink: rows stored."),
        series_panel("Records/s by topic", sql.RECORDS_PER_TOPIC, unit="ops"),
        series_panel("Consumer lag", sql.CONSUMER_LAG,
                     description="Records behind the high watermark, summed over partitions and workers."),
        series_panel("Dead letters per minute", sql.DLQ_RATE),
        table_panel("Latest dead letters", sql.LATEST_DEAD_LETTERS, height=8,
                    description="Why payloads could not be processed, newest first."),
        series_panel("Ingest → store latency", sql.INGEST_LATENCY, unit="s",
                     description="From an agent receiving a payload to its archive in the store (p50, p99)."),
        series_panel("Alert sweep lag", sql.SWEEP_LAG, unit="s",
                     description="How long after the deadline an open breach reached the store."),
    ])


DASHBOARDS = {"agency-overview": agency_overview, "client-board": client_board,
              "pipeline-health": pipeline_health}
