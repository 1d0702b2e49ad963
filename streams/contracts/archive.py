"""The archive row (``raw_events``) and the dead-letter record (``rapport.dlq``).

Every payload the normalizer reads is archived once, whatever became of it (``ok``,
``skipped``, ``dead``), and so is every envelope the sink dead-letters: the archive is
what replays and the DLQ board read. The row is a :class:`typing.NamedTuple` so readers
and writers name its fields while it stays a tuple in column order (no per-row dict; the
writer sends it as a JSON array, :class:`streams.store.writer.TableWriter`).
"""

from __future__ import annotations

from typing import NamedTuple, TypedDict

OUTCOME_OK = "ok"
OUTCOME_SKIPPED = "skipped"
OUTCOME_DEAD = "dead"
SINK_SOURCE = "sink"
"""The ``source`` (and DLQ key) of an envelope the sink refused; migration 0011 keys on it."""


class ArchiveRow(NamedTuple):
    """One ``raw_events`` row; fields in the table's column order (schemas/migrations/0011)."""

    platform: str
    raw_key: str
    """Content key of the payload (``sink:<sha256>`` for an envelope the sink refused)."""
    payload: str
    """The payload as JSON text, whole (the DLQ record may carry it cut)."""
    source: str
    received_at: int
    """Epoch ms: the ``received_at`` header, else the broker's timestamp."""
    archived_at: int
    """Epoch ms: when the normalizer (or the sink) archived it."""
    topic: str
    partition: int
    offset: int
    outcome: str
    """``ok``, ``skipped`` or ``dead``."""
    reason: str
    """Why skipped or dead; empty when ok."""
    expected: int
    """Interactions plus changes the payload yielded (what a replay must find again)."""
    via_account: str


ARCHIVE_COLUMNS: tuple[str, ...] = ArchiveRow._fields


class DeadLetterRecord(TypedDict, total=False):
    """The JSON object a ``rapport.dlq`` record holds (and :func:`dead_letter_record` builds)."""

    reason: str
    platform: str
    """Empty for an envelope the sink refused (it is not one platform's payload)."""
    topic: str
    partition: int
    offset: int
    received_at: int
    payload: str
    truncated: bool
    """Present (true) when ``payload`` was cut to fit the record budget; the archive has it whole."""


def dead_letter_record(reason: str, platform: str, topic: str, partition: int, offset: int,
                       received_at: int, payload: str) -> DeadLetterRecord:
    """The DLQ record of one dead letter, with where it came from."""
    return {"reason": reason, "platform": platform, "topic": topic, "partition": partition,
            "offset": offset, "received_at": received_at, "payload": payload}
