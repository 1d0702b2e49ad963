"""The `rapport query` command: through the running store, or a store of its own."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from streams.embedded.stackfile import read_stack
from streams.query import print_table, to_csv, to_json
from streams.settings import Settings
from streams.store.client import connect


def run_query(settings: Settings, sql: str, fmt: str, console: Console) -> None:
    server = None
    if settings.store_url:
        url = settings.store_url
    elif (info := read_stack(settings.data_dir)) is not None:
        url = info.store_url
    else:
        from streams.embedded.store import StoreServer

        console.print(f"no stack runs for {settings.data_dir}; opening its store directly", style="dim")
        server = StoreServer(Path(settings.data_dir) / "store")
        server.start()
        url = server.url
    try:
        client = connect(url, settings)
        try:
            result = client.query(sql)
            columns = list(result.column_names)
            rows = [tuple(r) for r in result.result_rows]
        finally:
            client.close()
    finally:
        if server is not None:
            server.stop()
    if fmt == "json":
        print(to_json(columns, rows), flush=True)
    elif fmt == "csv":
        print(to_csv(columns, rows), end="", flush=True)
    else:
        print_table(columns, rows, Console())
