"""The reader role's settings: what a read-only request may change, and the caps it runs under.

The reader (boards, Grafana, ``rapport query``) is served on chDB handles opened with
``readonly=1``. chDB 4.4 then refuses every ``SET`` and every ``SETTINGS`` clause (measured:
``Cannot modify 'max_execution_time' setting in readonly mode``, code 164) and has no
``changeable_in_readonly`` constraints, so the per-request settings a reader may send are
applied the only way left: as part of the connection string the handle is opened with (a
handle per distinct set, pooled). Which ones, and how far, is decided here, like ClickHouse's
``changeable_in_readonly`` profile constraints: the settings clickhouse-connect and Grafana's
datasource send (``max_execution_time``, ``date_time_input_format``, output format settings,
...), numbers clamped to the reader's caps; anything else is refused with 164, as ClickHouse
refuses a readonly user. ``readonly=1`` and the caps are written last, so nothing overrides them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streams.embedded.ch_errors import READONLY, QueryError
from streams.embedded.sql_guard import file_setting

_ALLOWED = frozenset({
    "max_execution_time", "timeout_overflow_mode", "max_result_rows", "max_result_bytes",
    "result_overflow_mode", "max_rows_to_read", "max_bytes_to_read", "read_overflow_mode",
    "max_block_size", "max_threads", "max_memory_usage", "date_time_input_format",
    "date_time_output_format", "cast_string_to_dynamic_use_inference", "session_timezone",
    "extremes", "join_use_nulls", "use_query_cache",
})
_ALLOWED_PREFIXES = ("output_format_", "format_csv_", "format_tsv_")
# A value becomes part of a chDB connection string (``path?k=v&k=v``): nothing that could
# start another key or end the string may pass.
_VALUE = re.compile(r"[A-Za-z0-9_.:+\-/]*\Z")


@dataclass(frozen=True, slots=True)
class ReaderCaps:
    """Limits every reader statement runs under (the connection's own settings)."""

    max_execution_s: int = 120
    max_memory_bytes: int = 2 << 30
    max_result_bytes: int = 1 << 30  # counted by the store: chDB 4.4 ignores the setting
    max_result_rows: int = 50_000_000
    max_threads: int = 2

    def fixed(self) -> dict[str, str]:
        return {"readonly": "1", "max_execution_time": str(self.max_execution_s),
                "max_memory_usage": str(self.max_memory_bytes),
                "max_result_bytes": str(self.max_result_bytes),
                "max_result_rows": str(self.max_result_rows), "result_overflow_mode": "throw",
                "max_threads": str(self.max_threads)}


_CAPPED = {"max_execution_time": "max_execution_s", "max_memory_usage": "max_memory_bytes",
           "max_result_bytes": "max_result_bytes", "max_result_rows": "max_result_rows",
           "max_threads": "max_threads"}


def reader_settings(requested: dict[str, str], caps: ReaderCaps) -> tuple[tuple[str, str], ...]:
    """The connection settings of a reader request: allowed ones clamped, then the caps.

    Raises 164 (READONLY) for a setting a reader may not change."""
    chosen: dict[str, str] = {}
    for name, value in requested.items():
        allowed = name in _ALLOWED or name.startswith(_ALLOWED_PREFIXES)
        if not allowed or file_setting(name):
            raise QueryError.make(READONLY, "READONLY",
                                  f"Cannot modify '{name}' setting in readonly mode")
        if not _VALUE.match(value):
            raise QueryError.make(READONLY, "READONLY",
                                  f"Cannot set '{name}' to this value in readonly mode")
        chosen[name] = value
    fixed = caps.fixed()
    for name, field in _CAPPED.items():
        cap = int(getattr(caps, field))
        if name in chosen:
            asked = int(chosen[name]) if chosen[name].isdigit() else 0
            fixed[name] = str(min(asked, cap) if asked > 0 else cap)  # 0 means "no limit": capped
            del chosen[name]
    if chosen.get("result_overflow_mode") == "break":
        fixed["result_overflow_mode"] = "break"
    chosen.pop("result_overflow_mode", None)
    return tuple(sorted(chosen.items())) + tuple(sorted(fixed.items()))
