"""Store errors classified by ClickHouse error code: "this data is wrong" or "try again".

clickhouse-connect sets ``Error.code`` from the ``X-ClickHouse-Exception-Code`` response
header (which the embedded store sends as ClickHouse does), so the code is read from
there, never matched in the message text (where ``code: 6`` also matches 60).

:data:`DATA_ERROR_CODES` is the whole list of codes that mean the rows sent are wrong
and will be refused again however often they are sent: they become dead letters. Every
other code (and an error without one: connection refused, timeout) is about the store's
state (``UNKNOWN_TABLE`` 60 before migrations ran, ``TOO_MANY_PARTS`` 252 under
back-pressure, ``MEMORY_LIMIT_EXCEEDED`` 241, ...) and is retried with backoff.
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


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse code of a clickhouse-connect error (``None`` for others or when unknown)."""
    code = getattr(exc, "code", None) if isinstance(exc, Error) else None
    return code if isinstance(code, int) else None


def is_data_error(exc: BaseException) -> bool:
    """True when the store refused the data itself (a code of :data:`DATA_ERROR_CODES`)."""
    return error_code(exc) in DATA_ERROR_CODES
