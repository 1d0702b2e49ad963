"""A store client that refuses statements over a fixed size, naming the code that built them.

A statement whose text grows with a batch or a backlog (a literal ``IN (...)`` of every id
of a batch) works in tests and fails at scale: ClickHouse refuses it with
QUERY_IS_TOO_LARGE (229), and a retry of the same batch builds the same statement again,
so the pipeline stalls for good. Every client Rapport opens (:func:`streams.store.client.connect`)
is a :class:`BoundedClient`: a statement over ``max_query_bytes`` (setting
``RAPPORT_STORE_MAX_QUERY_BYTES``) never leaves the process; it raises
:class:`QueryTooLargeError` naming the caller, so a test with a small bound catches any
builder that is not chunked. Insert *data* is not a statement and is not counted.
"""

from __future__ import annotations

import sys
from typing import Any

from clickhouse_connect.driver.httpclient import HttpClient

from streams.errors import RapportError

DEFAULT_MAX_QUERY_BYTES = 1 << 20


class QueryTooLargeError(RapportError):
    """A statement larger than the configured bound: a builder that must chunk its input."""


def _caller(depth: int = 3) -> str:
    """Who built the statement: the first frames outside this module and clickhouse-connect."""
    names: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(names) < depth:
        module = frame.f_globals.get("__name__", "")
        if module != __name__ and not module.startswith("clickhouse_connect"):
            names.append(f"{module}.{frame.f_code.co_name} (line {frame.f_lineno})")
        frame = frame.f_back  # type: ignore[assignment]
    return " < ".join(names) or "unknown caller"


class BoundedClient(HttpClient):
    """clickhouse-connect's HTTP client with a size check on every statement it sends."""

    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES

    def _check(self, sql: str | bytes | None) -> None:
        if sql is None:
            return
        size = len(sql) if isinstance(sql, bytes) else len(sql.encode())
        if size > self.max_query_bytes:
            raise QueryTooLargeError(
                f"a statement of {size:,} bytes from {_caller()} is over the store client's bound of "
                f"{self.max_query_bytes:,} bytes (RAPPORT_STORE_MAX_QUERY_BYTES): it grows with its "
                f"input and must be sent in chunks")

    def create_query_context(self, query: str | bytes | None = None, *args: Any, **kwargs: Any) -> Any:
        self._check(query)
        return super().create_query_context(query, *args, **kwargs)

    def raw_query(self, query: str, *args: Any, **kwargs: Any) -> bytes:
        self._check(query)
        return super().raw_query(query, *args, **kwargs)

    def raw_stream(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._check(query)
        return super().raw_stream(query, *args, **kwargs)

    def command(self, cmd: str, *args: Any, **kwargs: Any) -> Any:
        self._check(cmd)
        return super().command(cmd, *args, **kwargs)


def bound(client: HttpClient, max_query_bytes: int) -> BoundedClient:
    """``client`` (as built by ``clickhouse_connect.get_client``) with the size check."""
    client.__class__ = BoundedClient  # same state, one more check: no second construction path
    assert isinstance(client, BoundedClient)
    client.max_query_bytes = max_query_bytes
    return client
