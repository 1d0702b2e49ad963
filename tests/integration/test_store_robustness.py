"""The store's HTTP side holds against malformed, slow, oversized and too many requests.

A real StoreServer in this process (small bounds so the tests are quick), raw sockets for
what no well-behaved client sends, and a hypothesis fuzz test: whatever bytes arrive, the
store answers or closes cleanly and keeps serving the pipeline.
"""

from __future__ import annotations

import base64
import gzip
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import lz4.frame
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.embedded.store import StoreServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    with StoreServer(tmp_path_factory.mktemp("robust") / "data", max_connections=6, head_timeout_s=1.5,
                     idle_timeout_s=3.0, max_inflated_bytes=4 << 20) as server:
        yield server


def port_of(store: StoreServer) -> int:
    return int(store.url.rsplit(":", 1)[1])


def auth(store: StoreServer) -> bytes:
    user = store.users.pipeline
    return b"Authorization: Basic " + base64.b64encode(f"{user.name}:{user.password}".encode()) + b"\r\n"


def exchange(store: StoreServer, data: bytes, timeout_s: float = 10.0, half_close: bool = True) -> bytes:
    """Send ``data``, (optionally) end our side, read until the store closes."""
    with socket.create_connection(("127.0.0.1", port_of(store)), timeout=timeout_s) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the store may close before reading all of it: that is an answer too
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
        return got


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def serves_the_pipeline(store: StoreServer) -> bool:
    user = store.users.pipeline
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port_of(store), username=user.name,
                                           password=user.password)
    try:
        return client.command("SELECT 1") == 1
    finally:
        client.close()


def post(store: StoreServer, sql: bytes, extra: bytes = b"") -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: x\r\n" + auth(store) + extra
            + b"Content-Length: %d\r\n\r\n" % len(sql) + sql)


@pytest.mark.parametrize("length", [b"-5", b"abc", b"5, 6", b"+5", b"0x10", b"1" * 30])
def test_a_bad_content_length_is_400(store: StoreServer, length: bytes) -> None:
    answer = exchange(store, b"POST / HTTP/1.1\r\nHost: x\r\n" + auth(store) + b"Content-Length: " + length
                      + b"\r\n\r\nSELECT 1")
    assert status_of(answer) == 400
    assert serves_the_pipeline(store)


def test_a_long_request_line_and_too_many_headers_are_refused(store: StoreServer) -> None:
    assert status_of(exchange(store, b"GET /?query=" + b"1" * 40000 + b" HTTP/1.1\r\n\r\n")) == 414
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    assert status_of(exchange(store, b"GET /ping HTTP/1.1\r\n" + many + b"\r\n")) == 431
    big = b"X-Big: " + b"v" * 60000 + b"\r\nX-Big2: " + b"v" * 60000 + b"\r\n"
    assert status_of(exchange(store, b"GET /ping HTTP/1.1\r\n" + big + b"\r\n")) == 431


def test_the_whole_head_has_a_deadline(store: StoreServer) -> None:
    with socket.create_connection(("127.0.0.1", port_of(store)), timeout=10) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\n")
        began = time.monotonic()
        closed = False
        for _ in range(40):  # one header line every 0.25 s: each read is quick, the head never ends
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            time.sleep(0.25)
            try:
                sock.settimeout(0.01)
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except OSError:
                closed = True
                break
        assert closed, "a slow head held its connection"
        assert time.monotonic() - began < 8
    assert serves_the_pipeline(store)


@pytest.mark.parametrize("encoding,compress", [
    ("gzip", gzip.compress), ("deflate", zlib.compress),
    ("lz4", lz4.frame.compress), ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_a_body_inflating_past_the_cap_is_413(store: StoreServer, encoding: str, compress) -> None:  # type: ignore[no-untyped-def]
    create = b"CREATE TABLE IF NOT EXISTS default.bomb (s String) ENGINE = Null"
    assert status_of(exchange(store, post(store, create))) == 200
    bomb = compress(b"INSERT INTO default.bomb FORMAT TSV\n" + (b"0" * 1023 + b"\n") * (64 << 10))
    assert len(bomb) < 4 << 20
    answer = exchange(store, post(store, bomb, b"Content-Encoding: " + encoding.encode() + b"\r\n"))
    assert status_of(answer) == 413
    assert serves_the_pipeline(store)


def test_more_connections_than_slots_get_503_at_once(store: StoreServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", port_of(store)), timeout=5) for _ in range(6)]
    try:
        time.sleep(0.3)
        began = time.monotonic()
        answer = exchange(store, b"GET /ping HTTP/1.1\r\n\r\n")
        assert status_of(answer) == 503 and b"X-ClickHouse-Exception-Code: 202" in answer
        assert time.monotonic() - began < 2, "the refusal waited for a slot"
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert serves_the_pipeline(store)


_METHODS = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"G\x00T", b""])
_PATHS = st.sampled_from([b"/", b"/ping", b"/?query=SELECT%201", b"/?query=", b"*", b"/%zz", b"/?a=%ff&&="])
_HEADER = st.tuples(
    st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Content-Encoding", b"Authorization",
                     b"X-ClickHouse-User", b"X-ClickHouse-Key", b"Origin", b"Sec-Fetch-Site", b"Expect",
                     b"Connection", b"Content-Type", b"X"]),
    st.one_of(st.binary(max_size=40), st.sampled_from([b"-1", b"chunked", b"gzip", b"lz4", b"zstd",
                                                       b"100-continue", b"999999999", b"Basic Og=="])),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9", b""]))
    line = draw(_METHODS) + b" " + draw(_PATHS) + b" " + version
    headers = b"".join(name + b": " + value + b"\r\n" for name, value in draw(st.lists(_HEADER, max_size=6)))
    body = draw(st.binary(max_size=300))
    return line + b"\r\n" + headers + draw(st.sampled_from([b"\r\n", b"", b"\n"])) + body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=requests())
def test_arbitrary_bytes_are_answered_or_closed_cleanly(store: StoreServer, data: bytes) -> None:
    answer = exchange(store, data, timeout_s=15)
    assert answer == b"" or answer.startswith(b"HTTP/1."), answer[:200]
    assert exchange(store, b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n").endswith(b"Ok.\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sql=st.binary(max_size=200), encoding=st.sampled_from([b"", b"gzip", b"lz4", b"zstd", b"deflate"]))
def test_arbitrary_bodies_with_credentials_are_answered(store: StoreServer, sql: bytes, encoding: bytes) -> None:
    extra = b"Content-Encoding: " + encoding + b"\r\n" if encoding else b""
    answer = exchange(store, post(store, sql, extra + b"Connection: close\r\n"), timeout_s=15)
    assert answer == b"" or status_of(answer) in (200, 400, 403, 404, 413, 500, 501), answer[:300]


def test_after_the_fuzzing_the_pipeline_is_served(store: StoreServer, tmp_path: Path) -> None:
    assert serves_the_pipeline(store)
