"""Requests exactly as Grafana's ClickHouse datasource sends them in HTTP mode, and its decoder.

Read from the sources, not guessed (grafana/clickhouse-datasource v4.20.0 ``pkg/plugin/driver.go``
with ClickHouse/clickhouse-go v2.47.0 ``conn_http.go``, ``conn_http_query.go``, ``context.go``,
``lib/proto/block.go``):

* the plugin opens clickhouse-go with ``Protocol: HTTP`` and ``Compression: GZIP`` (HTTP mode
  never uses ClickHouse's own LZ4/ZSTD block compression, so no ``compress=1``), ``Auth`` from
  the datasource (database, username, password) and its custom settings;
* every request is ``POST`` to ``http://host:port/<path>?<params>`` with the SQL as the body and
  the URL parameters, encoded by Go's ``url.Values.Encode`` (sorted by key): ``database``, the
  custom settings, ``default_format=Native``, ``client_protocol_version=54460``, and per query
  ``max_execution_time=<timeout+5>`` (the context deadline; Grafana's query timeout is 60 s);
* headers: ``User-Agent: grafana/<v> clickhouse-datasource/<v> clickhouse-go/2.47.0
  (<comments>; lv:go/<v>; os:linux)``, ``Accept-Encoding: gzip`` (Go's transport has
  ``DisableCompression: true`` so it does not add its own), Basic auth from the URL user
  without TLS; no Content-Type; the SQL body has a Content-Length;
* on connect: ``SELECT displayName(), version(), revision(), timezone()`` decoded with revision
  54460 (the "preflight"), then every answer decoded with the server's ``revision()``; the pool
  pings with ``SELECT 1`` and expects one column named ``1``;
* an answer with Content-Length 0 is an empty result; otherwise it is Native blocks, gunzipped
  only if the answer says ``Content-Encoding: gzip``; a non-200 answer is an error whose body
  (``Code: N. DB::Exception: ...``) the plugin shows.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from streams.embedded.native_revision import _tuple_element, _type_args

CLIENT_PROTOCOL_VERSION = 54460  # clickhouse-go lib/proto DBMS_TCP_PROTOCOL_VERSION
REVISION_WITH_CUSTOM_SERIALIZATION = 54454
USER_AGENT = ("grafana/11.6.4 clickhouse-datasource/4.20.0 clickhouse-go/2.47.0 "
              "(grafana_user:admin; grafana_dashboard:rapport-agency; grafana_panel:2; lv:go/1.26.0; os:linux)")
HELLO_SQL = "SELECT displayName(), version(), revision(), timezone()"


class ServerError(Exception):
    """A non-200 answer, as clickhouse-go reports it: ``[HTTP N] response body: "..."``."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f'[HTTP {status}] response body: "{body}"')
        self.status = status
        self.body = body


@dataclass
class Result:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    headers: dict[str, str] = field(default_factory=dict)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class GrafanaClickHouse:
    """One clickhouse-go HTTP connection as the datasource configures it."""

    def __init__(self, url: str, database: str, username: str | None = None, password: str | None = None,
                 custom_settings: dict[str, str] | None = None, query_timeout_s: int = 60) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 8123
        self.path = parts.path or "/"
        self.database = database
        # The datasource's user and password; by default those inside the URL (a test fixture's).
        self.username = username if username is not None else unquote(parts.username or "default")
        self.password = password if password is not None else unquote(parts.password or "")
        self.custom_settings = dict(custom_settings or {})
        self.query_timeout_s = query_timeout_s
        self.revision = CLIENT_PROTOCOL_VERSION  # until the preflight answered
        self.requests: list[tuple[str, dict[str, str], bytes]] = []  # what went on the wire
        self.server: tuple[str, str, int, str] | None = None

    # --- the wire ---------------------------------------------------------------------------
    def _params(self, per_query: dict[str, str]) -> str:
        values = {"database": self.database, **self.custom_settings,
                  "default_format": "Native", "client_protocol_version": str(CLIENT_PROTOCOL_VERSION)}
        values.update(per_query)
        return urlencode(sorted(values.items()))  # Go's url.Values.Encode sorts by key

    def _headers(self) -> dict[str, str]:
        auth = f"{self.username}:{self.password}".encode()
        return {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip",
                "Authorization": "Basic " + base64.b64encode(auth).decode()}

    def post(self, sql: str, per_query: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        settings = {"max_execution_time": str(self.query_timeout_s + 5)}
        settings.update(per_query or {})
        target = f"{self.path}?{self._params(settings)}"
        headers = self._headers()
        body = sql.encode()
        self.requests.append((target, headers, body))
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request("POST", target, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            answer_headers = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        if answer_headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        return resp.status, answer_headers, raw

    # --- what the driver does -----------------------------------------------------------------
    def connect(self) -> tuple[str, str, int, str]:
        """The preflight (decoded at revision 54460), then the pool's ping."""
        self.revision = CLIENT_PROTOCOL_VERSION
        hello = self.query(HELLO_SQL)
        name, version, revision, tz = hello.rows[0]
        self.server = (name, version, int(revision), tz)
        self.revision = int(revision)
        ping = self.query("SELECT 1")
        if ping.columns != ["1"]:
            raise AssertionError(f"clickhouse [ping]:: cannot ping clickhouse: {ping.columns}")
        return self.server

    def query(self, sql: str, per_query: dict[str, str] | None = None) -> Result:
        status, headers, raw = self.post(sql, per_query)
        if status != 200:
            raise ServerError(status, raw.decode(errors="replace"))
        if not raw:  # res.ContentLength == 0: an empty block, no columns
            return Result([], [], [], headers)
        reader = _Reader(raw)
        columns: list[str] = []
        types: list[str] = []
        rows: list[tuple[Any, ...]] = []
        while not reader.done():
            names, kinds, block_rows = decode_block(reader, self.revision)
            if not columns:
                columns, types = names, kinds
            elif (names, kinds) != (columns, types):
                raise AssertionError(f"block header changed: {names} {kinds}")
            rows.extend(block_rows)
        return Result(columns, types, rows, headers)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise EOFError(f"need {size} bytes at {self.pos}, have {len(self.data) - self.pos}")
        out = self.data[self.pos:self.pos + size]
        self.pos += size
        return out

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def str(self) -> str:
        return self.take(self.uvarint()).decode()


def decode_block(reader: _Reader, revision: int) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    """clickhouse-go's ``Block.Decode(reader, revision)``, values decoded per column type."""
    if revision > 0:  # decodeBlockInfo: uvarint, bool, uvarint, int32, uvarint
        reader.uvarint()
        reader.take(1)
        reader.uvarint()
        reader.take(4)
        reader.uvarint()
    n_cols = reader.uvarint()
    n_rows = reader.uvarint()
    names: list[str] = []
    types: list[str] = []
    columns: list[list[Any]] = []
    for _ in range(n_cols):
        names.append(reader.str())
        types.append(reader.str())
        if revision >= REVISION_WITH_CUSTOM_SERIALIZATION and reader.take(1) != b"\x00":
            raise AssertionError(f"custom serialization for column {names[-1]}. not supported")
        if n_rows:
            read_state_prefix(reader, types[-1])
            columns.append(decode_column(reader, types[-1], n_rows))
        else:
            columns.append([])
    return names, types, list(zip(*columns, strict=True)) if n_rows else []


def read_state_prefix(reader: _Reader, type_name: str) -> None:
    """clickhouse-go's ``ReadStatePrefix``: LowCardinality reads its key version (must be 1)."""
    name, args = _type_args(type_name)
    if name == "LowCardinality":
        if struct.unpack("<Q", reader.take(8))[0] != 1:
            raise AssertionError("unsupported LowCardinality key version")
    elif name in ("Array", "Nullable"):
        read_state_prefix(reader, args[0])
    elif name == "Map":
        read_state_prefix(reader, args[0])
        read_state_prefix(reader, args[1])
    elif name == "Tuple":
        for arg in args:
            read_state_prefix(reader, _tuple_element(arg))


_INTS = {"UInt8": "<B", "UInt16": "<H", "UInt32": "<I", "UInt64": "<Q",
         "Int8": "<b", "Int16": "<h", "Int32": "<i", "Int64": "<q", "Float32": "<f", "Float64": "<d"}


def decode_column(reader: _Reader, type_name: str, rows: int) -> list[Any]:
    name, args = _type_args(type_name)
    if name in _INTS:
        fmt = _INTS[name]
        size = struct.calcsize(fmt)
        return [struct.unpack(fmt, reader.take(size))[0] for _ in range(rows)]
    if name == "Decimal":
        width = 4 if int(args[0]) <= 9 else 8 if int(args[0]) <= 18 else 16 if int(args[0]) <= 38 else 32
        scale = 10 ** int(args[1])
        return [int.from_bytes(reader.take(width), "little", signed=True) / scale for _ in range(rows)]
    if name == "UUID":
        return [reader.take(16) for _ in range(rows)]
    if name == "Bool":
        return [reader.take(1) != b"\x00" for _ in range(rows)]
    if name == "String":
        return [reader.take(reader.uvarint()).decode(errors="replace") for _ in range(rows)]
    if name == "FixedString":
        return [reader.take(int(args[0])) for _ in range(rows)]
    if name == "Date":
        return [datetime(1970, 1, 1, tzinfo=UTC).date() + timedelta(days=struct.unpack("<H", reader.take(2))[0])
                for _ in range(rows)]
    if name == "DateTime":
        return [datetime.fromtimestamp(struct.unpack("<I", reader.take(4))[0], UTC) for _ in range(rows)]
    if name == "DateTime64":
        scale = 10 ** int(args[0])
        return [datetime.fromtimestamp(struct.unpack("<q", reader.take(8))[0] / scale, UTC) for _ in range(rows)]
    if name == "Nullable":
        nulls = reader.take(rows)
        values = decode_column(reader, args[0], rows)
        return [None if nulls[i] else values[i] for i in range(rows)]
    if name == "Array":
        offsets = [struct.unpack("<Q", reader.take(8))[0] for _ in range(rows)]
        inner = decode_column(reader, args[0], offsets[-1] if offsets else 0)
        out, start = [], 0
        for end in offsets:
            out.append(inner[start:end])
            start = end
        return out
    if name == "Tuple":
        parts = [decode_column(reader, _tuple_element(arg), rows) for arg in args]
        return list(zip(*parts, strict=True))
    if name == "LowCardinality":
        inner_name, inner_args = _type_args(args[0])
        nullable = inner_name == "Nullable"
        index_type = struct.unpack("<Q", reader.take(8))[0]
        if not index_type & (1 << 9):
            raise AssertionError("LowCardinality without additional keys")
        n_keys = struct.unpack("<Q", reader.take(8))[0]
        keys = decode_column(reader, inner_args[0] if nullable else args[0], n_keys)
        n = struct.unpack("<Q", reader.take(8))[0]
        width = 1 << (index_type & 0xFF)
        idx = [int.from_bytes(reader.take(width), "little") for _ in range(n)]
        return [None if nullable and i == 0 else keys[i] for i in idx]
    if name == "Map":
        offsets = [struct.unpack("<Q", reader.take(8))[0] for _ in range(rows)]
        total = offsets[-1] if offsets else 0
        ks = decode_column(reader, args[0], total)
        vs = decode_column(reader, args[1], total)
        maps, start = [], 0
        for end in offsets:
            maps.append(dict(zip(ks[start:end], vs[start:end], strict=True)))
            start = end
        return maps
    raise AssertionError(f"test decoder has no case for {type_name}")
