"""`rapport replay FILE --platform P`: publish a JSONL file of raw payloads.

Each line is one payload exactly as the platform delivered it. ``--rate`` paces lines per
second; ``--follow`` keeps reading as the file grows (like ``tail -f``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from streams.ingest.publisher import Publisher


def read_lines(fh: BinaryIO, follow: bool, stop: Callable[[], bool]) -> Iterator[bytes]:
    """Lines of ``fh``; with ``follow``, wait for more at EOF until ``stop()``."""
    pending = b""
    while True:
        chunk = fh.readline()
        if chunk:
            pending += chunk
            if pending.endswith(b"\n"):
                yield pending
                pending = b""
            continue
        if not follow or stop():
            if pending:
                yield pending
            return
        time.sleep(0.2)


def replay_file(path: Path, platform: str, publisher: Publisher, source: str = "replay",
                rate: float | None = None, follow: bool = False,
                on_line: Callable[[bytes], None] | None = None,
                stop: Callable[[], bool] = lambda: False) -> int:
    """Publish every non-empty line; returns the number of payloads published."""
    count = 0
    started = time.monotonic()
    with path.open("rb") as fh:
        for line in read_lines(fh, follow, stop):
            if not line.strip():
                continue
            publisher.add(platform, line, source)
            count += 1
            if on_line:
                on_line(line)
            if rate:
                ahead = count / rate - (time.monotonic() - started)
                if ahead > 0:
                    publisher.flush_arrays()
                    time.sleep(ahead)
            publisher.tick()
    publisher.flush()
    return count
