"""Store errors classified by ClickHouse error code: "this data is wrong" or "try again".

clickhouse-connect sets ``Error.code`` from the ``X-ClickHouse-Exception-Code`` response
header (which the embedded store sends as ClickHouse does), so the code is read from
there, never matched in the message text (where ``code: 6`` also matches 60).

:data:`DATA_ERROR_CODES` is the whole list of codes that mean the rows sent are wrong
and will be refused again however often they are sent: they become dead letters.
:data:`STATEMENT_ERROR_CODES` is the list of codes that mean the *statement* is refused
for what its text is (too large, not parseable, too deep): the same statement fails the
same way on any store state, so it is never retried as if transient either; the caller
splits its batch (a smaller batch builds a smaller statement) and a record that still
fails alone is dead-lettered with the code. Every other code (and an error without one:
connection refused, timeout) is about the store's state (``UNKNOWN_TABLE`` 60 before
migrations ran, ``UNKNOWN_IDENTIFIER`` 47 or ``NO_SUCH_COLUMN_IN_TABLE`` 16 before a
migration that adds a column, ``TOO_MANY_PARTS`` 252 under back-pressure,
``MEMORY_LIMIT_EXCEEDED`` 241, ...) and is retried with backoff, visibly.
"""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import Error

DATA_ERROR_CODES: dict[int, str] = {
    6: "CANNOT_PARSE_TEXT",
    26: "CANNOT_PARSE_QUOTED_STRING",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    38: "CANNOT_PARSE_DATE",
    41: "CANNOT_PARSE_DATETIME",
    53: "TYPE_MISMATCH",
    69: "ARGUMENT_OUT_OF_BOUND",
    70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER",
    117: "INCORRECT_DATA",
    130: "CANNOT_READ_ARRAY_FROM_TEXT",
    131: "TOO_LARGE_STRING_SIZE",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    407: "DECIMAL_OVERFLOW",  # a DateTime64 out of range
}

# The statement itself: its size or its syntax. Codes that a migration can cure (unknown
# tables, columns, identifiers) are deliberately absent: they are the store's state.
STATEMENT_ERROR_CODES: dict[int, str] = {
    62: "SYNTAX_ERROR",
    167: "TOO_DEEP_AST",
    168: "TOO_BIG_AST",
    229: "QUERY_IS_TOO_LARGE",
    306: "TOO_DEEP_RECURSION",
}


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse code of a clickhouse-connect error (``None`` for others or when unknown)."""
    code = getattr(exc, "code", None) if isinstance(exc, Error) else None
    return code if isinstance(code, int) else None


def is_data_error(exc: BaseException) -> bool:
    """True when the store refused the data itself (a code of :data:`DATA_ERROR_CODES`)."""
    return error_code(exc) in DATA_ERROR_CODES


def is_statement_error(exc: BaseException) -> bool:
    """True when the store refused the statement for its text (:data:`STATEMENT_ERROR_CODES`)."""
    return error_code(exc) in STATEMENT_ERROR_CODES


def is_deterministic(exc: BaseException) -> bool:
    """True when sending the same thing again is refused again: a data or a statement error."""
    code = error_code(exc)
    return code in DATA_ERROR_CODES or code in STATEMENT_ERROR_CODES
