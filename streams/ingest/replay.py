"""`rapport replay FILE --platform P`: publish a JSONL file of raw payloads.

Each line is one payload exactly as the platform delivered it (or a JSON array of them).
``--rate`` paces lines per second; ``--follow`` keeps reading as the file grows (like
``tail -f``). A gzip or zstd file is read transparently; another compression is refused
with one line before anything is published. No line can stop a replay: a bad one is
published as it is (it dead-letters by itself) or refused with its line number and reason.
If the broker goes away, the stack file is read again and the replay reconnects to the
stack's new broker (``--drain`` then republishes whatever the archive lacks).
"""

from __future__ import annotations

import gzip
import io
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from streams.errors import ConfigError, StackError
from streams.ingest.publisher import Publisher
from streams.settings import Settings

log = logging.getLogger(__name__)

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_OTHER = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip", b"7z\xbc\xaf": "7z"}


def compression_of(path: Path) -> str | None:
    """``"gzip"``, ``"zstd"``, ``None`` (plain); a ConfigError for a compression we cannot read."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(_GZIP):
        return "gzip"
    if head.startswith(_ZSTD):
        return "zstd"
    for magic, name in _OTHER.items():
        if head.startswith(magic):
            raise ConfigError(f"{path} is {name}-compressed; replay reads plain, gzip or zstd JSONL: "
                              f"decompress it first")
    return None


@contextmanager
def open_lines(path: Path) -> Iterator[BinaryIO]:
    """The file's decompressed bytes (gzip and zstd transparently)."""
    kind = compression_of(path)
    if kind == "gzip":
        with gzip.open(path, "rb") as fh:
            yield fh  # type: ignore[misc]
    elif kind == "zstd":
        try:
            import zstandard
        except ImportError as exc:  # pragma: no cover - a dependency of clickhouse-connect
            raise ConfigError(f"{path} is zstd-compressed and the zstandard module is missing: "
                              "decompress it first (zstd -d)") from exc
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as rd:
            yield io.BufferedReader(rd)  # type: ignore[arg-type]  # readline() needs a buffer
    else:
        with path.open("rb") as fh:
            yield fh


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


@dataclass
class ReplayResult:
    """What a replay published: payloads, refusals by line, and the archive key of every line.

    With a ``window`` (``--follow``: the file never ends) only the latest ``window`` keys and
    refusals are kept, so a replay that runs for months holds a bounded amount; the counts
    stay whole.
    """

    published: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)
    """Archive key -> line number (1-based) of every payload queued (the latest ``window``)."""
    reconnects: int = 0
    refused_count: int = 0
    window: int | None = None

    def note(self, new_keys: list[str], number: int, refused: str | None) -> None:
        for key in new_keys:
            self.keys.setdefault(key, number)
        if refused is not None:
            self.refused.append((number, refused))
            self.refused_count += 1
        if self.window is not None:
            while len(self.keys) > self.window:
                del self.keys[next(iter(self.keys))]
            if len(self.refused) > 2 * self.window:
                del self.refused[:-self.window]


class Reconnecting:
    """A publisher that, when the broker goes away, waits for the stack's new broker.

    ``locate()`` answers the broker URL to use now (re-reading ``stack.json``); it is
    polled until a publisher starts on it, for at most ``timeout_s``.
    """

    def __init__(self, settings: Settings, locate: Callable[[], str], timeout_s: float = 180.0,
                 on_reconnect: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.locate = locate
        self.timeout_s = timeout_s
        self.on_reconnect = on_reconnect
        self.url = locate()
        self.publisher = Publisher(settings, self.url)
        self.publisher.keys = []
        self.reconnects = 0

    def reconnect(self, why: BaseException) -> None:
        old = self.publisher
        try:  # best effort: its broker is gone, what it still holds is republished by --drain
            old.producer._call(old.producer.producer.stop(), timeout_s=5.0)
        except Exception:  # noqa: BLE001
            pass
        try:
            old.producer.loop.call_soon_threadsafe(old.producer.loop.stop)
        except RuntimeError:
            pass
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                url = self.locate()
                publisher = Publisher(self.settings, url)
                break
            except (StackError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise StackError(f"the broker went away ({why}) and no stack came back within "
                                     f"{self.timeout_s:.0f}s: {exc}") from exc
                time.sleep(1.0)
        publisher.keys = old.keys
        publisher.payloads, publisher.refused = old.payloads, old.refused
        self.publisher, self.url = publisher, url
        self.reconnects += 1
        if self.on_reconnect:
            self.on_reconnect(url)

    def call(self, fn: Callable[[Publisher], object]) -> object:
        while True:
            try:
                return fn(self.publisher)
            except StackError as exc:
                self.reconnect(exc)


def replay_file(path: Path, platform: str, publisher: Reconnecting, source: str = "replay",
                rate: float | None = None, follow: bool = False,
                on_line: Callable[[int, bytes], None] | None = None,
                stop: Callable[[], bool] = lambda: False, only: set[int] | None = None,
                window: int | None = None,
                on_refused: Callable[[int, str], None] | None = None) -> ReplayResult:
    """Publish every non-empty line (or only the line numbers in ``only``).

    ``window`` bounds what is remembered per line (see :class:`ReplayResult`); a followed
    file is replayed with one, and ``on_refused`` then reports a refusal as it happens.
    """
    result = ReplayResult(window=window)
    started = time.monotonic()
    with open_lines(path) as fh:
        for number, line in enumerate(read_lines(fh, follow, stop), start=1):
            if not line.strip() or (only is not None and number not in only):
                continue
            keys = publisher.publisher.keys
            first = len(keys) if keys is not None else 0
            refused = publisher.call(lambda p, line=line: p.add(platform, line, source))  # type: ignore[misc]
            keys = publisher.publisher.keys
            result.note(keys[first:] if keys is not None else [], number,
                        refused if isinstance(refused, str) else None)
            if keys is not None and window is not None and len(keys) > 2 * window:
                del keys[:-window]  # the publisher's list of queued keys is bounded the same way
            if isinstance(refused, str) and on_refused is not None:
                on_refused(number, refused)
            result.published += 1
            if on_line:
                on_line(number, line)
            if rate:
                ahead = result.published / rate - (time.monotonic() - started)
                if ahead > 0:
                    publisher.call(lambda p: p.flush_arrays())
                    time.sleep(ahead)
            publisher.call(lambda p: p.tick())
    publisher.call(lambda p: p.flush())
    result.reconnects = publisher.reconnects
    return result
