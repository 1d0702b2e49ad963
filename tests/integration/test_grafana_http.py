"""Grafana's ClickHouse datasource (HTTP mode) against the embedded store, request for request.

The requests are shaped exactly as clickhouse-go v2.47.0 sends them for the plugin v4.20.0
(tests/support/grafana_client.py documents where each detail comes from), e.g.

    POST /?client_protocol_version=54460&database=<db>&default_format=Native&max_execution_time=65
    User-Agent: grafana/... clickhouse-datasource/4.20.0 clickhouse-go/2.47.0 (...)
    Accept-Encoding: gzip
    Authorization: Basic ZGVmYXVsdDo=
    <SQL as the body>

and the answers are decoded the way its Block.Decode does (BlockInfo, custom-serialization byte).
"""

from __future__ import annotations

import http.client
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.grafana_client import (
    CLIENT_PROTOCOL_VERSION,
    HELLO_SQL,
    GrafanaClickHouse,
    ServerError,
    _Reader,
    decode_block,
)

pytestmark = pytest.mark.integration


def test_handshake_and_ping_as_clickhouse_go_does(store_url: str) -> None:
    grafana = GrafanaClickHouse(store_url, "default")
    name, version, revision, tz = grafana.connect()
    assert version.count(".") >= 2 and tz == "UTC"
    assert revision >= CLIENT_PROTOCOL_VERSION  # the server's own TCP revision
    target, headers, body = grafana.requests[0]
    assert target == ("/?client_protocol_version=54460&database=default&default_format=Native"
                      "&max_execution_time=65")
    assert body == HELLO_SQL.encode() and headers["Accept-Encoding"] == "gzip"
    assert grafana.requests[1][2] == b"SELECT 1"


def test_panel_shaped_answers_decode(store_url: str) -> None:
    grafana = GrafanaClickHouse(store_url, "default")
    grafana.connect()
    result = grafana.query(
        "SELECT toStartOfInterval(toDateTime(toDateTime64(1790000000 + number * 60, 3, 'UTC')), INTERVAL 120 second)"
        " AS time, toLowCardinality(['x', 'reddit'][number % 2 + 1]) AS platform, count() AS conversations,"
        " quantileExact(0.5)(toNullable(toFloat64(number))) AS median_s, if(number = 1, NULL, 'who') AS who,"
        " [number, 2] AS arr, CAST(map('k', number), 'Map(LowCardinality(String), UInt64)') AS m,"
        " toDecimal64(number, 2) AS dec, toUUID('00000000-0000-0000-0000-000000000001') AS id"
        " FROM numbers(4) GROUP BY time, platform, who, arr, m, dec ORDER BY time, platform")
    assert result.columns == ["time", "platform", "conversations", "median_s", "who", "arr", "m", "dec", "id"]
    assert result.types[1] == "LowCardinality(String)"
    assert result.headers["x-clickhouse-format"] == "Native"
    assert [r[:3] for r in result.rows] == [
        (datetime.fromtimestamp(1789999920, UTC), "x", 1),
        (datetime.fromtimestamp(1790000040, UTC), "reddit", 1),
        (datetime.fromtimestamp(1790000040, UTC), "x", 1),
        (datetime.fromtimestamp(1790000160, UTC), "reddit", 1),
    ]
    assert [r[4] for r in result.rows] == ["who", None, "who", "who"]
    assert result.rows[3][5] == [3, 2] and result.rows[3][6] == {"k": 3}


def test_many_blocks_streamed_past_the_held_bound(store_url: str) -> None:
    grafana = GrafanaClickHouse(store_url, "default")
    grafana.connect()
    result = grafana.query("SELECT number, repeat('x', number % 40) AS s FROM numbers(200000)")
    assert len(result.rows) == 200000 and result.rows[-1] == (199999, "x" * (199999 % 40))


def test_empty_result_and_errors(store_url: str) -> None:
    grafana = GrafanaClickHouse(store_url, "default")
    grafana.connect()
    empty = grafana.query("SELECT number FROM numbers(10) WHERE number > 100")
    assert empty.columns == [] and empty.rows == []  # Content-Length 0: "no data" in Grafana
    with pytest.raises(ServerError) as info:
        grafana.query("SELECT no_such_column FROM numbers(1)")
    # the plugin marks errors containing DB::Exception as downstream (the query's fault)
    assert info.value.status in (400, 404) and "DB::Exception" in info.value.body


def test_without_client_protocol_version_native_stays_revision_0(store_url: str) -> None:
    parts = urlsplit(store_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    login = {"X-ClickHouse-User": unquote(parts.username or ""), "X-ClickHouse-Key": unquote(parts.password or "")}
    try:
        conn.request("POST", "/?default_format=Native", body=b"SELECT 7 AS seven", headers=login)
        raw = conn.getresponse().read()
    finally:
        conn.close()
    names, types, rows = decode_block(_Reader(raw), 0)
    assert (names, types, rows) == (["seven"], ["UInt8"], [(7,)])
