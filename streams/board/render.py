"""Rendering board data as rich tables and as plain summary lines."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from streams.board.queries import BoardData
from streams.clients import ClientsFile


def render(data: BoardData, clients: ClientsFile, elapsed_s: float) -> Group:
    totals = {row["client_id"]: row for row in data.detection}
    table = Table(title=f"Rapport: connections, not vanity  ({elapsed_s:,.0f}s)", expand=True)
    for col in ("client", "interactions", "per min", "from others", "brand replies",
                "likes", "reposts", "follows"):
        table.add_column(col, justify="left" if col == "client" else "right")
    for client in clients.clients:
        row = totals.get(client.id, {})
        table.add_row(client.name or client.id, *(f"{int(row.get(k, 0)):,}" for k in (
            "interactions", "ingested_last_minute", "from_others", "brand_replies", "likes", "reposts", "follows")))
    recent_events = Table(title="last events", expand=True)
    # Fixed widths for the short columns (the longest platform, "instagram", and kind,
    # "mention"), so a long text takes the rest of the line instead of squeezing them.
    recent_events.add_column("time", width=8, no_wrap=True)
    recent_events.add_column("client", min_width=6, max_width=12, overflow="ellipsis", no_wrap=True)
    recent_events.add_column("platform", width=9, overflow="ellipsis", no_wrap=True)
    recent_events.add_column("kind", width=7, overflow="ellipsis", no_wrap=True)
    recent_events.add_column("author", min_width=10, max_width=22, overflow="ellipsis", no_wrap=True)
    recent_events.add_column("text", ratio=1, overflow="ellipsis", no_wrap=True)
    for ev in data.last_events:
        at = ev.get("created_at")
        recent_events.add_row(at.strftime("%H:%M:%S") if at is not None else "", ev["client_id"], ev["platform"],
                              ev["kind"], ev["author_handle"] or ev["author_id"] or "?", ev["text"])
    detected = {row["client_id"]: row for row in data.detection}
    recent = {row["client_id"]: row for row in data.recent}
    conn = Table(title="connections (detected from the stored interactions)", expand=True)
    for col in ("client", "threads", "conversations", "turns", "returning people", "inbound", "answered",
                "1st response p50", "open alerts", "breached", "inbound last hour"):
        if col == "client":  # names on one line; the figures' headers may wrap
            conn.add_column(col, min_width=14, max_width=24, no_wrap=True, overflow="ellipsis")
        else:
            conn.add_column(col, justify="right")
    for client in clients.clients:
        d = detected.get(client.id, {})
        r = recent.get(client.id, {})
        conn.add_row(client.name or client.id, *(f"{int(d.get(k) or 0):,}" for k in (
            "threads", "conversations", "turns", "returning_people", "inbound", "answered")),
            _minutes(d.get("first_response_median_s")), f"{int(d.get('alerts_open') or 0):,}",
            f"{int(d.get('alerts_breached') or 0):,}", f"{int(r.get('inbound') or 0):,}")
    pipe = Table(title="pipeline (last hour)", expand=True)
    for col in ("stage", "events in", "dead-lettered", "skipped", "lag (records)"):
        pipe.add_column(col, justify="right")
    for p in data.pipeline:
        pipe.add_row(p["stage"], f"{int(p['events_in']):,}", f"{int(p['dead_lettered']):,}",
                     f"{int(p['skipped']):,}", f"{int(p['lag']):,}")
    stalls = [Text(f"stalled: {p['stage']} on {p['worker']} retrying"
                   f"{_code(p)}: {p['detail']}", style="bold red")
              for p in data.stalls]
    if data.unreadable:
        stalls.append(Text(f"figures unreadable while stalled: {data.unreadable}", style="red"))
    return Group(table, conn, pipe, *stalls, recent_events)


def _code(stall: dict[str, object]) -> str:
    code = stall.get("error_code")
    return f" (store error code {code})" if code else ""


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def summary_lines(data: BoardData, clients: ClientsFile) -> list[str]:
    totals = detected = {row["client_id"]: row for row in data.detection}
    lines = []
    for client in clients.clients:
        row = totals.get(client.id, {})
        lines.append(
            f"client={client.id} interactions={int(row.get('interactions', 0))} "
            f"per_min={int(row.get('ingested_last_minute', 0))} from_others={int(row.get('from_others', 0))} "
            f"brand_replies={int(row.get('brand_replies', 0))} likes={int(row.get('likes', 0))} "
            f"reposts={int(row.get('reposts', 0))} follows={int(row.get('follows', 0))}"
        )
        d = detected.get(client.id, {})
        lines.append(
            f"client={client.id} threads={int(d.get('threads') or 0)} "
            f"conversations={int(d.get('conversations') or 0)} turns={int(d.get('turns') or 0)} "
            f"returning_people={int(d.get('returning_people') or 0)} inbound={int(d.get('inbound') or 0)} "
            f"answered={int(d.get('answered') or 0)} alerts_open={int(d.get('alerts_open') or 0)} "
            f"alerts_breached={int(d.get('alerts_breached') or 0)}"
        )
    for p in data.pipeline:
        lines.append(f"stage={p['stage']} events_in={int(p['events_in'])} lag={int(p['lag'])} "
                     f"dead_lettered={int(p['dead_lettered'])} skipped={int(p['skipped'])}")
    for p in data.stalls:
        lines.append(f"stage={p['stage']} state=retrying worker={p['worker']} "
                     f"error_code={int(p.get('error_code') or 0)} detail={p['detail']}")
    return lines
