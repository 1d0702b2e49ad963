"""A panel's SQL as the store receives it from Grafana: variables, then the datasource's macros.

Two steps, as in Grafana (read from grafana/clickhouse-datasource v4.20.0):

1. the frontend (``CHDatasource.applyTemplateVariables``) replaces dashboard variables with
   Grafana's template service: ``${name:singlequote}`` -> ``'a','b'`` (quotes escaped as ``\\'``),
   ``${name:csv}`` -> ``a,b``, ``${name:raw}``; with no format the datasource's own formatter
   applies: a multi-value becomes ``'a','b'`` (not escaped), a single value stays raw;
2. the backend (``pkg/macros/macros.go``, via macropro) expands ``$__name(args)`` macros, inner
   ones first; unknown macros are left as they are.

Macro output, exactly as the plugin writes it: ``$__timeFilter(c)`` -> ``c >= toDateTime(F) AND
c <= toDateTime(T)`` (Unix seconds, truncated); ``$__timeFilter_ms(c)`` with
``fromUnixTimestamp64Milli(ms)``; ``$__timeInterval(c)`` -> ``toStartOfInterval(toDateTime(c),
INTERVAL N second)`` with N = max(interval s, 1) truncated; ``$__timeInterval_ms(c)``;
``$__timeGroup(c, '5m')`` with a Go duration; ``$__fromTime``/``$__toTime`` (``_ms``);
``$__interval_s``; ``$__dateFilter(c)``; ``$__timeFrom(c)``/``$__timeTo(c)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

VariableValue = str | Sequence[str]
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)|\[\[(\w+)(?::(\w+))?\]\]")
_MACRO = re.compile(r"\$__(\w+)")
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class MacroError(ValueError):
    """A macro the plugin would refuse (wrong argument count, bad interval)."""


def _format(value: VariableValue, fmt: str | None) -> str:
    values = [value] if isinstance(value, str) else list(value)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt in ("csv", "raw"):
        return ",".join(values)
    if fmt == "pipe":
        return "|".join(values)
    if fmt is not None:
        raise MacroError(f"variable format {fmt!r} is not used by Rapport's boards")
    # the datasource's formatter: arrays quoted and joined, single values raw
    return "'" + "','".join(values) + "'" if not isinstance(value, str) else value


def interpolate_variables(sql: str, variables: Mapping[str, VariableValue]) -> str:
    """Step 1: Grafana's template service with the ClickHouse datasource's formatter."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(4)
        fmt = match.group(2) or match.group(5)
        if name.startswith("__") or name not in variables:
            return match.group(0)  # macros and unknown names pass through
        return _format(variables[name], fmt)

    return _VARIABLE.sub(repl, sql)


@dataclass(frozen=True, slots=True)
class TimeContext:
    """What the plugin's macros see: the query's time range and interval."""

    time_from: datetime
    time_to: datetime
    interval_s: float = 60.0


def _unix(t: datetime) -> int:
    return math.floor(t.timestamp())


def _unix_ms(t: datetime) -> int:
    return math.floor(t.timestamp() * 1000)


def _go_duration_s(text: str) -> float:
    pos, total = 0, 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise MacroError(f"$__timeGroup: invalid interval {text!r}")
    return total


def _args(n: int, name: str, args: list[str]) -> list[str]:
    if len(args) != n:
        raise MacroError(f"$__{name} expected {n} argument(s), received {len(args)}")
    return args


def _handlers(ctx: TimeContext) -> dict[str, Callable[[list[str]], str]]:
    frm, to = _unix(ctx.time_from), _unix(ctx.time_to)
    frm_ms, to_ms = _unix_ms(ctx.time_from), _unix_ms(ctx.time_to)
    seconds = int(max(ctx.interval_s, 1.0))
    millis = int(max(ctx.interval_s * 1000, 1.0))

    def time_filter(a: list[str]) -> str:
        c = _args(1, "timeFilter", a)[0]
        return f"{c} >= toDateTime({frm}) AND {c} <= toDateTime({to})"

    def time_filter_ms(a: list[str]) -> str:
        c = _args(1, "timeFilter_ms", a)[0]
        return f"{c} >= fromUnixTimestamp64Milli({frm_ms}) AND {c} <= fromUnixTimestamp64Milli({to_ms})"

    def date_filter(a: list[str]) -> str:
        c = _args(1, "dateFilter", a)[0]
        d1, d2 = ctx.time_from.strftime("%Y-%m-%d"), ctx.time_to.strftime("%Y-%m-%d")
        return f"{c} >= toDate('{d1}') AND {c} <= toDate('{d2}')"

    def time_group(a: list[str]) -> str:
        col, period = _args(2, "timeGroup", a)
        secs = round(_go_duration_s(period.strip().strip("'\"")))
        if secs <= 0:
            raise MacroError(f"$__timeGroup: interval must be positive, got {period!r}")
        return f"toStartOfInterval(toDateTime({col.strip()}), INTERVAL {secs} second)"

    return {
        "timeFilter": time_filter,
        "timeFilter_ms": time_filter_ms,
        "dateFilter": date_filter,
        "timeInterval": lambda a: (f"toStartOfInterval(toDateTime({_args(1, 'timeInterval', a)[0]}), "
                                   f"INTERVAL {seconds} second)"),
        "timeInterval_ms": lambda a: (f"toStartOfInterval(toDateTime64({_args(1, 'timeInterval_ms', a)[0]}, 3), "
                                      f"INTERVAL {millis} millisecond)"),
        "timeGroup": time_group,
        "timeFrom": lambda a: f"{_args(1, 'timeFrom', a)[0]} >= toDateTime({frm})",
        "timeTo": lambda a: f"{_args(1, 'timeTo', a)[0]} <= toDateTime({to})",
        "fromTime": lambda a: f"toDateTime({frm})",
        "toTime": lambda a: f"toDateTime({to})",
        "fromTime_ms": lambda a: f"fromUnixTimestamp64Milli({frm_ms})",
        "toTime_ms": lambda a: f"fromUnixTimestamp64Milli({to_ms})",
        "interval_s": lambda a: str(seconds),
    }


def _split_args(text: str, start: int) -> tuple[list[str], int]:
    """Arguments of a macro call whose ``(`` is at ``start``; returns them and the end index."""
    depth, quote, begin = 0, "", start + 1
    args: list[str] = []
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == "\\":
                continue
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                last = text[begin:i].strip()
                if last or args:
                    args.append(last)
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(text[begin:i].strip())
            begin = i + 1
    raise MacroError(f"unbalanced parentheses after macro at {start}")


def expand_macros(sql: str, ctx: TimeContext) -> str:
    """Step 2: the plugin's backend macros, inner ones first, unknown ones kept."""
    handlers = _handlers(ctx)
    out: list[str] = []
    pos = 0
    while True:
        match = _MACRO.search(sql, pos)
        if match is None:
            out.append(sql[pos:])
            return "".join(out)
        name = match.group(1)
        # the longest known name wins ($__timeFilter_ms before $__timeFilter)
        out.append(sql[pos:match.start()])
        if name not in handlers:
            out.append(match.group(0))
            pos = match.end()
            continue
        end = match.end()
        args: list[str] = []
        if end < len(sql) and sql[end] == "(":
            args, end = _split_args(sql, end)
            args = [expand_macros(a, ctx) for a in args]
        out.append(handlers[name](args))
        pos = end


def expand(sql: str, variables: Mapping[str, VariableValue], ctx: TimeContext) -> str:
    """The SQL the store receives for a panel query."""
    return expand_macros(interpolate_variables(sql, variables), ctx)
