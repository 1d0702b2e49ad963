"""`replay --follow` remembers a bounded window of lines, however long the file grows.

Through the real broker: a followed file of many lines, two of them over the record limit,
replayed with a window of 5. Every line is published and counted, each refusal is reported
as it happens, and what the replay keeps per line (archive keys, refusals, the publisher's
queued keys) never exceeds the window (twice it, for the amortised trims).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.ingest.replay import Reconnecting, replay_file
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration


def test_follow_keeps_a_bounded_window(namespace: Namespace, tmp_path: Path) -> None:
    settings = namespace.settings.model_copy(update={"record_max_bytes": 65_536})
    path = tmp_path / "grow.jsonl"
    lines = [orjson.dumps({"kind": "t3", "data": {"id": f"p{i}", "title": "x" * 20}}) for i in range(300)]
    lines[40] = lines[250] = orjson.dumps({"kind": "t3", "data": {"id": "big", "title": "y" * 70_000}})
    path.write_bytes(b"\n".join(lines) + b"\n")
    publisher = Reconnecting(settings, lambda: namespace.broker_url)
    seen_refused: list[int] = []
    peak = 0

    def on_line(number: int, line: bytes) -> None:
        nonlocal peak
        keys = publisher.publisher.keys or []
        peak = max(peak, len(keys))

    try:
        result = replay_file(path, "reddit", publisher, follow=True, stop=lambda: True, window=5,
                             on_line=on_line, on_refused=lambda n, _: seen_refused.append(n))
    finally:
        publisher.call(lambda p: p.close())
    assert result.published == 300
    assert result.refused_count == 2 and seen_refused == [41, 251]
    assert len(result.keys) == 5 and sorted(result.keys.values()) == [296, 297, 298, 299, 300]
    assert len(result.refused) <= 10
    assert peak <= 11
