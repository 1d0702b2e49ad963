"""The `rapport query` command: through the running store, or a store of its own."""

from __future__ import annotations

from rich.console import Console

from streams.embedded.credentials import Role
from streams.query import print_table, to_csv, to_json
from streams.settings import Settings
from streams.store.client import store_for


def run_query(settings: Settings, sql: str, fmt: str, console: Console, role: Role = "reader") -> None:
    with store_for(settings, console, role=role) as client:
        result = client.query(sql)
        columns = list(result.column_names)
        rows = [tuple(r) for r in result.result_rows]
    if fmt == "json":
        print(to_json(columns, rows), flush=True)
    elif fmt == "csv":
        print(to_csv(columns, rows), end="", flush=True)
    else:
        print_table(columns, rows, Console())
