"""`rapport query "SQL"`: run SQL on the running stack's store, or open the store itself.

``--format json`` prints exactly one JSON array of row objects on stdout, so scripts can
read it; every log line goes to stderr.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from rich.console import Console
from rich.table import Table


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def to_json(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    return orjson.dumps([{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]).decode()


def to_csv(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_plain(v) for v in row])
    return buf.getvalue()


def print_table(columns: list[str], rows: list[tuple[Any, ...]], console: Console) -> None:
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(_plain(v)) for v in row))
    console.print(table)
    console.print(f"{len(rows)} row(s)", style="dim")
