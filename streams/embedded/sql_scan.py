"""Where a ClickHouse HTTP request's statement ends and its INSERT data begins.

The HTTP interface reads the SQL from the ``query`` URL parameter followed by the request
body, and an ``INSERT ... FORMAT X`` (or ``VALUES``) statement is followed by its data in that
same stream. chDB takes the two apart (``send_insert(statement, format)``, then the data in
pieces), so the store must find the end of the statement without reading the data as SQL: it
may be binary (Native) and large. The scanner here lexes just enough SQL (strings, quoted
names, comments, brackets) not to be fooled by a ``FORMAT`` or ``;`` inside a literal, works on
bytes so data is never decoded, and says when it needs more bytes. It also finds a plain
statement's ``FORMAT`` clause (the ``X-ClickHouse-Format`` answer header names it) and refuses
several statements in one request, as ClickHouse does over HTTP.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from streams.embedded.ch_errors import QUERY_IS_TOO_LARGE, SYNTAX_ERROR, QueryError

# Statements that answer with rows, so with a format (clickhouse-connect's ``command()`` tells
# "empty result" from "no result" by the presence of X-ClickHouse-Format).
RESULT_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN",
                             "CHECK"})
# Statements chDB's streaming API (``send_query``) accepts.
STREAMABLE_KEYWORDS = frozenset({"SELECT", "WITH"})
# Words that cannot be a format name after FORMAT, e.g. a column called ``format``.
_NOT_FORMAT_NAMES = frozenset({"FROM", "WHERE", "AS", "GROUP", "ORDER", "LIMIT", "HAVING",
                               "UNION", "AND", "OR", "SETTINGS", "INTO"})
# After these, FORMAT is a name (``INSERT INTO format ...``), not the clause.
_NAME_CONTEXT = frozenset({"INTO", "TABLE", "FUNCTION", "."})
# In an INSERT, these at the top level mean the rows come from a query or a file, not the body.
_NO_INLINE_DATA = frozenset({"SELECT", "WITH", "FROM"})

_TOKEN = re.compile(
    rb"""(?P<ws>[ \t\n\r\f\v]+)
      |(?P<line>--[^\n]*+\n)
      |(?P<block>/\*.*?\*/)
      |(?P<str>'(?:[^'\\]++|\\.|'')*+')
      |(?P<qid>"(?:[^"\\]++|\\.|"")*+"|`(?:[^`\\]++|\\.|``)*+`)
      |(?P<word>[A-Za-z_][A-Za-z0-9_$]*+)
      |(?P<num>[0-9][A-Za-z0-9_.]*+)
      |(?P<open>[(\[])
      |(?P<close>[)\]])
      |(?P<semi>;)
      |(?P<other>.)""",
    re.X | re.S,
)
_OPENERS = frozenset(b"'\"`")
_SKIPPED = frozenset({"ws", "line", "block"})


class Head(Enum):
    """What the scanner says when it has not found INSERT data."""

    MORE = "more"  # the bytes so far do not decide; read more of the body
    PLAIN = "plain"  # no data follows the statement: read it whole, then parse_statement()


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a request, and for an INSERT with data, where that data starts."""

    sql: str
    keyword: str  # first keyword, upper case; "" for an empty request
    output_format: str | None = None  # the FORMAT clause of a plain statement
    insert_format: str | None = None  # the input format when data follows ("Values" too)
    data_start: int = 0  # offset of that data in the scanned bytes

    @property
    def returns_rows(self) -> bool:
        return self.keyword in RESULT_KEYWORDS


class _NeedMore(Exception):
    """The buffer ends inside a token."""


def _tokens(buf: bytes, complete: bool) -> Iterator[tuple[str, int, int]]:
    """Significant tokens (kind, start, end), lazily, so a scan that stops early never lexes
    the data after a statement; raises _NeedMore when the end of ``buf`` cuts a token."""
    pos, size = 0, len(buf)
    while pos < size:
        match = _TOKEN.match(buf, pos)
        assert match is not None and match.lastgroup is not None  # "other" matches any byte
        kind, end = match.lastgroup, match.end()
        if kind == "other":
            head = buf[pos]
            unterminated = head in _OPENERS or buf.startswith(b"/*", pos) or (
                buf.startswith(b"--", pos))
            if unterminated:
                if not complete:
                    raise _NeedMore
                yield ("other", pos, size)  # let the engine report the syntax error
                return
            if not complete and end == size and head in b"-/":
                raise _NeedMore  # may be the start of a comment
        elif kind == "word" and end == size and not complete:
            raise _NeedMore  # the word may go on
        if kind not in _SKIPPED:
            yield (kind, pos, end)
        pos = end


def tokens_of(sql: str) -> Iterator[tuple[str, str]]:
    """(kind, text) of each significant token of a whole statement: "word", "str", ..."""
    buf = sql.encode("utf-8")
    for kind, start, end in _tokens(buf, complete=True):
        yield kind, buf[start:end].decode("utf-8", "replace")


def _word(buf: bytes, token: tuple[str, int, int]) -> str:
    kind, start, end = token
    if kind == "word":
        return buf[start:end].decode("ascii").upper()
    return buf[start:end].decode("latin-1")  # punctuation: kept for the name-context check


def _decode(sql: bytes) -> str:
    try:
        return sql.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError.make(SYNTAX_ERROR, "SYNTAX_ERROR",
                              f"query text is not valid UTF-8 at byte {exc.start}") from None


def _data_start(buf: bytes, pos: int, complete: bool) -> int:
    """Data starts after the line of the format name when the rest of that line is blank,
    else at the first non-blank byte (ClickHouse's rule)."""
    size = len(buf)
    while pos < size and buf[pos] in b" \t\r\f\v":
        pos += 1
    if pos == size:
        if not complete:
            raise _NeedMore
        return size
    return pos + 1 if buf[pos] == ord("\n") else pos


def find_insert_data(buf: bytes, complete: bool) -> Statement | Head:
    """For ``INSERT ... FORMAT X <data>`` / ``VALUES <data>``: the statement and data offset.

    ``buf`` is the request's SQL stream read so far; ``complete`` says the stream ended.
    Anything else is ``Head.PLAIN``; ``Head.MORE`` when the bytes so far do not tell.
    """
    try:
        return _scan_insert(buf, complete)
    except _NeedMore:
        return Head.MORE


def _scan_insert(buf: bytes, complete: bool) -> Statement | Head:
    tokens = _tokens(buf, complete)
    first = next(tokens, None)
    if first is None:
        return Head.PLAIN if complete else Head.MORE
    if _word(buf, first) != "INSERT":
        return Head.PLAIN
    depth, prev = 0, "INSERT"
    for token in tokens:
        kind, start, end = token
        word = _word(buf, token)
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "semi" and depth == 0:
            return Head.PLAIN
        elif kind == "word" and depth == 0:
            if word in _NO_INLINE_DATA:
                return Head.PLAIN
            if word == "VALUES":
                sql = _decode(buf[:start]).strip()
                return Statement(sql, "INSERT", insert_format="Values", data_start=end)
            if word == "FORMAT" and prev not in _NAME_CONTEXT:
                name = next(tokens, None)
                if name is None:
                    return Head.PLAIN if complete else Head.MORE
                if name[0] != "word":
                    return Head.PLAIN  # let the engine report it
                sql = _decode(buf[:start]).strip()
                fmt = buf[name[1]:name[2]].decode("ascii")
                data_start = _data_start(buf, name[2], complete)
                return Statement(sql, "INSERT", insert_format=fmt, data_start=data_start)
        prev = word
    return Head.PLAIN if complete else Head.MORE


def parse_statement(buf: bytes) -> Statement:
    """A whole statement without inline data: its text, first keyword and FORMAT clause."""
    tokens = list(_tokens(buf, complete=True))
    keyword = ""
    if tokens:
        keyword = "SELECT" if tokens[0][0] == "open" else _word(buf, tokens[0])
    depth, prev, output_format, text_end = 0, "", None, len(buf)
    for index, token in enumerate(tokens):
        kind = token[0]
        word = _word(buf, token)
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "semi" and depth == 0:
            if index + 1 < len(tokens):
                raise QueryError.make(SYNTAX_ERROR, "SYNTAX_ERROR",
                                      "Multi-statements are not allowed")
            text_end = token[1]
        elif word == "FORMAT" and depth == 0 and prev not in _NAME_CONTEXT:
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if following and following[0] == "word":
                if _word(buf, following) not in _NOT_FORMAT_NAMES:
                    output_format = buf[following[1]:following[2]].decode("ascii")
        prev = word
    return Statement(_decode(buf[:text_end]).strip(), keyword, output_format=output_format)


def read_statement(query: str, body: Iterable[bytes], *, max_head: int = 1 << 20,
                   max_query: int = 16 << 20) -> tuple[Statement, Iterator[bytes]]:
    """The request's statement, from the ``query`` parameter followed by the body (joined by
    a newline), and an iterator over the INSERT data that follows it (empty for the rest).

    Reads only as much of ``body`` as it takes to find the statement's end, so insert data
    streams on to the engine; a plain statement is read whole (up to ``max_query`` bytes).
    """
    chunks = iter(body)
    head = bytearray(query.encode("utf-8"))
    has_query, joined, exhausted = bool(head), False, False

    def pull() -> None:
        nonlocal joined, exhausted
        chunk = next(chunks, None)
        if chunk is None:
            exhausted = True
            return
        if has_query and not joined:
            head.extend(b"\n")
            joined = True
        head.extend(chunk)

    pull()
    while True:
        found = find_insert_data(bytes(head), exhausted)
        if isinstance(found, Statement):
            rest = bytes(head[found.data_start:])
            return found, itertools.chain([rest] if rest else [], chunks)
        if found is Head.PLAIN:
            while not exhausted:
                pull()
                if len(head) > max_query:
                    raise QueryError.make(QUERY_IS_TOO_LARGE, "QUERY_IS_TOO_LARGE",
                                          f"Query is larger than {max_query} bytes")
            return parse_statement(bytes(head)), iter(())
        if exhausted or len(head) > max_head:
            raise QueryError.make(QUERY_IS_TOO_LARGE, "QUERY_IS_TOO_LARGE",
                                  f"INSERT statement is longer than {max_head} bytes")
        pull()
