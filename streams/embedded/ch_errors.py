"""ClickHouse error codes as the store's HTTP interface reports them.

A client of the ClickHouse HTTP interface learns what went wrong from three things: the HTTP
status, the ``X-ClickHouse-Exception-Code`` header and a body ``Code: N. DB::Exception: ...
(NAME)``. clickhouse-connect turns them into ``DatabaseError`` with that code and name, and
retries only some statuses (503), so the store must report chDB's own codes, unchanged, and
pick the status the way ClickHouse does. chDB raises a plain ``RuntimeError`` whose text starts
with ``Code: N.``; :meth:`QueryError.from_chdb` recovers the code from it.
"""

from __future__ import annotations

import re

from streams.errors import RapportError

# The codes this package raises itself (names as ClickHouse spells them).
CANNOT_PARSE_INPUT = 27
SYNTAX_ERROR = 62
NOT_IMPLEMENTED = 48
UNKNOWN_COMPRESSION_METHOD = 89
UNKNOWN_SETTING = 115
READONLY = 164
TOO_MANY_SIMULTANEOUS_QUERIES = 202
QUERY_IS_TOO_LARGE = 229
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516
STD_EXCEPTION = 1001

# Which codes are the client's fault, and of what kind, following ClickHouse's HTTP handler.
_BAD_REQUEST = frozenset({
    6, 25, 26, 27, 38, 41, 72, 376, 441, 467,  # CANNOT_PARSE_*
    37, 123, 167, 168, 223,  # malformed or oversized AST
    SYNTAX_ERROR, 53, 117, 321, 456, 457,  # SYNTAX_ERROR, TYPE_MISMATCH, INCORRECT_DATA, params
    QUERY_IS_TOO_LARGE, UNKNOWN_COMPRESSION_METHOD, CANNOT_DECOMPRESS,
})
_NOT_FOUND = frozenset({
    46, 47, 50, 56, 60, 63, 73, 78, 81, 152, 336,  # UNKNOWN_{FUNCTION,IDENTIFIER,TYPE,TABLE,...}
    UNKNOWN_SETTING, SESSION_NOT_FOUND,
})
_FORBIDDEN = frozenset({ACCESS_DENIED, READONLY})  # users, ACCESS_DENIED
# ClickHouse answers a failed login 401 (UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD too).
_STATUS_OF = {NOT_IMPLEMENTED: 501, TOO_MANY_SIMULTANEOUS_QUERIES: 503, 159: 408, 381: 411,
              AUTHENTICATION_FAILED: 401, 192: 401, 193: 401, 194: 401}

_CODE_RE = re.compile(r"Code: (\d+)\. (DB::Exception: .*)", re.DOTALL)


class QueryError(RapportError):
    """A statement the store could not run; carries ClickHouse's code and message."""

    def __init__(self, code: int, message: str, status: int | None = None) -> None:
        super().__init__(f"Code: {code}. {message}")
        self.code = code
        self.message = message
        self.status = status  # an HTTP status of its own (413), else the code's

    @classmethod
    def make(cls, code: int, name: str, text: str, status: int | None = None) -> QueryError:
        """An error of our own, worded like ClickHouse's (``... (NAME)``)."""
        return cls(code, f"DB::Exception: {text}. ({name})", status)

    @classmethod
    def from_chdb(cls, exc: BaseException) -> QueryError:
        """The error chDB raised, with its code; chDB wrappers may prefix the ClickHouse text."""
        text = str(exc)
        match = _CODE_RE.search(text)
        if match is None:
            return cls.make(STD_EXCEPTION, "STD_EXCEPTION", text or type(exc).__name__)
        return cls(int(match.group(1)), match.group(2).rstrip())

    @property
    def http_status(self) -> int:
        return self.status or http_status_of(self.code)

    def body(self) -> bytes:
        return f"Code: {self.code}. {self.message}\n".encode("utf-8", "replace")


def http_status_of(code: int) -> int:
    """The HTTP status ClickHouse answers with for an exception code."""
    if code in _BAD_REQUEST:
        return 400
    if code in _NOT_FOUND:
        return 404
    if code in _FORBIDDEN:
        return 403
    return _STATUS_OF.get(code, 500)
