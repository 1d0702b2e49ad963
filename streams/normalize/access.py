"""Checked access to decoded JSON, so every dead letter names the exact field at fault.

Platform payloads are untrusted: a normalizer reads them only through :class:`Node`, whose
accessors raise :class:`~streams.normalize.base.BadPayload` with the dotted path of the
field (``commit.record.reply.parent.uri missing``) instead of a bare ``KeyError``. An
operator reading the DLQ then knows what the platform sent without opening the payload.
Time helpers live here too because every platform spells time differently and each
spelling must be refused with the same precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.normalize.base import BadPayload

# ClickHouse DateTime64(3) ends in 2299; a time outside [1970, 2300) is a corrupt field,
# not an event, and would fail later in the sink where it is much harder to trace.
MAX_MS = 10_413_792_000_000  # 2300-01-01T00:00:00Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# Below this an epoch number is seconds, above it milliseconds: 1e11 s is the year 5138,
# 1e11 ms is 1973, so the two ranges Rapport can meet never overlap.
SECONDS_OR_MS = 100_000_000_000


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


@dataclass(frozen=True, slots=True)
class Node:
    """A JSON object together with where it sits in the payload."""

    data: dict[str, Any]
    path: str = ""

    @classmethod
    def of(cls, value: Any, path: str = "") -> Node:
        if not isinstance(value, dict):
            where = path or "payload"
            raise BadPayload(f"{where} must be an object, got {json_type(value)}")
        return cls(value, path)

    def at(self, key: str | int) -> str:
        return join(self.path, key)

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _present(self, key: str) -> Any:
        value = self.data.get(key)
        if value is None:
            raise BadPayload(f"{self.at(key)} missing")
        return value

    def _wrong(self, key: str, want: str, value: Any) -> BadPayload:
        return BadPayload(f"{self.at(key)} must be {want}, got {json_type(value)}")

    # objects and arrays -------------------------------------------------------------
    def obj(self, key: str) -> Node:
        value = self._present(key)
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        return Node(value, self.at(key))

    def opt_obj(self, key: str) -> Node | None:
        return self.obj(key) if self.has(key) else None

    def array(self, key: str) -> list[Any]:
        value = self._present(key)
        if not isinstance(value, list):
            raise self._wrong(key, "an array", value)
        return value

    def opt_array(self, key: str) -> list[Any]:
        return self.array(key) if self.has(key) else []

    def objects(self, key: str, required: bool = False) -> Iterator[Node]:
        """Each element of an array of objects, with its index in the path."""
        items = self.array(key) if required else self.opt_array(key)
        base = self.at(key)
        for i, item in enumerate(items):
            yield Node.of(item, join(base, i))

    # scalars -------------------------------------------------------------------------
    def text(self, key: str) -> str:
        """A string that may be empty (a body, a title)."""
        value = self._present(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def opt_text(self, key: str, default: str = "") -> str:
        return self.text(key) if self.has(key) else default

    def ident(self, key: str) -> str:
        """A non-empty id; numbers are accepted because some APIs send ids as numbers."""
        value = self._present(key)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self._wrong(key, "a string id", value)
        out = str(value).strip()
        if not out:
            raise BadPayload(f"{self.at(key)} is empty")
        return out

    def opt_ident(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        return self.ident(key)

    def number(self, key: str) -> float:
        value = self._present(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(key, "a number", value)
        if isinstance(value, float) and not math.isfinite(value):
            raise BadPayload(f"{self.at(key)} is not a finite number")
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._wrong(key, "a boolean", value)
        return value

    # times ---------------------------------------------------------------------------
    def iso_ms(self, key: str) -> int:
        return iso_to_ms(self.text(key), self.at(key))

    def epoch_ms(self, key: str, unit: str = "auto") -> int:
        """Epoch seconds (``unit='s'``), ms (``'ms'``) or either, told apart by size."""
        return epoch_to_ms(self.number(key), self.at(key), unit)

    def time_ms(self, key: str) -> int:
        """A time sent either as an epoch number or as an ISO string (Graph API does both)."""
        value = self._present(key)
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.isdigit():
                return epoch_to_ms(int(stripped), self.at(key), "auto")
            return iso_to_ms(value, self.at(key))
        return self.epoch_ms(key)


def checked_ms(ms: int, path: str) -> int:
    if not 0 <= ms < MAX_MS:
        raise BadPayload(f"{path} is out of range ({ms} ms)")
    return ms


def epoch_to_ms(value: float, path: str, unit: str = "auto") -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise BadPayload(f"{path} is not a finite number")
    if unit == "s" or (unit == "auto" and abs(value) < SECONDS_OR_MS):
        ms = round(value * 1000)
    else:
        ms = round(value)
    return checked_ms(int(ms), path)


def iso_to_ms(value: str, path: str) -> int:
    """ISO 8601 to epoch ms; a time without offset is taken as UTC (platforms send UTC)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadPayload(f"{path} is not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        ms = (parsed - _EPOCH) // _ONE_MS  # exact integer arithmetic, no float rounding
    except OverflowError:
        raise BadPayload(f"{path} is out of range: {value[:40]!r}") from None
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
