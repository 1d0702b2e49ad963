"""How detection rows become store rows and topic records (pure).

Each detection row type of :mod:`streams.detect.rows` has one table (schemas/migrations/
0005_detection.sql). A store row is the row's fields in order, then the table's deletion
flag when the row type has none of its own (``deleted``), then ``version``. The deletion
flag is the ReplacingMergeTree ``is_deleted`` column, so ``SELECT ... FINAL`` hides a row
whose latest state is "gone": a retracted thread or conversation (the row type's own
``retracted``), a withdrawn alert, or a row a rebuild no longer produces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from operator import attrgetter
from typing import Any

from streams.contracts import tables as store_tables
from streams.contracts import topics
from streams.detect.responses import ALERT_WITHDRAWN
from streams.detect.rows import AlertRow, ConnectionRow, ConversationRow, ResponseRow, ThreadRow, Updates, columns

Row = ThreadRow | ConversationRow | ConnectionRow | ResponseRow | AlertRow
StoreKey = tuple[str, ...]
"""``(client_id, account_id, *row.key)``: the table's sort key, one row per key."""


@dataclass(frozen=True)
class TableSpec:
    """One detection table: its row type, columns and which of them hold epoch-ms times."""

    name: str
    row_type: type
    own_flag: bool
    """The row type carries its deletion flag (``retracted``); else a ``deleted`` column follows."""
    topic: str | None = None
    """The topic (logical name) its updates are published on, if any."""
    _values: Callable[[Any], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_values", attrgetter(*columns(self.row_type)))

    @cached_property
    def row_columns(self) -> tuple[str, ...]:
        return columns(self.row_type)

    @property
    def columns(self) -> tuple[str, ...]:
        """Store columns in DDL order."""
        extra = ("version",) if self.own_flag else ("deleted", "version")
        return (*self.row_columns, *extra)

    @property
    def flag_column(self) -> str:
        return "retracted" if self.own_flag else "deleted"

    @property
    def time_columns(self) -> tuple[str, ...]:
        """Epoch-ms columns (``DateTime64(3)`` in the store)."""
        return tuple(f.name for f in fields(self.row_type) if f.name.endswith("_at"))

    @cached_property
    def store_table(self) -> store_tables.TableSpec:
        """The spec a writer of this table takes (``TableWriter.for_spec``); not month-partitioned."""
        return store_tables.TableSpec(self.name, self.columns, self.time_columns, None)

    def store_row(self, row: Row, deleted: bool, version: int) -> list[Any]:
        if self.own_flag:
            return [*self._values(row), version]
        return [*self._values(row), deleted, version]

    def gone(self, row: Row) -> tuple[Row, bool]:
        """The row and flag that supersede a stored row a rebuild no longer produces."""
        if isinstance(row, ThreadRow | ConversationRow):
            return replace(row, retracted=True), True
        return row, True


THREADS = TableSpec("threads", ThreadRow, own_flag=True, topic=topics.THREADS)
CONVERSATIONS = TableSpec("conversations", ConversationRow, own_flag=True, topic=topics.CONVERSATIONS)
CONNECTIONS = TableSpec("connections", ConnectionRow, own_flag=False)
RESPONSES = TableSpec("responses", ResponseRow, own_flag=False)
ALERTS = TableSpec("alerts", AlertRow, own_flag=False, topic=topics.ALERTS)
TABLES: tuple[TableSpec, ...] = (THREADS, CONVERSATIONS, CONNECTIONS, RESPONSES, ALERTS)
PUBLISHED: tuple[TableSpec, ...] = tuple(t for t in TABLES if t.topic)
"""The tables whose updates go to a topic (``rapport.threads``, ``conversations``, ``alerts``)."""
ROLLUP_TABLE = "activity_minutely"
OPEN_ITEMS_TABLE = "open_items"
"""Recomputed from ``responses``/``alerts`` FINAL for the keys a step wrote (streams/detect_io/open_items.py)."""


def store_key(row: Row) -> StoreKey:
    return (row.client_id, row.account_id, *row.key)


def is_deleted(row: Row) -> bool:
    """Whether the row as the core emits it supersedes (hides) the stored one."""
    if isinstance(row, ThreadRow | ConversationRow):
        return row.retracted
    if isinstance(row, AlertRow):
        return row.status == ALERT_WITHDRAWN
    return False


def by_table(updates: Updates) -> dict[str, tuple[Row, ...]]:
    return {
        THREADS.name: updates.threads,
        CONVERSATIONS.name: updates.conversations,
        CONNECTIONS.name: updates.connections,
        RESPONSES.name: updates.responses,
        ALERTS.name: updates.alerts,
    }


def record(row: Row) -> dict[str, Any]:
    """A row as a topic record object (times stay epoch ms); orjson encodes the row alike."""
    return {f.name: getattr(row, f.name) for f in fields(row)}  # type: ignore[arg-type]


class Collector:
    """Rows to write for one batch or sweep: the last row per store key wins."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[StoreKey, tuple[Row, bool]]] = {t.name: {} for t in TABLES}

    def add(self, updates: Updates) -> None:
        for table, rows in by_table(updates).items():
            target = self.rows[table]
            for row in rows:
                target[store_key(row)] = (row, is_deleted(row))

    def put(self, table: str, row: Row, deleted: bool) -> None:
        self.rows[table][store_key(row)] = (row, deleted)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def store_rows(self, version: int) -> dict[str, list[list[Any]]]:
        specs = {t.name: t for t in TABLES}
        return {
            table: [specs[table].store_row(row, deleted, version) for row, deleted in rows.values()]
            for table, rows in self.rows.items()
            if rows
        }

    def of(self, table: str) -> Iterable[Row]:
        return (row for row, _ in self.rows[table].values())
