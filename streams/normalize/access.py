"""Field readers for decoded JSON: fast on the happy path, precise when something is wrong.

Platform payloads are untrusted, so every read is checked, and a dead letter names the exact
field at fault (``commit.record.reply.parent.uri missing``) instead of a bare ``KeyError``:
an operator reading the DLQ then knows what the platform sent without opening the payload.
Yet normalize bounds the worker's throughput (``bench/normalize_speed.py``), so a reader
costs one ``dict.get`` and one exact type check when the value is what it should be. The
reasons are only built when they are needed: a reader takes the object, the key and *where*
the object sits, and ``where`` is a plain string or a ``(parent, key_or_index)`` tuple that
is turned into a dotted path only on the error path (a payload's arrays then cost no
string formatting per element).

Exact type checks (``type(v) is str``) come first because decoded JSON holds exact types;
a subclass still gets the ``isinstance`` answer on the slower branch, so the outcome never
depends on which branch ran. Time helpers live here too because every platform spells time
differently and each spelling must be refused with the same precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.normalize.base import BadPayload

# ClickHouse DateTime64(3) ends in 2299; a time outside [1970, 2300) is a corrupt field,
# not an event, and would fail later in the sink where it is much harder to trace.
MAX_MS = 10_413_792_000_000  # 2300-01-01T00:00:00Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_from_iso = datetime.fromisoformat
# Below this an epoch number is seconds, above it milliseconds: 1e11 s is the year 5138,
# 1e11 ms is 1973, so the two ranges Rapport can meet never overlap.
SECONDS_OR_MS = 100_000_000_000

Where = str | tuple[Any, ...]
"""Where an object sits in its payload: a dotted path, or ``(parent Where, key or index)``."""


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages people read."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def path_of(where: Where) -> str:
    """The dotted path of ``where`` (built only for a message)."""
    if isinstance(where, str):
        return where
    parent, key = where
    return join(path_of(parent), key)


def at(where: Where, key: str | int) -> str:
    return join(path_of(where), key)


def _missing(where: Where, key: str) -> BadPayload:
    return BadPayload(f"{at(where, key)} missing")


def _wrong(where: Where, key: str, want: str, value: Any) -> BadPayload:
    return BadPayload(f"{at(where, key)} must be {want}, got {json_type(value)}")


# objects and arrays ---------------------------------------------------------------------
def of(value: Any, where: Where = "") -> dict[str, Any]:
    """``value`` as an object (the payload itself, or a value decoded from a string)."""
    if isinstance(value, dict):
        return value
    raise BadPayload(f"{path_of(where) or 'payload'} must be an object, got {json_type(value)}")


def obj(d: dict[str, Any], key: str, where: Where = "") -> dict[str, Any]:
    value = d.get(key)
    if type(value) is dict or isinstance(value, dict):
        return value
    raise _missing(where, key) if value is None else _wrong(where, key, "an object", value)


def opt_obj(d: dict[str, Any], key: str, where: Where = "") -> dict[str, Any] | None:
    value = d.get(key)
    if value is None or type(value) is dict or isinstance(value, dict):
        return value
    raise _wrong(where, key, "an object", value)


def array(d: dict[str, Any], key: str, where: Where = "") -> list[Any]:
    value = d.get(key)
    if type(value) is list or isinstance(value, list):
        return value
    raise _missing(where, key) if value is None else _wrong(where, key, "an array", value)


def opt_array(d: dict[str, Any], key: str, where: Where = "") -> list[Any]:
    value = d.get(key)
    if value is None:
        return []
    if type(value) is list or isinstance(value, list):
        return value
    raise _wrong(where, key, "an array", value)


def objects(
    d: dict[str, Any], key: str, where: Where = "", required: bool = False,
) -> Iterable[dict[str, Any]]:
    """An array whose elements are objects; element ``i`` sits at ``((where, key), i)``.

    When an element is not an object, the elements before it are still handed out first
    (a lazy iterator), so a fault inside an earlier one is reported first, as reading in
    order finds it.
    """
    items = d.get(key)
    if type(items) is not list:
        if items is None and not required:
            return ()  # the common case of an absent array, without the checks below
        items = array(d, key, where) if required else opt_array(d, key, where)
    for item in items:
        if type(item) is not dict:
            return _checked_objects(items, (where, key))
    return items


def _checked_objects(items: list[Any], where: Where) -> Iterator[dict[str, Any]]:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadPayload(f"{at(where, i)} must be an object, got {json_type(item)}")
        yield item


# scalars ----------------------------------------------------------------------------------
def text(d: dict[str, Any], key: str, where: Where = "") -> str:
    """A string that may be empty (a body, a title)."""
    value = d.get(key)
    if type(value) is str or isinstance(value, str):
        return value
    raise _missing(where, key) if value is None else _wrong(where, key, "a string", value)


def opt_text(d: dict[str, Any], key: str, where: Where = "", default: str = "") -> str:
    value = d.get(key)
    if type(value) is str:
        return value
    if value is None:
        return default
    if isinstance(value, str):
        return value
    raise _wrong(where, key, "a string", value)


def ident(d: dict[str, Any], key: str, where: Where = "") -> str:
    """A non-empty id, stripped; numbers are accepted because some APIs send ids as numbers."""
    value = d.get(key)
    if type(value) is str:
        out = value.strip()
        if out:
            return out
    elif type(value) is int:
        return str(value)
    return _ident(value, key, where)


def _ident(value: Any, key: str, where: Where) -> str:
    if value is None:
        raise _missing(where, key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _wrong(where, key, "a string id", value)
    out = str(value).strip()
    if not out:
        raise BadPayload(f"{at(where, key)} is empty")
    return out


def opt_ident(d: dict[str, Any], key: str, where: Where = "") -> str | None:
    value = d.get(key)
    if type(value) is str:
        if value:
            out = value.strip()
            if out:
                return out
            raise BadPayload(f"{at(where, key)} is empty")
        return None
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    if value == "":
        return None
    return _ident(value, key, where)


def number(d: dict[str, Any], key: str, where: Where = "") -> float:
    value = d.get(key)
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return value  # type: ignore[no-any-return]
    if value is None:
        raise _missing(where, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(where, key, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadPayload(f"{at(where, key)} is not a finite number")
    return value


def flag(d: dict[str, Any], key: str, where: Where = "") -> bool:
    value = d.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong(where, key, "a boolean", value)
    return value


# times --------------------------------------------------------------------------------------
def iso_ms(d: dict[str, Any], key: str, where: Where = "") -> int:
    return iso_to_ms(text(d, key, where), (where, key))


def epoch_ms(d: dict[str, Any], key: str, where: Where = "", unit: str = "auto") -> int:
    """Epoch seconds (``unit='s'``), ms (``'ms'``) or either, told apart by size."""
    value = d.get(key)
    if type(value) is int:  # the common spelling, without the float checks
        ms = value * 1000 if unit == "s" or (unit == "auto" and abs(value) < SECONDS_OR_MS) else value
        if 0 <= ms < MAX_MS:
            return ms
    return epoch_to_ms(number(d, key, where), (where, key), unit)


def time_ms(d: dict[str, Any], key: str, where: Where = "") -> int:
    """A time sent either as an epoch number or as an ISO string (Graph API does both)."""
    value = d.get(key)
    if value is None:
        raise _missing(where, key)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.isdigit():
            return epoch_to_ms(int(stripped), (where, key), "auto")
        return iso_to_ms(value, (where, key))
    return epoch_ms(d, key, where)


def checked_ms(ms: int, path: Where) -> int:
    if 0 <= ms < MAX_MS:
        return ms
    raise BadPayload(f"{path_of(path)} is out of range ({ms} ms)")


def epoch_to_ms(value: float, path: Where, unit: str = "auto") -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise BadPayload(f"{path_of(path)} is not a finite number")
    if unit == "s" or (unit == "auto" and abs(value) < SECONDS_OR_MS):
        ms = round(value * 1000)
    else:
        ms = round(value)
    return checked_ms(int(ms), path)


def iso_to_ms(value: str, path: Where) -> int:
    """ISO 8601 to epoch ms; a time without offset is taken as UTC (platforms send UTC)."""
    try:
        parsed = _from_iso(value.strip())
    except ValueError:
        raise BadPayload(f"{path_of(path)} is not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        ms: int = (parsed - _EPOCH) // _ONE_MS  # exact integer arithmetic, no float rounding
    except OverflowError:
        raise BadPayload(f"{path_of(path)} is out of range: {value[:40]!r}") from None
    return checked_ms(ms, path)


def lenient_iso_ms(value: Any) -> int | None:
    """A client-set time (Bluesky ``createdAt``): kept when readable, never a reason to
    refuse a payload, because clients set it to anything and metrics never use it."""
    if not isinstance(value, str):
        return None
    try:
        return iso_to_ms(value, "")
    except BadPayload:
        return None
