"""Batched, idempotent inserts into the store.

Rows arrive as sequences in column order (lists, or tuples such as
:class:`~streams.contracts.archive.ArchiveRow`) with times as epoch ms; what the columns
are comes from the table's spec (:mod:`streams.contracts.tables`, :meth:`TableWriter.for_spec`). They are sent as
``JSONCompactEachRow`` bytes that ClickHouse parses itself: measured ~2x faster than
clickhouse-connect serialising every value in Python (shared/notes/throughput.md).
ClickHouse refuses an insert touching more than ``max_partitions_per_insert_block``
(100) partitions, and backfills span years, so rows are grouped by month and packed into
inserts of at most :data:`MONTHS_PER_INSERT` months and ``batch_size`` rows.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from streams.contracts.tables import TableSpec

log = logging.getLogger(__name__)

MONTHS_PER_INSERT = 90
_DAY_MS = 86_400_000
_month_of_day: dict[int, int] = {}


def month_of(ms: int) -> int:
    """``YYYYMM`` of an epoch-ms time (cached per day: it is on the hot path)."""
    day = ms // _DAY_MS
    month = _month_of_day.get(day)
    if month is None:
        d = datetime.fromtimestamp(day * 86_400, tz=UTC)
        month = _month_of_day[day] = d.year * 100 + d.month
    return month


class TableWriter:
    """Writes rows of one table; ``time_columns`` hold epoch ms, ``month_column`` partitions.

    Writers are made with :meth:`for_spec`; the constructor stays for tables of tests.
    """

    def __init__(self, client: Client, table: str, columns: Sequence[str], time_columns: Sequence[str],
                 month_column: str | None, batch_size: int) -> None:
        self.client = client
        self.table = table
        self.columns = list(columns)
        self.time_idx = [self.columns.index(c) for c in time_columns]
        self.month_idx = self.columns.index(month_column) if month_column else None
        self.batch_size = batch_size

    @classmethod
    def for_spec(cls, client: Client, spec: TableSpec, batch_size: int) -> TableWriter:
        """A writer of the table ``spec`` describes: its columns, time columns and month column."""
        return cls(client, spec.name, spec.columns, spec.time_columns, spec.month_column, batch_size)

    def encode(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """JSONCompactEachRow bytes; ms become decimal seconds, which ClickHouse parses exactly."""
        out = bytearray()
        idx = self.time_idx
        for row in rows:
            if idx or type(row) is not list:  # a copy: the caller's row stays; orjson refuses NamedTuples
                row = list(row)
                for i in idx:
                    v = row[i]
                    if v is not None:
                        row[i] = v // 1000 if v % 1000 == 0 else v / 1000
            out += orjson.dumps(row)
            out += b"\n"
        return bytes(out)

    def chunks(self, rows: Sequence[Sequence[Any]]) -> list[list[Sequence[Any]]]:
        """Rows packed into inserts by month and size."""
        if self.month_idx is None:
            return [list(rows[i:i + self.batch_size]) for i in range(0, len(rows), self.batch_size)]
        by_month: dict[int, list[Sequence[Any]]] = defaultdict(list)
        mi = self.month_idx
        for row in rows:
            by_month[month_of(row[mi])].append(row)
        out: list[list[Sequence[Any]]] = []
        current: list[Sequence[Any]] = []
        months = 0
        for month in sorted(by_month):
            group = by_month[month]
            if current and (months >= MONTHS_PER_INSERT or len(current) + len(group) > self.batch_size):
                out.append(current)
                current, months = [], 0
            for i in range(0, len(group), self.batch_size):
                piece = group[i:i + self.batch_size]
                if current and len(current) + len(piece) > self.batch_size:
                    out.append(current)
                    current, months = [], 0
                current.extend(piece)
            months += 1
        if current:
            out.append(current)
        return out

    def write(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert ``rows``; returns the number of insert calls made.

        Raises :class:`IncompleteInsert` when the store reports fewer written rows than
        were sent: chDB's streamed insert refuses a block under back-pressure
        (TOO_MANY_PARTS) without an error, answering ``written_rows: 0``, so an insert is
        trusted only when its summary accounts for every row.
        """
        calls = 0
        for chunk in self.chunks(rows):
            summary = self.client.raw_insert(self.table, self.columns, self.encode(chunk), fmt="JSONCompactEachRow")
            calls += 1
            reported = getattr(summary, "summary", None) or {}
            if "written_rows" in reported and int(reported["written_rows"]) < len(chunk):
                raise IncompleteInsert(self.table, int(reported["written_rows"]), len(chunk))
        return calls


class IncompleteInsert(Exception):
    """The store acknowledged an insert but wrote fewer rows than it was sent (retried)."""

    def __init__(self, table: str, written: int, sent: int) -> None:
        super().__init__(f"the store wrote {written} of {sent} rows into {table} without an error "
                         "(chDB does so under TOO_MANY_PARTS back-pressure)")
        self.table, self.written, self.sent = table, written, sent
