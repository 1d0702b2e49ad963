"""The schema lives in schemas/: records, table specs and the migrations' DDL must agree.

Every table the migrations create has a spec (:mod:`streams.contracts.tables`, and the
detection tables' :data:`streams.detect_io.tables.TABLES`) unless it is written by SQL
alone; each spec has the DDL's columns in order, its epoch-ms columns are exactly the DDL's
``DateTime`` ones, and its month column is the one the table is partitioned by month on.
"""

import re
import typing
from dataclasses import fields

import pytest

from streams.contracts.archive import ARCHIVE_COLUMNS, ArchiveRow
from streams.contracts.tables import PIPELINE_TABLES, TableSpec
from streams.detect_io.tables import OPEN_ITEMS_TABLE, ROLLUP_TABLE, TABLES
from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS, Change, Interaction, schema
from streams.store.migrations import load_migrations

SPECS: tuple[TableSpec, ...] = (*PIPELINE_TABLES, *(t.store_table for t in TABLES))
WRITTEN_BY_SQL = {
    ROLLUP_TABLE: "recomputed from FINAL state by INSERT ... SELECT (detect_io/queries.py)",
    OPEN_ITEMS_TABLE: "recomputed from responses/alerts FINAL by INSERT ... SELECT (detect_io/open_items.py)",
}


def _created_tables() -> set[str]:
    """Every table the migrations leave behind (copies ``<table>_NNNN`` are swapped in under the name)."""
    names: set[str] = set()
    for mig in load_migrations():
        for stmt in mig.statements():
            m = re.match(r"CREATE TABLE IF NOT EXISTS (\w+?)(?:_\d{4})?\s*\(", stmt)
            if m:
                names.add(m.group(1))
    return names


def _partition(table: str) -> str | None:
    """The PARTITION BY expression of the table's latest CREATE TABLE, or ``None``."""
    found: str | None = None
    for mig in load_migrations():
        for stmt in mig.statements():
            if re.match(rf"CREATE TABLE IF NOT EXISTS {table}(?:_\d{{4}})?\s*\(", stmt):
                m = re.search(r"^PARTITION BY (.+)$", stmt, re.M)
                found = m.group(1).strip() if m else None
    return found


def _ddl_columns(table: str) -> list[tuple[str, str]]:
    """The table's columns after every migration: CREATE TABLE (or a copy ``<table>_NNNN`` that a
    migration swaps in), then ALTER ... ADD COLUMN. MATERIALIZED columns and indexes are not
    written by the pipeline, so they are not columns here."""
    cols: list[tuple[str, str]] | None = None
    for mig in load_migrations():
        for stmt in mig.statements():
            m = re.match(rf"CREATE TABLE IF NOT EXISTS {table}(?:_\d{{4}})?\s*\((.*)\)\s*ENGINE", stmt, re.S)
            if m:
                cols = []
                for line in m.group(1).strip().splitlines():
                    line = line.strip().rstrip(",")
                    name, ctype = line.split(" ", 1)
                    if name == "INDEX" or " MATERIALIZED " in f" {ctype} ":
                        continue
                    cols.append((name, ctype.removesuffix(" DEFAULT ''")))
            m = re.match(rf"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS (\w+) (.+?)(?: DEFAULT .*)?$", stmt, re.S)
            if m and cols is not None:
                cols.append((m.group(1), m.group(2).strip()))
    if cols is None:
        raise AssertionError(f"no CREATE TABLE for {table}")
    return cols


def test_interaction_record_matches_schema_and_ddl() -> None:
    spec = [(c["name"], c["clickhouse"]) for c in schema()["interaction"]]
    assert [name for name, _ in spec] == list(INTERACTION_COLUMNS)
    assert _ddl_columns("interactions") == spec


def test_change_record_matches_schema_and_ddl() -> None:
    spec = [(c["name"], c["clickhouse"]) for c in schema()["change"]]
    assert [name for name, _ in spec] == list(CHANGE_COLUMNS)
    assert _ddl_columns("changes") == spec


def test_python_types_match_schema() -> None:
    for cls, key in ((Interaction, "interaction"), (Change, "change")):
        hints = typing.get_type_hints(cls)
        for col, f in zip(schema()[key], fields(cls), strict=True):
            assert col["python"].replace(" ", "") == str(hints[f.name]).replace(" ", "").replace(
                "<class'", "").replace("'>", ""), f.name


def test_archive_row_is_the_raw_events_row() -> None:
    assert [n for n, _ in _ddl_columns("raw_events")] == list(ARCHIVE_COLUMNS) == list(ArchiveRow._fields)


def test_every_table_has_a_spec_or_is_written_by_sql() -> None:
    specs = [spec.name for spec in SPECS]
    assert len(specs) == len(set(specs))
    assert _created_tables() == set(specs) | set(WRITTEN_BY_SQL)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_spec_matches_ddl(spec: TableSpec) -> None:
    ddl = _ddl_columns(spec.name)
    assert [name for name, _ in ddl] == list(spec.columns)
    assert [name for name, ctype in ddl if "DateTime" in ctype] == list(spec.time_columns)
    partition = _partition(spec.name) or ""
    by_month = re.fullmatch(r"toYYYYMM\((\w+)\)", partition)
    assert spec.month_column == (by_month.group(1) if by_month else None), partition


def test_spec_readers_name_positions() -> None:
    interactions = next(spec for spec in SPECS if spec.name == "interactions")
    row = list(interactions.columns)  # each value is its column's name
    assert interactions.reader("platform", "event_id")(row) == ("platform", "event_id")
    assert interactions.reader("kind")(row) == "kind"
    assert row[interactions.position("created_at")] == "created_at"


def test_sort_keys_start_with_client_where_tenant_scoped() -> None:
    for mig in load_migrations():
        for stmt in mig.statements():
            if "client_id String" in stmt and "ORDER BY" in stmt and "TABLE IF NOT EXISTS changes" not in stmt:
                assert re.search(r"ORDER BY \(client_id", stmt), stmt[:80]
