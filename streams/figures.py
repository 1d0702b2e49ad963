"""The catalogue of figures: each figure's name, meaning, grain and SQL, defined once.

`rapport report`, the terminal board and the Grafana panels all build their queries from
here, so a figure can not mean one thing on one surface and another elsewhere. The meaning
of every figure is that of shared/README.md ("Metrics"); docs/metrics.md lists the
catalogue as :func:`docs_table` writes it (tests/unit/test_figures.py keeps them equal).

A figure is an aggregate over one table read ``FINAL`` (ReplacingMergeTree: latest state,
deleted rows hidden). Its grain is the tracked account; a client's figure is the same
aggregate over all the client's rows (so counts are the sum over its accounts and
quantiles are those of all its messages). A surface supplies a :class:`Scope`: how it
names client, account and platform, and how it writes "this column is in the time range"
(the report and the board with query parameters, Grafana with ``$__timeFilter``). Figures
of a state "as it stands now" (people, the unanswered queue) have no time column: a range
does not apply to them.

Choices that were made once, here, for every surface:

* quantiles are exact with linear interpolation (``quantileExactInclusive``, Python's
  ``statistics.quantiles(method="inclusive")``): the median of an even count is the mean of
  the middle two;
* ``open`` is a message without an answer whose deadline has not passed, ``breached`` one
  past its deadline, ``unanswered`` both (the statuses of shared/README.md);
* reply rate within SLA is ``answered_in_sla / due``, both over the messages whose deadline
  falls in the range and has passed (``due_at <= now()``), cancelled ones excluded;
* vanity signals and the board's counts of stored interactions come from ``activity_minutely``
  (by the minute the event happened), which is an exact rollup of ``interactions FINAL``; only
  "stored in the last minute" reads ``interactions``, ``FINAL`` for the keys ingested then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Unit = Literal["count", "seconds", "ratio"]
RANGE = "{in_range}"
"""Where a figure's SQL takes the surface's time condition on the figure's time column."""


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    meaning: str
    table: str
    sql: str
    """An aggregate; ``{in_range}`` stands for the time condition on :attr:`time_column`."""
    time_column: str | None = None
    unit: Unit = "count"
    prefilter: str = ""
    """A condition every row the figure counts meets, on columns a plain (not ``FINAL``) read can
    prune by: a query of such figures alone reads ``FINAL`` only the keys with a row meeting it,
    the same count (a row counted meets it, so its key is among them)."""

    def expression(self, scope: Scope) -> str:
        cond = scope.in_range(self.time_column) if self.time_column else "1"
        return self.sql.replace(RANGE, cond)


def _count(cond: str = "") -> str:
    return f"countIf({cond + ' AND ' if cond else ''}{RANGE})"


def _quantile(q: float, column: str) -> str:
    return f"quantileExactInclusiveIf({q})({column}, {ANSWERED} AND {RANGE})"


_SIGNALS = "('like', 'repost', 'follow')"
_KEY = "client_id, account_id, platform, event_id"  # the sort key of the tables a prefilter reads
# Named by table: beside ``sumIf(likes, ...) AS likes`` a bare ``likes`` is that alias (184).
_ALL_KINDS = " + ".join(f"activity_minutely.{c}" for c in ("messages", "likes", "reposts", "follows"))
UNANSWERED = "status IN ('open', 'breached')"
"""Responses without an answer (open or breached): the ``unanswered`` figure and the queue."""
ALERT_OPEN = "status = 'breached'"
"""Alerts still open: the ``alerts_open`` figure and the unanswered-mention alert rule."""
OPEN_ITEM_ALERT_OPEN = "alert_status = 'breached'"
""":data:`ALERT_OPEN` on ``open_items``, which holds each unanswered message's alert as ``alert_status``."""
FROM_OTHERS = f"kind NOT IN {_SIGNALS} AND author_id != account_id AND author_id != ''"
"""Messages (not signals) by known persons other than the account: counted per minute into
``activity_minutely.from_others`` (streams/detect_io/queries.py), the ``from_others`` figure."""
BRAND_REPLIES = f"kind NOT IN {_SIGNALS} AND author_id = account_id AND kind != 'post'"
"""Messages by the account that are not posts: ``activity_minutely.brand_replies``, the figure."""
INGESTED_LAST_MINUTE = "ingested_at >= now64(3) - INTERVAL 60 SECOND"
ANSWERED = "status = 'answered'"
"""Answered responses: ``answered``, the first-response quantiles and their distribution."""
_DUE = f"status != 'cancelled' AND {RANGE} AND due_at <= now()"
_IN_SLA = f"status = 'answered' AND answered_at <= due_at AND {RANGE} AND due_at <= now()"

FIGURES: tuple[Figure, ...] = (
    Figure("threads", "threads (trees of posts linked by replies) whose first post is in the range",
           "threads", _count(), "first_at"),
    Figure("conversations", "real exchanges (thread, person): each addressed the other at least once, "
           "started in the range", "conversations", _count(), "started_at"),
    Figure("turns", "messages of those conversations by either side addressing the other",
           "conversations", f"sumIf(turns, {RANGE})", "started_at"),
    Figure("people", "persons who have had a conversation with the account (all time)", "connections",
           "count()"),
    Figure("returning_people", "persons with conversations in two or more distinct threads (all time)",
           "connections", "countIf(returning)"),
    Figure("inbound", "inbound messages (a person addressing the account) received in the range",
           "responses", _count(), "received_at"),
    Figure("answered", "inbound messages received in the range that have been answered",
           "responses", _count(ANSWERED), "received_at"),
    Figure("cancelled", "inbound messages received in the range, deleted before an answer",
           "responses", _count("status = 'cancelled'"), "received_at"),
    Figure("due", "inbound messages whose SLA deadline falls in the range and has passed (not cancelled)",
           "responses", f"countIf({_DUE})", "due_at"),
    Figure("answered_in_sla", "of those, the ones answered by their deadline", "responses",
           f"countIf({_IN_SLA})", "due_at"),
    Figure("reply_rate_in_sla", "answered_in_sla / due", "responses",
           f"countIf({_IN_SLA}) / nullIf(countIf({_DUE}), 0)", "due_at", "ratio"),
    Figure("first_response_median_s", "median first response (wall time) of the answered messages "
           "received in the range", "responses", _quantile(0.5, "response_s"), "received_at", "seconds"),
    Figure("first_response_p90_s", "90th percentile of the same", "responses",
           _quantile(0.9, "response_s"), "received_at", "seconds"),
    Figure("first_response_business_median_s", "median first response in the client's business time",
           "responses", _quantile(0.5, "response_business_s"), "received_at", "seconds"),
    Figure("first_response_business_p90_s", "90th percentile of the same", "responses",
           _quantile(0.9, "response_business_s"), "received_at", "seconds"),
    Figure("open", "inbound messages without an answer whose deadline has not passed (now)",
           "responses", "countIf(status = 'open')"),
    Figure("breached", "inbound messages without an answer past their deadline (now)",
           "responses", "countIf(status = 'breached')"),
    Figure("unanswered", "open + breached: inbound messages without an answer (now)",
           "responses", f"countIf({UNANSWERED})"),
    Figure("alerts_open", "SLA alerts opened in the range and still open (status breached)", "alerts",
           _count(ALERT_OPEN), "opened_at"),
    Figure("alerts_breached", "SLA alerts opened in the range, whatever became of them", "alerts",
           _count(), "opened_at"),
    Figure("alerts_resolved", "SLA alerts opened in the range and resolved by a late answer", "alerts",
           _count("status = 'resolved'"), "opened_at"),
    Figure("likes", "likes received, by the minute they happened", "activity_minutely",
           f"sumIf(likes, {RANGE})", "minute"),
    Figure("reposts", "reposts received, by the minute they happened", "activity_minutely",
           f"sumIf(reposts, {RANGE})", "minute"),
    Figure("follows", "follows received, by the minute they happened", "activity_minutely",
           f"sumIf(follows, {RANGE})", "minute"),
    Figure("interactions", "stored interactions of every kind (signals included), by the minute they happened",
           "activity_minutely", f"sumIf({_ALL_KINDS}, {RANGE})", "minute"),
    Figure("from_others", "messages (not signals) by known persons other than the account, by the minute "
           "they happened", "activity_minutely", f"sumIf(from_others, {RANGE})", "minute"),
    Figure("brand_replies", "messages by the account that are not posts (replies, quotes, DMs, mentions), by "
           "the minute they happened", "activity_minutely", f"sumIf(brand_replies, {RANGE})", "minute"),
    Figure("ingested_last_minute", "interactions stored in the last 60 s of the wall clock (now)",
           "interactions", f"countIf({INGESTED_LAST_MINUTE})", prefilter=INGESTED_LAST_MINUTE),
)
BY_NAME: dict[str, Figure] = {f.name: f for f in FIGURES}

REPORT = ("threads", "conversations", "turns", "people", "returning_people", "inbound", "answered",
          "cancelled", "due", "answered_in_sla", "reply_rate_in_sla", "first_response_median_s",
          "first_response_p90_s", "first_response_business_median_s", "first_response_business_p90_s",
          "open", "breached", "unanswered", "alerts_open", "alerts_breached", "alerts_resolved",
          "likes", "reposts", "follows")
"""What `rapport report` shows (the board shows the same, and the stored-interaction totals)."""
TOTALS = ("interactions", "ingested_last_minute", "from_others", "brand_replies")
"""The board's stored-interaction counts, beside the report's figures."""


# --- scopes: how a surface filters -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Scope:
    """A surface's SQL for "these clients, accounts, platforms" and "this column in the range"."""

    where: str
    in_range: Callable[[str], str]
    parameters: dict[str, Any]


def _no_range(column: str) -> str:
    return "1"


def params_scope(client_id: str | None = None, account_id: str | None = None,
                 since: datetime | None = None, until: datetime | None = None) -> Scope:
    """The report's and the board's scope: values passed as query parameters.

    The range is inclusive at both ends, as Grafana's ``$__timeFilter`` is, so the same
    range gives the same figure on every surface.
    """
    conds: list[str] = []
    params: dict[str, Any] = {}
    if client_id:
        conds.append("client_id = {client:String}")
        params["client"] = client_id
    if account_id:
        conds.append("account_id = {account:String}")
        params["account"] = account_id
    parts = []
    if since is not None:
        parts.append("{col} >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')")
        params["since"] = round(since.timestamp() * 1000)
    if until is not None:
        parts.append("{col} <= fromUnixTimestamp64Milli({{until:Int64}}, 'UTC')")
        params["until"] = round(until.timestamp() * 1000)
    template = " AND ".join(parts)

    def in_range(column: str) -> str:
        return template.format(col=column) if template else "1"

    return Scope(" AND ".join(conds) or "1", in_range if template else _no_range, params)


GRAFANA_SCOPE = Scope(
    "client_id IN (${client:singlequote}) AND account_id IN (${account:singlequote}) "
    "AND platform IN (${platform:singlequote})",
    lambda column: f"$__timeFilter({column})", {})
"""Grafana's: dashboard variables, then the datasource's time macro (streams/grafana/macros.py)."""


# --- queries ---------------------------------------------------------------------------------

def tables_of(names: Sequence[str]) -> list[str]:
    """The tables the figures read, in catalogue order of first use."""
    out: list[str] = []
    for name in names:
        table = BY_NAME[name].table
        if table not in out:
            out.append(table)
    return out


def table_sql(table: str, names: Sequence[str], scope: Scope, group_by: Sequence[str] = (),
              rollup: bool = False) -> str:
    """One ``SELECT`` of the named figures (all of ``table``) grouped by ``group_by``."""
    figures = [BY_NAME[n] for n in names]
    wrong = [f.name for f in figures if f.table != table]
    if wrong:
        raise ValueError(f"figures {wrong} are not read from {table}")
    columns = [*group_by, *(f"{f.expression(scope)} AS {f.name}" for f in figures)]
    where = scope.where
    shared = {f.time_column for f in figures}
    if len(shared) == 1 and None not in shared:  # the range prunes too (same answer, less read)
        cond = scope.in_range(shared.pop())  # type: ignore[arg-type]
        if cond != "1":
            where = f"{where} AND {cond}"
    prefilters = {f.prefilter for f in figures}
    if len(prefilters) == 1 and "" not in prefilters:
        where = f"{where} AND ({_KEY}) IN (SELECT {_KEY} FROM {table} WHERE {where} AND {prefilters.pop()})"
    sql = f"SELECT {', '.join(columns)}\nFROM {table} FINAL\nWHERE {where}"
    if group_by:
        sql += f"\nGROUP BY {', '.join(group_by)}" + (" WITH ROLLUP" if rollup else "")
    return sql


def figures_sql(names: Sequence[str], scope: Scope, by: str | None = None) -> str:
    """The named figures in one query: one row in all, or one per ``by`` (e.g. ``client_id``).

    Figures of several tables are computed per table and joined on ``by``; a key missing
    from one table has that table's figures NULL (no rows: nothing to count).
    """
    tables = tables_of(names)
    if len(tables) == 1:
        return table_sql(tables[0], names, scope, (by,) if by else ())
    group = (by,) if by else ()
    ctes = [f"t{i} AS (\n{_indent(table_sql(t, [n for n in names if BY_NAME[n].table == t], scope, group))})"
            for i, t in enumerate(tables)]
    head = "WITH\n" + ",\n".join(ctes)
    if not by:
        cols = [f"t{tables.index(BY_NAME[n].table)}.{n} AS {n}" for n in names]
        joined = " CROSS JOIN ".join(f"t{i}" for i in range(len(tables)))
        return f"{head}\nSELECT {', '.join(cols)}\nFROM {joined}"
    # A key missing from a table: its figures NULL. Each table's row comes with NULL for the
    # other tables' figures and ``any`` (which skips NULL) keeps the one value per key. Not a
    # join against the keys of every table: ClickHouse inlines a CTE at each reference, so that
    # computed every table twice. Not the setting join_use_nulls either, which a read-only
    # user (Grafana's, the report's) may not change (164).
    parts = []
    for i, t in enumerate(tables):
        row = ", ".join(f"t{i}.{n} AS {n}" if BY_NAME[n].table == t else f"NULL AS {n}" for n in names)
        parts.append(f"SELECT t{i}.{by} AS {by}, {row} FROM t{i}")
    union = "\n    UNION ALL\n    ".join(parts)
    picked = ", ".join(f"any({n}) AS {n}" for n in names)
    return (f"{head}\nSELECT {by}, {picked}\nFROM (\n    {union})\nGROUP BY {by}\nORDER BY {by}")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def clean(name: str, value: Any) -> Any:
    """A figure's value as surfaces show it: counts as int, NaN/NULL quantiles and ratios as None."""
    unit = BY_NAME[name].unit
    if unit == "count":
        return int(value or 0)
    if value is None or value != value:  # NULL, or NaN: a quantile over no message
        return None
    return round(float(value), 6 if unit == "ratio" else 3)


# --- docs ------------------------------------------------------------------------------------

DOCS_BEGIN = "<!-- figures: generated by `python -m streams.figures`, do not edit -->"
DOCS_END = "<!-- /figures -->"


def docs_table() -> str:
    """The catalogue as docs/metrics.md lists it."""
    lines = [DOCS_BEGIN, "", "| figure | meaning | table (`FINAL`) | range applies to | SQL |", "|---|---|---|---|---|"]
    for f in FIGURES:
        sql = f.sql.replace(RANGE, "in_range").replace("|", "\\|")
        applies = f"`{f.time_column}`" if f.time_column else "now (no range)"
        lines.append(f"| `{f.name}` | {f.meaning} | `{f.table}` | {applies} | `{sql}` |")
    return "\n".join([*lines, "", DOCS_END])


def write_docs(path: str) -> bool:
    """Rewrite the generated section of ``path``; True when it changed."""
    from pathlib import Path

    doc = Path(path)
    text = doc.read_text()
    start, end = text.index(DOCS_BEGIN), text.index(DOCS_END) + len(DOCS_END)
    new = text[:start] + docs_table() + text[end:]
    doc.write_text(new)
    return new != text


if __name__ == "__main__":
    from pathlib import Path

    target = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
    print(f"{target}: {'updated' if write_docs(str(target)) else 'up to date'}")
