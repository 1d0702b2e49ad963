"""The `rapport query` command: through the running store, or a store of its own."""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import DatabaseError
from rich.console import Console

from streams.embedded.credentials import Role
from streams.errors import RapportError
from streams.query import print_table, to_csv, to_json
from streams.settings import Settings
from streams.store.client import store_for


class QueryFailed(RapportError):
    """The store refused or failed the statement."""


def run_query(settings: Settings, sql: str, fmt: str, console: Console, role: Role = "reader") -> None:
    with store_for(settings, console, role=role) as client:
        try:
            result = client.query(sql)
        except DatabaseError as exc:  # the statement's fault: one line, no traceback
            raise QueryFailed(str(exc).strip().splitlines()[0]) from None
        columns = list(result.column_names)
        rows = [tuple(r) for r in result.result_rows]
    if fmt == "json":
        print(to_json(columns, rows), flush=True)
    elif fmt == "csv":
        print(to_csv(columns, rows), end="", flush=True)
    else:
        print_table(columns, rows, Console())
