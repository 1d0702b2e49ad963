"""The byte-level pieces of the ClickHouse HTTP interface, kept free of sockets and chDB.

* request URL parameters, split the way ClickHouse splits them: transport parameters,
  ``param_*`` query parameters, and everything else a setting for this request only;
* request bodies: ``Transfer-Encoding: chunked`` and ``Content-Encoding`` (lz4, zstd, gzip,
  deflate), decoded as a stream so a large insert never sits whole in memory. Compressed
  bodies are often many concatenated frames (clickhouse-connect compresses each block on its
  own), so every decoder starts a new frame where the last one ended;
* response compression for ``Accept-Encoding``, one continuous frame for a streamed answer;
* the ``X-ClickHouse-Summary`` header.

Native answers rewritten for a client's ``client_protocol_version`` are
:mod:`streams.embedded.native_revision`'s.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import lz4.frame
import zstandard

from streams.embedded.ch_errors import (
    AUTHENTICATION_FAILED,
    CANNOT_DECOMPRESS,
    CANNOT_PARSE_INPUT,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    UNKNOWN_COMPRESSION_METHOD,
    QueryError,
)

# URL parameters that steer the HTTP exchange itself; they never reach the engine as settings.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "session_id", "session_timeout", "session_check",
    "close_session", "query_id", "user", "password", "quota_key", "role", "stacktrace",
    "compress", "decompress", "buffer_size", "wait_end_of_query", "http_wait_end_of_query",
    "client_protocol_version", "enable_http_compression", "http_zlib_compression_level",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close", "http_response_buffer_size",
    "add_http_cors_header", "http_native_compression_disable_checksumming_on_decompress",
})
# Preference order when a client accepts several: cheapest CPU first, this is loopback.
RESPONSE_ENCODINGS = ("lz4", "zstd", "gzip", "deflate")
READ_SIZE = 1 << 20

_TRUE = frozenset({"1", "true", "yes", "on"})


def _flag(value: str | None, default: bool = False) -> bool:
    return default if value is None else value.strip().lower() in _TRUE


@dataclass(frozen=True, slots=True)
class RequestParams:
    """A request's URL parameters, sorted by what they mean."""

    query: str = ""
    database: str | None = None
    default_format: str | None = None
    session_id: str | None = None
    session_timeout: float = 60.0
    session_check: bool = False
    close_session: bool = False
    query_id: str | None = None
    wait_end_of_query: bool = False
    client_protocol_version: int = 0  # >0: Native answers are written for this TCP revision
    http_compression: bool = True  # chDB reports enable_http_compression=1 in system.settings
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # the ``user`` / ``password`` URL parameters, if given
    password: str | None = field(default=None, repr=False)


class HeaderLookup(Protocol):
    """Request headers, looked up case-insensitively (``email.message.Message``, a dict)."""

    def get(self, name: str, /) -> str | None: ...


def parse_params(pairs: Iterable[tuple[str, str]],
                 headers: HeaderLookup | None = None) -> RequestParams:
    """Sort URL parameters as ClickHouse does: the first of a repeated query parameter wins,
    the last of a repeated setting; ``X-ClickHouse-Database`` and ``X-ClickHouse-Format``
    headers win over their parameters, a ``query_id`` parameter over its header."""
    raw: dict[str, str] = {}
    params: dict[str, str] = {}
    settings: dict[str, str] = {}
    for name, value in pairs:
        if not name:
            continue  # "?&a=b" yields an empty name; ClickHouse skips it
        if name.startswith("param_"):
            params.setdefault(name[len("param_"):], value)
        elif name in TRANSPORT_PARAMS:
            raw[name] = value
        else:
            settings[name] = value
    if _flag(raw.get("compress")) or _flag(raw.get("decompress")):
        raise QueryError.make(
            NOT_IMPLEMENTED, "NOT_IMPLEMENTED",
            "ClickHouse block compression (compress=1, decompress=1) is not supported by the "
            "embedded store; use HTTP compression (Accept-Encoding, Content-Encoding)")
    for header, name in (("X-ClickHouse-Database", "database"),
                         ("X-ClickHouse-Format", "default_format"),
                         ("X-ClickHouse-Query-Id", "query_id")):
        given = headers.get(header) if headers is not None else None
        if given and (name != "query_id" or not raw.get(name)):
            raw[name] = given
    try:
        timeout = float(raw.get("session_timeout") or 60)
    except ValueError:
        timeout = 60.0
    revision = raw.get("client_protocol_version", "").strip()
    return RequestParams(
        query=raw.get("query", ""),
        database=raw.get("database") or None,
        default_format=raw.get("default_format") or None,
        session_id=raw.get("session_id") or None,
        session_timeout=min(max(timeout, 1.0), 3600.0),
        session_check=_flag(raw.get("session_check")),
        close_session=_flag(raw.get("close_session")),
        query_id=raw.get("query_id") or None,
        wait_end_of_query=_flag(raw.get("wait_end_of_query") or raw.get("http_wait_end_of_query")),
        client_protocol_version=int(revision) if revision.isdigit() else 0,
        http_compression=_flag(raw.get("enable_http_compression"), default=True),
        params=params,
        settings=settings,
        user=raw.get("user"),
        password=raw.get("password"),
    )


def credentials(params: RequestParams, headers: HeaderLookup) -> tuple[str, str]:
    """(user, password) the ClickHouse way: ``X-ClickHouse-User``/``-Key`` headers, HTTP basic
    auth, or ``user``/``password`` URL parameters; none given means ``default`` with no
    password, as ClickHouse assumes. Mixing the headers with another way is refused, as
    ClickHouse does, so a request never means two users at once."""
    header_user, header_key = headers.get("X-ClickHouse-User"), headers.get("X-ClickHouse-Key")
    basic = _basic_auth(headers.get("Authorization"))
    by_params = params.user is not None or params.password is not None
    by_headers = header_user is not None or header_key is not None
    if sum((by_headers, basic is not None, by_params)) > 1:
        raise QueryError.make(AUTHENTICATION_FAILED, "AUTHENTICATION_FAILED",
                              "Invalid authentication: it is not allowed to use more than one "
                              "authentication method at once (headers, basic auth, URL parameters)")
    if by_headers:
        return header_user or "default", header_key or ""
    if basic is not None:
        return basic
    if by_params:
        return params.user or "default", params.password or ""
    return "default", ""


def _basic_auth(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        raise QueryError.make(AUTHENTICATION_FAILED, "AUTHENTICATION_FAILED",
                              "Invalid authentication: only Basic authorization is supported")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise QueryError.make(AUTHENTICATION_FAILED, "AUTHENTICATION_FAILED",
                              "Invalid authentication: malformed Basic authorization") from None
    user, _, password = decoded.partition(":")
    return user, password


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


def content_length(value: str | None) -> int:
    """A Content-Length as HTTP defines it (digits only: no sign, no spaces inside); else 400.
    Several comma-joined equal values are one (RFC 9110), different ones are refused."""
    if value is None:
        return 0
    values = {part.strip() for part in value.split(",")}
    if len(values) != 1 or not all(v.isascii() and v.isdigit() for v in values) or len(value) > 20:
        raise QueryError.make(CANNOT_PARSE_INPUT, "CANNOT_PARSE_INPUT",
                              "Bad Content-Length of the request", status=400)
    return int(values.pop())


class BodyReader:
    """The raw request body as chunks: chunked transfer coding, a Content-Length, or none."""

    def __init__(self, rfile: _Readable, length: str | None, chunked: bool) -> None:
        self._rfile = rfile
        self._chunked = chunked
        self._left = content_length(length) if not chunked else 0  # 400 when malformed
        self.done = not chunked and self._left == 0

    def __iter__(self) -> Iterator[bytes]:
        while not self.done:
            chunk = self._next_chunk() if self._chunked else self._next_piece()
            if chunk:
                yield chunk

    def _next_piece(self) -> bytes:
        data = self._rfile.read(min(self._left, READ_SIZE))
        if not data:
            raise ConnectionError("client closed the connection inside the request body")
        self._left -= len(data)
        self.done = self._left == 0
        return data

    def _next_chunk(self) -> bytes:
        line = self._rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise ConnectionError("malformed chunk size line in the request body")
        text = line.split(b";", 1)[0].strip()
        if not text or len(text) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in text):
            raise ConnectionError("malformed chunk size in the request body")
        size = int(text, 16)
        if size == 0:
            while self._rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                pass  # trailers carry nothing we use
            self.done = True
            return b""
        data = self._rfile.read(size)
        if len(data) != size or self._rfile.readline(3) not in (b"\r\n", b"\n"):
            raise ConnectionError("client closed the connection inside a body chunk")
        return data

    def drain(self, limit: int = 1 << 20) -> bool:
        """Read and drop what is left, up to ``limit`` bytes; whether the body ended."""
        seen = 0
        for chunk in self:
            seen += len(chunk)
            if seen > limit:
                return False
        return True


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


_DECODERS: dict[str, Callable[[], _Decompressor]] = {
    "lz4": lz4.frame.LZ4FrameDecompressor,
    "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
    "gzip": lambda: zlib.decompressobj(wbits=47),  # gzip or zlib header, auto-detected
    "x-gzip": lambda: zlib.decompressobj(wbits=47),
    "deflate": lambda: zlib.decompressobj(wbits=15),
}


def decoded(chunks: Iterable[bytes], encoding: str | None,
            max_inflated: int = 1 << 40) -> Iterator[bytes]:
    """The body with its Content-Encoding undone, frame after frame; a body that inflates
    beyond ``max_inflated`` bytes is refused (413) before more of it is produced."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        yield from chunks
        return
    produced = 0
    for piece in _inflated(chunks, name, encoding):
        produced += len(piece)
        if produced > max_inflated:
            raise QueryError.make(QUERY_IS_TOO_LARGE, "QUERY_IS_TOO_LARGE",
                                  f"The request body inflates beyond {max_inflated} bytes",
                                  status=413)
        yield piece


def _inflated(chunks: Iterable[bytes], name: str, encoding: str | None) -> Iterator[bytes]:
    factory = _DECODERS.get(name)
    if factory is None:
        raise QueryError.make(UNKNOWN_COMPRESSION_METHOD, "UNKNOWN_COMPRESSION_METHOD",
                              f"Unknown Content-Encoding of the request body: {encoding}")
    current: _Decompressor | None = None
    for chunk in chunks:
        data = chunk
        while data:
            if current is None:
                current = factory()
            try:
                data = yield from _bounded(current, data)
            except Exception as exc:  # noqa: BLE001 - each codec raises its own type
                raise QueryError.make(CANNOT_DECOMPRESS, "CANNOT_DECOMPRESS",
                                      f"Cannot decode {name} request body: {exc}") from None
            if current.eof:
                current = None  # what is left of ``data`` starts the next frame
    if current is not None:
        raise QueryError.make(CANNOT_DECOMPRESS, "CANNOT_DECOMPRESS",
                              f"The {name} request body ends inside a frame")


_ZLIB_TYPE = type(zlib.decompressobj())
_PIECE = 1 << 20  # at most this much inflated output at a time: a bomb is caught early
_ZSTD_SLICE = 256  # zstd inflates one call's input whole: feed it in slices


def _bounded(current: Any, data: bytes) -> Generator[bytes, None, bytes]:
    """Inflate ``data`` in pieces of bounded size, so the caller's cap stops a bomb before it
    sits in memory (zlib and lz4 take an output limit; zstd gets its input in slices).
    Returns the input left after the frame ended (b"" when the frame goes on)."""
    if isinstance(current, _ZLIB_TYPE):
        yield current.decompress(data, _PIECE)
        while current.unconsumed_tail and not current.eof:
            yield current.decompress(current.unconsumed_tail, _PIECE)
    elif isinstance(current, lz4.frame.LZ4FrameDecompressor):
        yield current.decompress(data, max_length=_PIECE)
        while not current.eof and not current.needs_input:
            yield current.decompress(b"", max_length=_PIECE)
    else:  # zstd
        for pos in range(0, len(data), _ZSTD_SLICE):
            yield current.decompress(data[pos:pos + _ZSTD_SLICE])
            if current.eof:
                return bytes(current.unused_data or b"") + data[pos + _ZSTD_SLICE:]
        return b""
    return bytes(current.unused_data or b"") if current.eof else b""


def pick_encoding(accept_encoding: str | None) -> str | None:
    """The response encoding we use for this Accept-Encoding, if any."""
    if not accept_encoding:
        return None
    offered = set()
    for item in accept_encoding.lower().split(","):
        name, _, rest = item.strip().partition(";")
        if rest.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        offered.add(name.strip())
    return next((name for name in RESPONSE_ENCODINGS if name in offered), None)


class Encoder(Protocol):
    """Compresses a response piece by piece into one continuous stream."""

    def compress(self, data: bytes | memoryview) -> bytes: ...

    def finish(self) -> bytes: ...


class _Lz4Encoder:
    def __init__(self) -> None:
        self._comp = lz4.frame.LZ4FrameCompressor()
        self._header: bytes = self._comp.begin()

    def compress(self, data: bytes | memoryview) -> bytes:
        out, self._header = self._header + self._comp.compress(data), b""
        return out

    def finish(self) -> bytes:
        return self._header + self._comp.flush()


class _ZlibEncoder:
    def __init__(self, wbits: int) -> None:
        self._comp = zlib.compressobj(3, zlib.DEFLATED, wbits)  # ClickHouse's default level

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._comp.compress(data)

    def finish(self) -> bytes:
        return self._comp.flush()


class _ZstdEncoder:
    def __init__(self) -> None:
        self._comp = zstandard.ZstdCompressor(level=1).compressobj()

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._comp.compress(data)

    def finish(self) -> bytes:
        return self._comp.flush()


def encoder(name: str) -> Encoder:
    """A response encoder for a name :func:`pick_encoding` returned."""
    if name == "lz4":
        return _Lz4Encoder()
    if name == "zstd":
        return _ZstdEncoder()
    return _ZlibEncoder(31 if name == "gzip" else 15)


def summary_header(*, read_rows: int = 0, read_bytes: int = 0, written_rows: int = 0,
                   written_bytes: int = 0, result_rows: int = 0, result_bytes: int = 0,
                   elapsed_ns: int = 0) -> str:
    """``X-ClickHouse-Summary``: ClickHouse writes every number as a JSON string."""
    values = {"read_rows": read_rows, "read_bytes": read_bytes, "written_rows": written_rows,
              "written_bytes": written_bytes, "total_rows_to_read": 0,
              "result_rows": result_rows, "result_bytes": result_bytes,
              "elapsed_ns": elapsed_ns}
    return json.dumps({k: str(v) for k, v in values.items()}, separators=(",", ":"))
