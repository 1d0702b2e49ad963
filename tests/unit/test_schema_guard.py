"""The schema lives in schemas/interaction.json: records, DDL and sink columns must agree."""

import re
import typing
from dataclasses import fields

from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS, Change, Interaction, schema
from streams.normalize.records import ARCHIVE_COLUMNS
from streams.store.migrations import load_migrations


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


def test_archive_columns_match_ddl() -> None:
    assert [n for n, _ in _ddl_columns("raw_events")] == list(ARCHIVE_COLUMNS)


def test_sort_keys_start_with_client_where_tenant_scoped() -> None:
    for mig in load_migrations():
        for stmt in mig.statements():
            if "client_id String" in stmt and "ORDER BY" in stmt and "TABLE IF NOT EXISTS changes" not in stmt:
                assert re.search(r"ORDER BY \(client_id", stmt), stmt[:80]
