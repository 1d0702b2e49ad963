"""Raw Kafka records -> archive rows, interaction envelopes and dead letters (pure).

A raw record holds one payload or a JSON array of payloads, each exactly as received,
because faust handles ~4.5 k *records*/s whatever the work per record: throughput in
events comes from many events per record. Output is grouped one envelope per account key,
so the interactions topic also carries many events per record. A bad payload inside an
array costs one dead letter, not the array. No faust, no Kafka, no ClickHouse here. What
the batch holds is spelled in :mod:`streams.contracts` (archive row, envelope, DLQ record,
header names).

This is the worker's hot loop, so it is written for speed: each payload is serialised
once (archive text and raw key), the platform's normalizer (through
:func:`streams.normalize.registry.normalize_rows`, the one dispatcher) writes rows directly
as lists in column order, and the cyclic garbage collector is held off for the batch.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from streams.contracts.archive import OUTCOME_DEAD, OUTCOME_OK, OUTCOME_SKIPPED, ArchiveRow, DeadLetterRecord
from streams.contracts.archive import dead_letter_record as _dead_letter_record
from streams.contracts.envelopes import Envelope
from streams.contracts.headers import (
    DEFAULT_SOURCE,
    HEADER_RECEIVED_AT,
    HEADER_REFUSED,
    HEADER_SOURCE,
    HEADER_VIA_ACCOUNT,
)
from streams.contracts.tables import CHANGES, INTERACTIONS
from streams.normalize.base import AccountIndex, DeadLetter, raw_key_of_json
from streams.normalize.registry import normalize_rows
from streams.normalize.rows import Context, Row, tables_for

TEXT_MAX_CHARS = 10_000
"""Longest ``text`` of an interaction or change, in code points (the archive keeps the whole payload)."""
ROW_MAX_BYTES = 512 * 1024
"""Default bound on one encoded row (the agent passes its record budget): a larger row is a dead letter."""
RECEIVED_AT_MIN = 946_684_800_000  # 2000-01-01T00:00:00Z
RECEIVED_AT_MAX = 7_258_118_400_000  # 2200-01-01T00:00:00Z, inside DateTime64(3)
ORJSON_MAX_DEPTH = 254  # orjson.dumps refuses deeper nesting ("Recursion limit reached")
# Key of envelopes holding changes that the payload could not attribute to an account.
UNATTRIBUTED_KEY = "_:"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One consumed raw record, with where it came from (for the DLQ and the archive)."""

    topic: str
    partition: int
    offset: int
    platform: str
    value: bytes
    headers: dict[str, str]
    received_at_fallback: int  # the record's broker timestamp, ms


@dataclass(slots=True)
class NormalizedBatch:
    """What a batch of raw records yields."""

    archive_rows: list[ArchiveRow] = field(default_factory=list)
    envelopes: dict[str, Envelope] = field(default_factory=dict)
    """One envelope per account key (``client_id:account_id``)."""
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)
    payloads: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    events_out: int = 0


def _split(value: bytes) -> tuple[list[Any] | None, str | None]:
    """The payloads of a record, or a reason why the record is not JSON."""
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return None, f"not JSON: {exc}"
    return (decoded if isinstance(decoded, list) else [decoded]), None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off for one batch.

    A batch allocates hundreds of thousands of containers (decoded payloads, rows, archive
    rows); none forms a cycle, so reference counting frees each as soon as it is dropped and
    a collection run meanwhile frees nothing. Yet the rows outlive their payload, so the
    allocation counts keep triggering collections, and the full ones walk the worker's
    whole heap: on bench/normalize_speed.py they took a third of the batch's time. Bounded
    to one batch (so nothing is held off for long) and restored even on error; left alone
    if already off. Collection resumes with the first allocation after the batch.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def normalize_records(records: list[RawRecord], index: AccountIndex, now_ms: int,
                      row_max_bytes: int = ROW_MAX_BYTES) -> NormalizedBatch:
    """Normalize every payload of ``records``; never raises for bad input.

    Every bad input costs one dead letter with its reason: a record that is not JSON, a
    record with an unusable header, a payload nested deeper than orjson writes, a payload
    a normalizer fails on, a payload whose rows would not fit one record.
    """
    out = NormalizedBatch()
    with _gc_paused():
        for rec in records:
            _normalize_record(rec, index, now_ms, out, row_max_bytes)
    return out


def _normalize_record(rec: RawRecord, index: AccountIndex, now_ms: int, out: NormalizedBatch,
                      row_max_bytes: int) -> None:
    source = rec.headers.get(HEADER_SOURCE) or DEFAULT_SOURCE
    received_at, problem = _received_at(rec)
    via_account = rec.headers.get(HEADER_VIA_ACCOUNT) or None
    payloads, error = (None, problem) if problem else _split(rec.value)
    if payloads is None:
        out.payloads += 1
        archived, dead = dead_record(rec, error or "undecodable", now_ms)
        out.dead_letters.append(dead)
        out.archive_rows.append(archived)
        return
    platform, topic, partition, offset = rec.platform, rec.topic, rec.partition, rec.offset
    # Built once per record: its payloads share platform and arrival.
    ctx = Context(tables_for(index, platform), source, received_at, via_account)
    envelopes = out.envelopes
    archive = out.archive_rows.append
    out.payloads += len(payloads)
    for payload in payloads:
        try:
            data = orjson.dumps(payload)  # once: the archive keeps the text, the key hashes it
        except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes
            text = deep_json(payload)
            _dead_payload(out, rec, text, f"payload nested deeper than {ORJSON_MAX_DEPTH} levels ({exc})",
                          received_at, now_ms, source, via_account)
            continue
        text = data.decode()
        raw_key = raw_key_of_json(data)
        try:
            rows = normalize_rows(platform, payload, ctx, raw_key)
            if isinstance(rows, DeadLetter):
                _dead_payload(out, rec, text, rows.reason, received_at, now_ms, source, via_account, raw_key)
                continue
            interactions, changes = rows.interactions, rows.changes
            skip_reason = None if interactions or changes else rows.skip_reason()
            too_big = _cap(interactions, changes, len(data), row_max_bytes)
        except Exception as exc:  # noqa: BLE001 - a normalizer's bug on one payload costs that payload
            _dead_payload(out, rec, text, f"{platform}: normalizer failed: {type(exc).__name__}: {exc}"[:500],
                          received_at, now_ms, source, via_account, raw_key)
            continue
        if too_big:
            _dead_payload(out, rec, text, too_big, received_at, now_ms, source, via_account, raw_key)
            continue
        if skip_reason is not None:
            out.skipped += 1
            out.skip_reasons[skip_reason] += 1
            archive(_archive_row((platform, raw_key, text, source, received_at, now_ms, topic, partition, offset,
                                  OUTCOME_SKIPPED, skip_reason, 0, via_account or "")))
            continue
        for row in interactions:
            key = f"{row[_I_CLIENT]}:{row[_I_ACCOUNT]}"
            env = envelopes.get(key) or _envelope(envelopes, key)
            env.interactions.append(row)
        for row in changes:
            for key in _change_keys(row, index):
                env = envelopes.get(key) or _envelope(envelopes, key)
                env.changes.append(row)
        expected = len(interactions) + len(changes)
        out.events_out += expected
        archive(_archive_row((platform, raw_key, text, source, received_at, now_ms, topic, partition, offset,
                              OUTCOME_OK, "", expected, via_account or "")))


_archive_row = partial(tuple.__new__, ArchiveRow)
"""An :class:`ArchiveRow` of a tuple of its fields in order, built in C: NamedTuple's own
``__new__`` is a Python call that cost ~0.4 µs a payload (about 2 % of the batch path)."""
# Positions named by the spec; indexing a row by them is the cheapest read (once per row).
_I_CLIENT = INTERACTIONS.position("client_id")
_I_ACCOUNT = INTERACTIONS.position("account_id")
_CHANGE_SCOPE = CHANGES.reader("client_id", "account_id", "platform")
_I_TEXT = INTERACTIONS.position("text")
_C_TEXT = CHANGES.position("text")


def _cap(interactions: list[Row], changes: list[Row], payload_bytes: int, row_max_bytes: int) -> str | None:
    """Cut texts to :data:`TEXT_MAX_CHARS` code points; the reason when a row still exceeds the bound.

    Rows hold parts of their payload, so only a payload of more than an eighth of the bound
    can make a row over it: smaller ones skip the encoding.
    """
    for rows, i in ((interactions, _I_TEXT), (changes, _C_TEXT)):
        for row in rows:
            value = row[i]
            if isinstance(value, str) and len(value) > TEXT_MAX_CHARS:
                row[i] = value[:TEXT_MAX_CHARS]
    if payload_bytes * 8 <= row_max_bytes:
        return None
    for row in (*interactions, *changes):
        size = len(orjson.dumps(row))
        if size > row_max_bytes:
            return f"payload yields a row of {size} bytes, over the record budget of {row_max_bytes} bytes"
    return None


def _dead_payload(out: NormalizedBatch, rec: RawRecord, text: str, reason: str, received_at: int, now_ms: int,
                  source: str, via_account: str | None, raw_key: str | None = None) -> None:
    """One payload of a record as one dead letter (archived whole, and for the DLQ topic)."""
    out.dead_letters.append(_dead(rec, text, reason, received_at))
    out.archive_rows.append(ArchiveRow(
        rec.platform, raw_key or raw_key_of_json(text.encode()), text, source, received_at, now_ms, rec.topic,
        rec.partition, rec.offset, OUTCOME_DEAD, reason, 0, via_account or "",
    ))


def deep_json(value: Any) -> str:
    """JSON text of a decoded value however deeply nested (iterative: orjson stops at 255 levels)."""
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            parts.append(item.text)
        elif isinstance(item, dict):
            parts.append("{")
            stack.append(_Raw("}"))
            entries = list(item.items())
            for n in range(len(entries) - 1, -1, -1):
                key, inner = entries[n]
                stack.append(inner)
                stack.append(_Raw(("," if n else "") + orjson.dumps(str(key)).decode() + ":"))
        elif isinstance(item, list):
            parts.append("[")
            stack.append(_Raw("]"))
            for n in range(len(item) - 1, -1, -1):
                stack.append(item[n])
                if n:
                    stack.append(_Raw(","))
        else:
            parts.append(orjson.dumps(item).decode())
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class _Raw:
    text: str


def _change_keys(row: Row, index: AccountIndex) -> list[str]:
    """The envelope keys of a change row: its account's, or every tracked account's of its platform.

    An unattributed change (a Mastodon delete names only the status id) must reach the
    detection state of every account it may concern, and that state lives in the account's
    partition, on whichever worker owns it: keyed by one account it would reach one worker
    only (found by `rapport chaos` with two workers). Each copy is the same row, so the
    store keeps one (``changes`` is a ReplacingMergeTree) and applying it twice changes
    nothing.
    """
    client_id, account_id, platform = _CHANGE_SCOPE(row)
    if client_id:
        return [f"{client_id}:{account_id}"]
    refs = index.all_on(platform)
    return sorted({f"{r.client_id}:{r.account_id}" for r in refs}) or [UNATTRIBUTED_KEY + platform]


def _envelope(envelopes: dict[str, Envelope], key: str) -> Envelope:
    """A new, empty envelope for ``key`` (first row of that account in the batch)."""
    env = envelopes[key] = Envelope()
    return env


def _received_at(rec: RawRecord) -> tuple[int, str | None]:
    """The record's ``received_at`` (epoch ms) and, when its headers are unusable, why.

    A missing header means the broker's timestamp; a header that is not an integer or lies
    outside 2000..2200 makes the record a dead letter (the time becomes every row's version,
    and ClickHouse refuses times out of range), archived at the broker's timestamp.
    """
    refused = rec.headers.get(HEADER_REFUSED)
    fallback = rec.received_at_fallback if RECEIVED_AT_MIN <= rec.received_at_fallback < RECEIVED_AT_MAX else 0
    header = rec.headers.get(HEADER_RECEIVED_AT)
    if not header:
        return fallback, (f"refused by the publisher: {refused}" if refused else None)
    try:
        value = int(header)
    except ValueError:
        return fallback, f"received_at header is not an integer: {header[:80]!r}"
    if not RECEIVED_AT_MIN <= value < RECEIVED_AT_MAX:
        return fallback, f"received_at header out of range (2000..2200): {header[:80]!r}"
    return value, (f"refused by the publisher: {refused}" if refused else None)


def received_at_of(rec: RawRecord) -> int:
    """The record's ``received_at`` header (epoch ms) when usable, else its broker timestamp."""
    return _received_at(rec)[0]


def dead_record(rec: RawRecord, reason: str, now_ms: int) -> tuple[ArchiveRow, DeadLetterRecord]:
    """A whole raw record as one dead letter: its archive row and its DLQ record.

    The archive key hashes the bytes as received (the record is not, or not usable, JSON).
    """
    text = rec.value.decode("utf-8", errors="replace")
    received_at = received_at_of(rec)
    row = ArchiveRow(rec.platform, raw_key_of_json(rec.value), text, rec.headers.get(HEADER_SOURCE) or DEFAULT_SOURCE,
                     received_at, now_ms, rec.topic, rec.partition, rec.offset, OUTCOME_DEAD, reason, 0,
                     rec.headers.get(HEADER_VIA_ACCOUNT) or "")
    return row, _dead(rec, text, reason, received_at)


def _dead(rec: RawRecord, text: str, reason: str, received_at: int) -> DeadLetterRecord:
    return _dead_letter_record(reason, rec.platform, rec.topic, rec.partition, rec.offset, received_at, text)
