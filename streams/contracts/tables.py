"""A spec per table the pipeline writes: its columns, epoch-ms columns and month column.

Rows travel and are written as sequences in column order (a list from a normalizer, an
:class:`~streams.contracts.archive.ArchiveRow`, a detection store row): the cheapest form
to build, encode and send. What a position *means* is said here once, so code reads a row
through its table's spec (:meth:`TableSpec.position`, :meth:`TableSpec.reader`) instead of
by a bare index. ``interactions`` and ``changes`` are derived from
``schemas/interaction.json``; every spec (the detection tables' too,
:mod:`streams.detect_io.tables`) is checked against the migrations' DDL by
tests/unit/test_schema_guard.py: same columns in the same order, epoch-ms columns exactly
the ``DateTime`` ones, the month column the one the table is partitioned by month on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from streams.contracts.archive import ARCHIVE_COLUMNS
from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS, schema


@dataclass(frozen=True, slots=True)
class TableSpec:
    """What a writer must know of one table (``TableWriter.for_spec``) and readers of its rows."""

    name: str
    columns: tuple[str, ...]
    time_columns: tuple[str, ...]
    """Columns holding epoch ms in a row (``DateTime``/``DateTime64`` in the store)."""
    month_column: str | None
    """The time column the table is partitioned by month on (``toYYYYMM``), or ``None``:
    inserts of a month-partitioned table are split by month (ClickHouse refuses an insert
    touching more than 100 partitions)."""

    def position(self, column: str) -> int:
        """Where ``column`` sits in a row of this table."""
        return self.columns.index(column)

    def reader(self, *columns: str) -> Callable[[Sequence[Any]], Any]:
        """One call that reads ``columns`` of a row (a tuple of them; the value for one column).

        An :func:`operator.itemgetter`: on the hot path it costs what indexing costs, and the
        caller names what it reads.
        """
        return itemgetter(*(self.position(c) for c in columns))


def _from_schema(name: str, record: str, columns: tuple[str, ...], month_column: str | None) -> TableSpec:
    """The spec of a table ``schemas/interaction.json`` defines (``record``: its key there)."""
    spec = schema()[record]
    if tuple(c["name"] for c in spec) != columns:  # the guard test says which; fail early too
        raise AssertionError(f"streams.interaction's {record} fields differ from schemas/interaction.json")
    times = tuple(c["name"] for c in spec if "DateTime" in c["clickhouse"])
    return TableSpec(name, columns, times, month_column)


INTERACTIONS = _from_schema("interactions", "interaction", INTERACTION_COLUMNS, "created_at")
CHANGES = _from_schema("changes", "change", CHANGE_COLUMNS, None)  # partitioned by platform (0010)
RAW_EVENTS = TableSpec("raw_events", ARCHIVE_COLUMNS, ("received_at", "archived_at"), None)  # by platform (0011)
PIPELINE_METRICS = TableSpec(
    "pipeline_metrics",
    ("minute", "worker", "stage", "topic", "records_in", "events_in", "events_out",
     "dead_lettered", "skipped", "lag", "written_at", "state", "detail"),
    ("minute", "written_at"),
    None,  # partitioned by day, but only the last minutes are ever written: one or two days per insert
)
PIPELINE_TABLES: tuple[TableSpec, ...] = (INTERACTIONS, CHANGES, RAW_EVENTS, PIPELINE_METRICS)
"""The tables written by the normalizer, the sink and the metrics timer (detection's own:
:data:`streams.detect_io.tables.TABLES`)."""
