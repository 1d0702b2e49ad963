"""The ClickHouse HTTP interface of the store: from a request to chDB and back.

What is spoken is the subset the unmodified ``clickhouse-connect`` HTTP client and Grafana's
ClickHouse datasource use: ``/ping``; SQL from the ``query`` parameter followed by the body;
Native answers written for the client's ``client_protocol_version`` (clickhouse-go, Grafana);
``database``, ``default_format``, ``param_*``, sessions and per-request settings; INSERT data
streamed into chDB as it arrives (chunked, compressed); answers with ClickHouse's headers and
errors with ClickHouse's codes. A SELECT's answer is held, and sent with a Content-Length, up
to a bound (so a failure is still a proper error), then streamed; that is ClickHouse's own
trade-off for ``wait_end_of_query``, and it caps the memory a large answer takes.

Threads: one per open connection (an idle keep-alive connection costs only that), at most
``max_connections``; how many statements run in chDB at once is the engine's to bound.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from streams.embedded import http_codec as codec
from streams.embedded.ch_errors import (
    ACCESS_DENIED,
    AUTHENTICATION_FAILED,
    NOT_IMPLEMENTED,
    READONLY,
    STD_EXCEPTION,
    SYNTAX_ERROR,
    QueryError,
)
from streams.embedded.credentials import StoreUsers, User
from streams.embedded.engine import Engine, Handle, Stats
from streams.embedded.native_revision import NATIVE_REWRITE_SETTINGS, NativeRevision
from streams.embedded.reader import reader_settings
from streams.embedded.sql_scan import RESULT_KEYWORDS, STREAMABLE_KEYWORDS, read_statement

log = logging.getLogger(__name__)


class Serving(Protocol):
    """What the HTTP side needs to know of the store it serves."""

    engine: Engine
    users: StoreUsers
    idle_timeout_s: float
    head_timeout_s: float
    max_inflated_bytes: int
    compress_responses: bool
    allowed_origins: frozenset[str]

# A SELECT's answer is held (and sent with a Content-Length, so an error is still a proper
# error) up to this size; beyond it, it streams and an error can only cut the answer short.
# Clients that ask to wait_end_of_query (clickhouse-connect's query()) get the larger bound.
WAIT_BUFFER = 32 << 20
STREAM_BUFFER = 256 << 10
_BINARY_FORMATS = ("Native", "RowBinary", "Arrow", "Parquet", "ORC", "Avro", "MsgPack")
_GET_ALLOWED = RESULT_KEYWORDS | {"SET", "USE"}
# A request head (request line and headers) larger than this is refused (431).
MAX_HEAD = 64 << 10
MAX_REQUEST_LINE = 32 << 10
MAX_HEADERS = 64
_BUSY_BODY = (b"Code: 202. DB::Exception: Too many simultaneous connections to the store. "
              b"(TOO_MANY_SIMULTANEOUS_QUERIES)\n")
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=UTF-8\r\n"
         b"X-ClickHouse-Exception-Code: 202\r\nConnection: close\r\n"
         b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class _HeadTooLarge(Exception):
    """The request head went over MAX_HEAD."""


class _HeadReader:
    """The connection's reader while the request head is read: every line must come before
    one deadline for the whole head (a client sending a byte now and then cannot hold its
    thread), and the head may not exceed ``MAX_HEAD`` bytes."""

    def __init__(self, rfile: Any, sock: socket.socket, deadline: float) -> None:
        self._rfile = rfile
        self._sock = sock
        self._deadline = deadline
        self._left = MAX_HEAD

    def readline(self, limit: int = -1) -> bytes:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request head took too long")
        self._sock.settimeout(remaining)
        size = min(limit if limit >= 0 else self._left + 1, self._left + 1)
        line: bytes = self._rfile.readline(size)
        self._left -= len(line)
        if self._left < 0:
            raise _HeadTooLarge
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rfile, name)


class StoreHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with a cap on connections and TCP_NODELAY on each."""

    daemon_threads = True
    block_on_close = False  # stop() wakes idle connections and waits for statements instead
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], store: Serving, max_connections: int) -> None:
        self.store = store
        self.stopping = False
        self.refused_browser = 0  # requests refused as browser-borne (visible to tests, logs)
        self._conn_slots = threading.BoundedSemaphore(max_connections)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Without TCP_NODELAY every small answer waits ~40 ms for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.stopping or not self._conn_slots.acquire(blocking=False):
            # Too many connections: say so at once and close; never stall the accept loop.
            try:
                request.settimeout(0.5)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
            self._conn_slots.release()

    def wake_connections(self) -> None:
        """Shut every client socket down, so idle keep-alive threads return."""
        with self._open_lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    # A request line without a version is answered with a status line all the same (the
    # stdlib's HTTP/0.9 answer is a bare body no client can tell from data).
    default_request_version = "HTTP/1.0"
    server: StoreHTTPServer

    def setup(self) -> None:
        super().setup()
        # An idle keep-alive connection gives its thread back after this long.
        self.connection.settimeout(self.server.store.idle_timeout_s)

    def handle_one_request(self) -> None:
        """The stdlib's, with bounds: an idle wait for the next request, then one deadline
        and a size cap for the whole head (request line and headers), then the body with the
        idle timeout per read."""
        store = self.server.store
        try:
            self.connection.settimeout(store.idle_timeout_s)
            if not self.rfile.peek(1):  # type: ignore[attr-defined]
                self.close_connection = True
                return
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        real = self.rfile
        self.rfile = _HeadReader(real, self.connection, time.monotonic() + store.head_timeout_s)  # type: ignore[assignment]
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline, self.request_version, self.command = "", "", ""
                self.send_error(414, "Request-URI Too Long")
                self.close_connection = True
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                self.close_connection = True
                return
            if len(self.headers) > MAX_HEADERS:
                self.send_error(431, "Too many headers")
                self.close_connection = True
                return
        except _HeadTooLarge:
            self.send_error(431, "Request header fields too large")
            self.close_connection = True
            return
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        finally:
            self.rfile = real
        self.connection.settimeout(store.idle_timeout_s)
        try:
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(501, f"Unsupported method ({self.command!r})")
                self.close_connection = True
                return
            method()
            self.wfile.flush()
        except (TimeoutError, OSError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch(post=False)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch(post=True)

    def _dispatch(self, post: bool) -> None:
        url = urlsplit(self.path)
        try:
            body = codec.BodyReader(self.rfile, self.headers.get("Content-Length"),
                                    "chunked" in self.headers.get("Transfer-Encoding", "").lower())
        except QueryError as err:  # no framing to trust: answer and close
            self.close_connection = True
            self._reply(err.http_status, [("X-ClickHouse-Exception-Code", str(err.code))],
                        err.body(), "text/plain; charset=UTF-8")
            return
        if url.path in ("/ping", "/replicas_status") or (url.path == "/" and not url.query
                                                           and body.done):
            self._reply(200, [], b"Ok.\n", "text/plain; charset=UTF-8")
            return
        refusal = browser_refusal(self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site"),
                                  self.server.store.allowed_origins)
        if refusal is not None:  # before credentials and before any SQL
            self.server.refused_browser += 1
            log.warning("refused a request from a web page: %s", refusal)
            self._fail(QueryError.make(ACCESS_DENIED, "ACCESS_DENIED", refusal), body, str(uuid.uuid4()))
            return
        if url.path != "/":
            self._reply(404, [], b"There is no handle " + url.path.encode() + b"\n", "text/plain")
            return
        self._started = False
        query_id = str(uuid.uuid4())
        try:
            params = codec.parse_params(parse_qsl(url.query, keep_blank_values=True),
                                        self.headers)
            user = self._authenticate(params)
            query_id = params.query_id or query_id
            if "multipart/form-data" in self.headers.get("Content-Type", ""):
                raise QueryError.make(NOT_IMPLEMENTED, "NOT_IMPLEMENTED",
                                      "multipart/form-data requests (external data) are not "
                                      "supported by the embedded store")
            self._execute(params, body, post, query_id, user)
        except QueryError as err:
            self._fail(err, body, query_id)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away or broke the framing
        except Exception as exc:  # noqa: BLE001 - a bug must answer 500, not kill the thread
            log.exception("store request failed")
            self._fail(QueryError.make(STD_EXCEPTION, "STD_EXCEPTION", repr(exc)), body, query_id)

    def _authenticate(self, params: codec.RequestParams) -> User:
        name, password = codec.credentials(params, self.headers)
        user = self.server.store.users.authenticate(name, password)
        if user is None:
            raise QueryError.make(AUTHENTICATION_FAILED, "AUTHENTICATION_FAILED",
                                  f"{name}: Authentication failed: password is incorrect, or "
                                  "there is no user with such name")
        return user

    def _execute(self, params: codec.RequestParams, body: codec.BodyReader, post: bool,
                 query_id: str, user: User) -> None:
        began = time.perf_counter()
        data = codec.decoded(body, self.headers.get("Content-Encoding"),
                             self.server.store.max_inflated_bytes)
        stmt, rest = read_statement(params.query, data)
        if not stmt.keyword:
            raise QueryError.make(SYNTAX_ERROR, "SYNTAX_ERROR", "Empty query")
        if not post and (stmt.insert_format or stmt.keyword not in _GET_ALLOWED):
            raise QueryError.make(READONLY, "READONLY",
                                  "Cannot execute query in readonly mode. For queries over HTTP, "
                                  "method GET implies readonly. You should use method POST for "
                                  "modifying queries")
        fmt = stmt.output_format or params.default_format or "TabSeparated"
        # A client naming its protocol revision (Grafana's datasource) gets Native written for
        # that revision, as ClickHouse does; chDB writes revision 0, so the answer is rewritten.
        rewrite = (NativeRevision(params.client_protocol_version)
                   if stmt.returns_rows and fmt == "Native" and params.client_protocol_version > 0
                   else None)
        settings = {**params.settings, **NATIVE_REWRITE_SETTINGS} if rewrite else params.settings
        headers = [("X-ClickHouse-Query-Id", query_id),
                   ("X-ClickHouse-Timezone", self.server.store.engine.timezone)]
        if stmt.returns_rows:
            headers.append(("X-ClickHouse-Format", fmt))
        encoding = self._response_encoding(params)
        engine = self.server.store.engine
        parts: list[Any]
        borrowed: AbstractContextManager[Handle]
        if user.role == "reader":  # read-only handles; sessions are not kept for readers
            borrowed = engine.reader_handle(reader_settings(settings, engine.reader_caps))
        else:
            borrowed = engine.handle(params.session_id, session_timeout=params.session_timeout,
                                     session_check=params.session_check,
                                     close_session=params.close_session)
        shared = params.session_id is None or user.role == "reader"
        with borrowed as handle:
            handle.prepare(params.database, settings)
            checked = (f"{stmt.sql} FORMAT {stmt.insert_format}" if stmt.insert_format is not None
                       else stmt.sql)
            engine.guard.check(checked, params.params, handle.text)
            if stmt.insert_format is not None:
                if params.params and "{" in stmt.sql:
                    raise QueryError.make(NOT_IMPLEMENTED, "NOT_IMPLEMENTED",
                                          "query parameters in an INSERT with data")
                stats, parts = handle.insert(stmt.sql, stmt.insert_format, rest), []
            elif stmt.keyword in STREAMABLE_KEYWORDS:
                chunks = handle.stream(stmt.sql, fmt, params.params)
                if user.role == "reader":  # chDB 4.4 ignores max_result_bytes: the store counts
                    chunks = _capped(chunks, engine.reader_caps.max_result_bytes)
                limit = WAIT_BUFFER if params.wait_end_of_query else STREAM_BUFFER
                with closing(chunks):
                    parts, ended = _collect(chunks, limit)
                    if not ended:  # too big to hold: stream it, errors can only cut it short
                        self._stream(parts, chunks, headers, fmt, encoding, began, rewrite)
                        return
                stats = sum((Stats.of(part) for part in parts), Stats())
            else:
                result = handle.query(stmt.sql, fmt, params.params)
                handle.after_session_statement(stmt.keyword, shared=shared)
                stats, parts = Stats.of(result), [result]
        # The handle is back before we answer: the client's next statement may use it at once.
        self._answer(headers, stats, parts, fmt if stmt.returns_rows else "", encoding, began, rewrite)

    def _response_encoding(self, params: codec.RequestParams) -> str | None:
        if not (self.server.store.compress_responses and params.http_compression):
            return None  # identity is always acceptable; on loopback compression only costs CPU
        return codec.pick_encoding(self.headers.get("Accept-Encoding"))

    def _answer(self, headers: list[tuple[str, str]], stats: Stats, parts: list[Any], fmt: str,
                encoding: str | None, began: float, rewrite: NativeRevision | None = None) -> None:
        views: list[bytes | memoryview]
        views = [view for view in (part.get_memview().view() for part in parts) if len(view)]
        if rewrite is not None:
            whole = rewrite.feed(b"".join(views)) + rewrite.finish()
            views = [whole] if whole else []
        if encoding and views:
            enc = codec.encoder(encoding)
            views = [b"".join([enc.compress(view) for view in views] + [enc.finish()])]
            headers.append(("Content-Encoding", encoding))
        headers.append(("X-ClickHouse-Summary", _summary(stats, began)))
        self._head(200, headers, sum(len(view) for view in views), _content_type(fmt))
        for view in views:
            self.wfile.write(view)

    def _stream(self, parts: list[Any], chunks: Iterator[Any], headers: list[tuple[str, str]],
                fmt: str, encoding: str | None, began: float,
                rewrite: NativeRevision | None = None) -> None:
        enc = codec.encoder(encoding) if encoding else None
        if enc is not None:
            headers.append(("Content-Encoding", encoding or ""))
        headers.append(("X-ClickHouse-Summary", _summary(Stats(), began)))
        self._head(200, headers, None, _content_type(fmt))
        self._started = True
        for chunk in itertools.chain(parts, chunks):
            view: bytes | memoryview = chunk.get_memview().view()
            if rewrite is not None:
                view = rewrite.feed(view)
            self._write_chunk(enc.compress(view) if enc else view)
        if rewrite is not None:
            rewrite.finish()
        if enc is not None:
            self._write_chunk(enc.finish())
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes | memoryview) -> None:
        if not len(data):
            return
        size = b"%X\r\n" % len(data)
        if len(data) < 65536:
            self.wfile.write(size + bytes(data) + b"\r\n")
        else:
            self.wfile.write(size)
            self.wfile.write(data)
            self.wfile.write(b"\r\n")

    def _fail(self, err: QueryError, body: codec.BodyReader, query_id: str) -> None:
        log.debug("query %s failed: %s", query_id, err)
        if getattr(self, "_started", False):
            self.close_connection = True  # mid-stream: all we can do is cut the answer short
            return
        try:
            if not body.drain():
                self.close_connection = True
        except (ConnectionError, ValueError, OSError):
            self.close_connection = True
        headers = [("X-ClickHouse-Exception-Code", str(err.code)),
                   ("X-ClickHouse-Query-Id", query_id)]
        self._reply(err.http_status, headers, err.body(), "text/plain; charset=UTF-8")

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes,
               content_type: str) -> None:
        self._head(status, headers, len(payload), content_type)
        if len(payload):
            self.wfile.write(payload)

    def _head(self, status: int, headers: list[tuple[str, str]], length: int | None,
              content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("X-ClickHouse-Server-Display-Name", "rapport-store")
        for name, value in headers:
            self.send_header(name, value)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.send_header("Keep-Alive", f"timeout={int(self.server.store.idle_timeout_s)}")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()


def browser_refusal(origin: str | None, fetch_site: str | None,
                    allowed: frozenset[str]) -> str | None:
    """Why a request is refused as sent by a web page, or ``None``.

    A page can make the browser POST a text/plain body or GET an ``<img>`` to any loopback
    port without a CORS preflight; the browser then says so itself: an ``Origin`` (on POST)
    and ``Sec-Fetch-Site`` (``same-site`` for a page on another loopback port, ``cross-site``
    for the web; ``none`` only when the user typed the URL). Clients that are not browsers
    (clickhouse-connect, Grafana's backend, curl) send neither."""
    if origin is not None and origin.strip() in allowed:
        return None
    if origin is not None:
        return f"a request from the web origin {origin[:100]!r}, which is not allowed (RAPPORT_STORE_ALLOWED_ORIGINS)"
    if fetch_site is not None and fetch_site.strip().lower() != "none":
        return f"a request a web page made the browser send (Sec-Fetch-Site: {fetch_site[:40]})"
    return None


def _capped(chunks: Generator[Any, None, None], cap: int) -> Generator[Any, None, None]:
    """The chunks while their total stays within ``cap`` bytes, then 396 (as ClickHouse's
    ``max_result_bytes`` would): before the answer starts, a proper error; after, a cut."""
    total = 0
    with closing(chunks):
        for chunk in chunks:
            total += chunk.size()
            if total > cap:
                raise QueryError.make(396, "TOO_MANY_ROWS_OR_BYTES",
                                      f"Limit for result exceeded, max bytes: {cap}")
            yield chunk


def _collect(chunks: Iterator[Any], limit: int) -> tuple[list[Any], bool]:
    """Chunks until ``limit`` bytes are held; whether that was the whole answer."""
    parts: list[Any] = []
    held = 0
    for chunk in chunks:
        parts.append(chunk)
        held += chunk.size()
        if held > limit:
            return parts, False
    return parts, True


def _summary(stats: Stats, began: float) -> str:
    return codec.summary_header(
        read_rows=stats.read_rows, read_bytes=stats.read_bytes, written_rows=stats.written_rows,
        written_bytes=stats.written_bytes, result_rows=stats.result_rows,
        result_bytes=stats.result_bytes, elapsed_ns=int((time.perf_counter() - began) * 1e9))


def _content_type(fmt: str) -> str:
    if not fmt:
        return "text/plain; charset=UTF-8"
    if fmt.startswith(_BINARY_FORMATS):
        return "application/octet-stream"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    return "text/plain; charset=UTF-8"
