"""The store's pure pieces: statement splitting, body codecs, URL parameters, error codes."""

from __future__ import annotations

import gzip
import io
import json
import zlib

import lz4.frame
import pytest
import zstandard

from streams.embedded import http_codec as codec
from streams.embedded.ch_errors import QueryError, http_status_of
from streams.embedded.sql_scan import Head, find_insert_data, parse_statement, read_statement

NATIVE_LIKE = b"\x0c\x02\x01a\x06String'\"`;FORMAT CSV\n\x00\xff"  # quotes, ';' and words


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# --- finding INSERT data -------------------------------------------------------------


def test_insert_format_data_starts_after_the_line_of_the_format_name() -> None:
    buf = b"INSERT INTO db.t (a, b) FORMAT Native\n" + NATIVE_LIKE
    found = find_insert_data(buf, complete=True)
    assert not isinstance(found, Head)
    assert found.sql == "INSERT INTO db.t (a, b)"
    assert found.insert_format == "Native"
    assert buf[found.data_start:] == NATIVE_LIKE


def test_data_on_the_same_line_starts_at_its_first_non_blank_byte() -> None:
    buf = b"INSERT INTO t FORMAT CSV   1,2\n"
    found = find_insert_data(buf, complete=True)
    assert not isinstance(found, Head)
    assert buf[found.data_start:] == b"1,2\n"


def test_values_data_follows_the_keyword() -> None:
    buf = b"insert into t values (1, 'a;b'), (2, 'FORMAT x')"
    found = find_insert_data(buf, complete=True)
    assert not isinstance(found, Head)
    assert (found.sql, found.insert_format) == ("insert into t", "Values")
    assert buf[found.data_start:] == b" (1, 'a;b'), (2, 'FORMAT x')"


@pytest.mark.parametrize("sql", [
    b"INSERT INTO t SELECT * FROM s FORMAT Native",
    b"INSERT INTO t FROM INFILE 'x.csv' FORMAT CSV",
    b"SELECT 1 FORMAT Native",
    b"CREATE TABLE t (a UInt8) ENGINE = Memory",
])
def test_statements_without_inline_data_are_plain(sql: bytes) -> None:
    assert find_insert_data(sql, complete=True) is Head.PLAIN


def test_names_called_format_are_not_the_clause() -> None:
    buf = b"INSERT INTO db.format (`format`, \"FORMAT\") SETTINGS x = 'FORMAT' FORMAT TSV\n1\t2\n"
    found = find_insert_data(buf, complete=True)
    assert not isinstance(found, Head)
    assert found.sql == "INSERT INTO db.format (`format`, \"FORMAT\") SETTINGS x = 'FORMAT'"
    assert found.insert_format == "TSV"


@pytest.mark.parametrize("cut", [b"INSE", b"INSERT INTO t FORM", b"INSERT INTO t FORMAT Nat",
                                 b"INSERT INTO t FORMAT Native", b"INSERT INTO t FORMAT Native  ",
                                 b"INSERT INTO t ('a", b"INSERT INTO t -"])
def test_a_cut_statement_asks_for_more(cut: bytes) -> None:
    assert find_insert_data(cut, complete=False) is Head.MORE


def test_read_statement_gives_the_same_answer_however_the_body_is_cut() -> None:
    body = b" (a) FORMAT RowBinary\n" + NATIVE_LIKE * 50
    for size in (1, 3, 7, 64, 10_000):
        stmt, rest = read_statement("INSERT INTO t", _pieces(body, size))
        assert (stmt.sql, stmt.insert_format) == ("INSERT INTO t\n (a)", "RowBinary")
        assert b"".join(rest) == NATIVE_LIKE * 50


def test_read_statement_joins_query_parameter_and_body_with_a_newline() -> None:
    stmt, rest = read_statement("INSERT INTO t FORMAT CSV", [b"1,2\n", b"3,4\n"])
    assert stmt.insert_format == "CSV"
    assert b"".join(rest) == b"1,2\n3,4\n"
    plain, nothing = read_statement("SELECT", [b"1 FORMAT JSON"])
    assert (plain.sql, plain.output_format, list(nothing)) == ("SELECT\n1 FORMAT JSON", "JSON", [])


def test_an_insert_header_that_never_ends_is_refused() -> None:
    with pytest.raises(QueryError) as err:
        read_statement("", [b"INSERT INTO t (" + b"a, " * 1000], max_head=100)
    assert err.value.code == 229


# --- plain statements ------------------------------------------------------------------


def test_plain_statement_keyword_and_format() -> None:
    stmt = parse_statement(b"-- hello\n/* c */ select format, 'FORMAT X' from t\n FORMAT Native;")
    assert stmt.keyword == "SELECT"
    assert stmt.output_format == "Native"
    assert stmt.sql.endswith("FORMAT Native")
    assert stmt.returns_rows
    assert parse_statement(b"(SELECT 1)").keyword == "SELECT"
    assert parse_statement(b"SELECT format FROM t").output_format is None
    assert not parse_statement(b"CREATE TABLE t (a UInt8) ENGINE = Memory").returns_rows
    assert parse_statement(b"  ").keyword == ""


def test_several_statements_are_refused_like_clickhouse_does() -> None:
    with pytest.raises(QueryError) as err:
        parse_statement(b"SELECT 1; SELECT 'a;b'")
    assert err.value.code == 62
    assert b"Multi-statements are not allowed" in err.value.body()
    assert parse_statement(b"SELECT ';' ; ").sql == "SELECT ';'"


# --- request bodies ------------------------------------------------------------------


def test_chunked_body_is_read_chunk_by_chunk() -> None:
    raw = b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nTrailer: x\r\n\r\nNEXT REQUEST"
    rfile = io.BytesIO(raw)
    reader = codec.BodyReader(rfile, None, chunked=True)
    assert list(reader) == [b"abcd", b"efg"]
    assert reader.done
    assert rfile.read() == b"NEXT REQUEST"  # the keep-alive stream is left where it belongs


def test_content_length_body_and_its_truncation() -> None:
    assert b"".join(codec.BodyReader(io.BytesIO(b"hello, more"), "5", chunked=False)) == b"hello"
    with pytest.raises(ConnectionError):
        list(codec.BodyReader(io.BytesIO(b"short"), "50", chunked=False))
    assert codec.BodyReader(io.BytesIO(b""), None, chunked=False).done


FRAMES = {
    # clickhouse-connect compresses each block as a frame of its own: concatenated frames.
    "lz4": lambda parts: b"".join(lz4.frame.compress(p) for p in parts),
    "zstd": lambda parts: b"".join(zstandard.ZstdCompressor().compress(p) for p in parts),
    "gzip": lambda parts: b"".join(gzip.compress(p) for p in parts),
    "deflate": lambda parts: zlib.compress(b"".join(parts)),
}


@pytest.mark.parametrize("encoding", sorted(FRAMES))
@pytest.mark.parametrize("piece", [1, 5, 4096])
def test_compressed_bodies_decode_across_frames_and_pieces(encoding: str, piece: int) -> None:
    parts = [bytes(range(256)) * 20, b"second block", b"x" * 70_000]
    wire = FRAMES[encoding](parts)
    assert b"".join(codec.decoded(_pieces(wire, piece), encoding)) == b"".join(parts)


def test_bad_or_unknown_encodings_are_clickhouse_errors() -> None:
    with pytest.raises(QueryError) as unknown:
        list(codec.decoded([b"x"], "snappy"))
    assert unknown.value.code == 89
    truncated = lz4.frame.compress(b"y" * 10_000)[:-5]
    with pytest.raises(QueryError) as cut:
        list(codec.decoded([truncated], "lz4"))
    assert cut.value.code == 271


@pytest.mark.parametrize("name", codec.RESPONSE_ENCODINGS)
def test_response_encoders_make_one_stream(name: str) -> None:
    enc = codec.encoder(name)
    wire = enc.compress(b"a" * 100_000) + enc.compress(memoryview(b"b" * 10)) + enc.finish()
    assert b"".join(codec.decoded([wire], name)) == b"a" * 100_000 + b"b" * 10


def test_pick_encoding_prefers_the_cheapest_offered() -> None:
    assert codec.pick_encoding("lz4,zstd,gzip,deflate") == "lz4"
    assert codec.pick_encoding("gzip, deflate, br") == "gzip"
    assert codec.pick_encoding("zstd;q=0, gzip;q=0.5") == "gzip"
    assert codec.pick_encoding("br") is None
    assert codec.pick_encoding(None) is None


# --- URL parameters, summary, errors ---------------------------------------------------


def test_url_parameters_are_sorted_into_transport_params_and_settings() -> None:
    params = codec.parse_params([
        ("query", "SELECT {x:UInt8}"), ("database", "rapport"), ("param_x", "1"),
        ("session_id", "s1"), ("session_timeout", "99999"), ("wait_end_of_query", "1"),
        ("client_protocol_version", "54405"), ("date_time_input_format", "best_effort"),
        ("max_threads", "1"), ("max_threads", "2"), ("enable_http_compression", "0"),
        ("param_x", "ignored: the first one wins"), ("", "skipped"),
    ])
    assert params.query == "SELECT {x:UInt8}"
    assert params.database == "rapport"
    assert params.params == {"x": "1"}
    assert params.settings == {"date_time_input_format": "best_effort", "max_threads": "2"}
    assert params.session_id == "s1" and params.session_timeout == 3600.0
    assert params.wait_end_of_query and not params.http_compression


def test_clickhouse_headers_name_database_format_and_query_id() -> None:
    headers = {"X-ClickHouse-Database": "h", "X-ClickHouse-Format": "CSV",
               "X-ClickHouse-Query-Id": "from-header"}
    params = codec.parse_params([("database", "p"), ("query_id", "from-param")], headers)
    assert (params.database, params.default_format, params.query_id) == ("h", "CSV",
                                                                         "from-param")
    assert codec.parse_params([], headers).query_id == "from-header"


def test_clickhouse_block_compression_is_refused_clearly() -> None:
    with pytest.raises(QueryError) as err:
        codec.parse_params([("compress", "1")])
    assert err.value.code == 48 and err.value.http_status == 501


def test_summary_numbers_are_json_strings() -> None:
    summary = json.loads(codec.summary_header(written_rows=3, elapsed_ns=7))
    assert summary["written_rows"] == "3" and summary["read_rows"] == "0"


def test_chdb_errors_keep_their_code_and_name() -> None:
    raw = RuntimeError("Streaming insert append failed: Code: 27. DB::Exception: Cannot parse "
                       "input: expected ','. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)")
    err = QueryError.from_chdb(raw)
    assert err.code == 27 and err.http_status == 400
    assert err.body().startswith(b"Code: 27. DB::Exception: Cannot parse input")
    assert QueryError.from_chdb(RuntimeError("boom")).code == 1001
    assert [http_status_of(c) for c in (60, 62, 164, 48, 202, 999)] == [404, 400, 403, 501, 503,
                                                                         500]
