"""Re-publishing walks the archive a chunk at a time and finds exactly the unprocessed payloads.

Against the real store: archived payloads in two platforms, some fully processed (their
interactions and changes stored), some partly, some not at all, some dead letters. With a
chunk far smaller than the archive, the payloads handed to the publisher are exactly the
unprocessed ok ones, each once, and no more than one chunk is ever queued between flushes.
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.contracts.tables import CHANGES, INTERACTIONS, RAW_EVENTS
from streams.embedded.republish import republish_unprocessed
from streams.interaction import INTERACTION_COLUMNS
from streams.settings import Settings
from streams.store.client import connect
from streams.store.writer import TableWriter
from tests.support.interactions import interaction
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration


class Recording:
    """A publisher that keeps what it is given (the broker side is tested elsewhere)."""

    def __init__(self) -> None:
        self.added: list[tuple[str, bytes, str, int, str]] = []
        self.queued = self.peak = 0

    def add(self, platform: str, payload: bytes, source: str, received_at: int, via_account: str = "") -> None:
        self.added.append((platform, payload, source, received_at, via_account))
        self.queued += 1
        self.peak = max(self.peak, self.queued)

    def flush(self) -> None:
        self.queued = 0


def test_republish_pages_through_the_archive(namespace: Namespace) -> None:
    settings: Settings = namespace.settings
    client = connect(namespace.store_url, settings)
    try:
        raw = TableWriter.for_spec(client, RAW_EVENTS, 5000)
        inter = TableWriter.for_spec(client, INTERACTIONS, 5000)
        changes = TableWriter.for_spec(client, CHANGES, 5000)
        rows: list[list[Any]] = []
        stored: list[list[Any]] = []
        stored_changes: list[list[Any]] = []
        want: set[tuple[str, str]] = set()
        t0 = 1_700_000_000_000
        for i in range(230):
            platform = ("reddit", "x")[i % 2]
            key = f"k{i:04d}"
            state = i % 5  # 0 done, 1 partly done, 2 untouched, 3 dead, 4 done through a change
            outcome = "dead" if state == 3 else "ok"
            expected = 2 if state in (0, 1) else 1
            rows.append([platform, key, f'{{"n":{i}}}', "stream", t0 + i, t0 + i, "t", 0, i, outcome, "", expected,
                         f"via{i}"])
            if state in (0, 1):
                for j in range(2 if state == 0 else 1):
                    msg = interaction(platform, f"e{i}-{j}", "post", "p1", t0 + i, raw_key=key)
                    stored.append([getattr(msg, c) for c in INTERACTION_COLUMNS])
            if state == 4:
                stored_changes.append([platform, f"e{i}", "delete", t0 + i, "", "", "c", "acct", "stream", key, 1])
            if state in (1, 2):
                want.add((platform, f'{{"n":{i}}}'))
        raw.write(rows)
        inter.write(stored)
        changes.write(stored_changes)
        pub = Recording()
        count = republish_unprocessed(client, pub, chunk=17)  # type: ignore[arg-type]
    finally:
        client.close()
    got = [(p, payload.decode()) for p, payload, *_ in pub.added]
    assert count == len(got) == len(want)
    assert set(got) == want
    assert pub.peak <= 17
    by_payload = {payload.decode(): (source, at, via) for _, payload, source, at, via in pub.added}
    assert by_payload['{"n":2}'] == ("stream", t0 + 2, "via2")
