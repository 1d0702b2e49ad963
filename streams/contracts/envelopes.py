"""The ``rapport.interactions`` envelope: interaction and change rows of one account key.

The normalizer publishes one envelope per account key and batch (split under the record
budget by :func:`streams.agents.envelopes.split_rows`); the sink decodes it, stores its rows
and hands them to detection. Rows are JSON arrays in their table's column order
(:data:`~streams.contracts.tables.INTERACTIONS`, :data:`~streams.contracts.tables.CHANGES`):
naming every value in every row would multiply the bytes and the decoding work.

Versions (a rolling upgrade meets both, so a worker reads both; docs/architecture.md
"Envelopes"):

- **1** (unversioned, before issue 13): ``{"i": [rows], "c": [rows]}``, rows exactly in
  the reader's column order. A writer with one column more or less is refused (the reader
  cannot tell which position moved).
- **2**: ``{"v": 2, "columns": {"i": [names], "c": [names]}, "i": [rows], "c": [rows]}``:
  the envelope names its columns once, so a reader maps them by name. A column the reader
  writes and the envelope lacks is ``NULL`` when the store allows it, else the envelope is
  refused; a column the reader does not know (a newer writer's) is left out and named in
  :attr:`Envelope.dropped`, so the rows are stored without it instead of dead-lettered.

The writer's version is ``RAPPORT_ENVELOPE_VERSION`` (default 2); set it to 1 while workers
of a release that reads only version 1 still consume the topic. Whatever cannot be stored
is one dead letter with the precise reason (:func:`decode_envelope`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.contracts.tables import CHANGES, INTERACTIONS, TableSpec
from streams.interaction import schema

Row = list[Any]
INTERACTIONS_PART = "i"
CHANGES_PART = "c"
VERSION_KEY = "v"
COLUMNS_KEY = "columns"
ENVELOPE_VERSION = 2
"""The version this release writes by default."""
READABLE_VERSIONS: tuple[int, ...] = (1, 2)
_PARTS: tuple[tuple[str, TableSpec], ...] = ((INTERACTIONS_PART, INTERACTIONS), (CHANGES_PART, CHANGES))


@dataclass(slots=True)
class Envelope:
    """The rows of one envelope, each a list in this release's column order."""

    interactions: list[Row] = field(default_factory=list)
    changes: list[Row] = field(default_factory=list)
    version: int = ENVELOPE_VERSION
    """The version it was read in (what it is written in is the writer's setting)."""
    dropped: tuple[str, ...] = ()
    """Columns a version-2 writer sent that this release does not write (``i.<name>``)."""

    def __len__(self) -> int:
        return len(self.interactions) + len(self.changes)

    def parts(self) -> dict[str, list[Row]]:
        """The parts as they go on the wire (for :func:`streams.agents.envelopes.split_rows`)."""
        return {INTERACTIONS_PART: self.interactions, CHANGES_PART: self.changes}


def envelope_head(version: int = ENVELOPE_VERSION) -> bytes:
    """The bytes that open an envelope of ``version`` before its parts."""
    if version == 1:
        return b"{"
    if version == 2:
        return _HEAD_V2
    raise ValueError(f"envelope version {version} is not one this release writes {READABLE_VERSIONS}")


_HEAD_V2 = orjson.dumps({VERSION_KEY: 2, COLUMNS_KEY: {part: spec.columns for part, spec in _PARTS}})[:-1] + b","


def encode_envelope(env: Envelope, version: int = ENVELOPE_VERSION) -> bytes:
    """One envelope as one record's value (no budget: the agent splits with ``split_rows``)."""
    body = b",".join(b'"' + part.encode() + b'":' + orjson.dumps(rows) for part, rows in env.parts().items())
    return envelope_head(version) + body + b"}"


def decode_envelope(value: bytes) -> Envelope | str:
    """The envelope in ``value`` with its rows in this release's column order, or why not.

    The reason is what the dead letter says: which part, row and column is wrong, or which
    version or columns the reader does not know.
    """
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"undecodable interactions envelope: {exc}"
    got = _decode(obj)
    return got if isinstance(got, Envelope) else f"interactions envelope refused: {got}"


def _decode(obj: Any) -> Envelope | str:
    if not isinstance(obj, dict):
        return f"envelope is not an object but {type(obj).__name__}"
    if VERSION_KEY not in obj:  # version 1 carries none
        problem = _unknown_keys(obj, {INTERACTIONS_PART, CHANGES_PART})
        if problem:
            return problem
        rows = {part: obj.get(part, []) for part, _ in _PARTS}
        for part, spec in _PARTS:
            problem = rows_problem(part, rows[part], spec.columns)
            if problem:
                return problem
        return Envelope(rows[INTERACTIONS_PART], rows[CHANGES_PART], 1)
    version = obj[VERSION_KEY]
    if version == 2 and type(version) is int:
        return _decode_v2(obj)
    return (f"envelope version {orjson.dumps(version)[:40].decode(errors='replace')} is not one this worker reads "
            f"(1, which carries no version, and 2)")


def _decode_v2(obj: dict[str, Any]) -> Envelope | str:
    problem = _unknown_keys(obj, {VERSION_KEY, COLUMNS_KEY, INTERACTIONS_PART, CHANGES_PART})
    if problem:
        return problem
    columns = obj.get(COLUMNS_KEY)
    if not isinstance(columns, dict):
        return f"version 2 envelope has no {COLUMNS_KEY!r} object"
    out: dict[str, list[Row]] = {}
    dropped: list[str] = []
    for part, spec in _PARTS:
        rows = obj.get(part, [])
        theirs = columns.get(part)
        if not isinstance(theirs, list) or not all(isinstance(c, str) for c in theirs):
            return f"{COLUMNS_KEY}.{part} is not a list of column names"
        if len(set(theirs)) != len(theirs):
            return f"{COLUMNS_KEY}.{part} names a column twice"
        problem = rows_problem(part, rows, theirs)
        if problem:
            return problem
        if tuple(theirs) != spec.columns:
            remapped = _remap(part, rows, theirs, spec)
            if isinstance(remapped, str):
                return remapped
            rows = remapped
            dropped += (f"{part}.{c}" for c in theirs if c not in spec.columns)
        out[part] = rows
    return Envelope(out[INTERACTIONS_PART], out[CHANGES_PART], 2, tuple(dropped))


def _remap(part: str, rows: list[Row], theirs: list[str], spec: TableSpec) -> list[Row] | str:
    """Rows of a writer with other columns, in this release's order (by name)."""
    where = {name: n for n, name in enumerate(theirs)}
    picks: list[int | None] = []
    for name in spec.columns:
        n = where.get(name)
        if n is None and name not in _NULLABLE[spec.name]:
            return f"{part} rows lack column {name!r}, which this worker writes and the store needs"
        picks.append(n)
    return [[None if n is None else row[n] for n in picks] for row in rows]


def _unknown_keys(obj: dict[str, Any], known: set[str]) -> str | None:
    extra = sorted(set(obj) - known)
    if extra:
        return f"envelope has unknown parts {extra[:5]} (expected {', '.join(sorted(known))})"
    return None


def rows_problem(part: str, rows: Any, columns: Sequence[str]) -> str | None:
    """Why ``rows`` are not rows of exactly ``columns``, with string keys and integer times, or ``None``.

    A writer of another version (a rolling upgrade) may send rows of other columns: each
    row must be a list of exactly these columns, else the envelope is one dead letter
    naming the first wrong row.
    """
    if not isinstance(rows, list):
        return f"envelope part {part!r} is not a list"
    checks = [(i, name, name in _STRINGS) for i, name in enumerate(columns) if name in _STRINGS or name in _TIMES]
    width = len(columns)
    for n, row in enumerate(rows):
        if type(row) is not list:
            return f"{part}[{n}] is not a list of values"
        if len(row) != width:
            return f"{part}[{n}] has {len(row)} values, expected {width} ({', '.join(columns)})"
        for i, name, is_string in checks:
            value = row[i]
            if is_string:
                if type(value) is not str:
                    return f"{part}[{n}].{name} is {type(value).__name__}, expected a string"
            elif not (value is None or type(value) is int):
                return f"{part}[{n}].{name} is {type(value).__name__}, expected epoch milliseconds"
    return None


_STRINGS = frozenset({"client_id", "account_id", "platform", "event_id", "kind", "change", "raw_key"})
_TIMES = frozenset({*INTERACTIONS.time_columns, *CHANGES.time_columns, "version"})
_NULLABLE: dict[str, frozenset[str]] = {
    spec.name: frozenset(c["name"] for c in schema()[record] if c["clickhouse"].startswith("Nullable("))
    for spec, record in ((INTERACTIONS, "interaction"), (CHANGES, "change"))
}
