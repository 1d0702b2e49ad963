"""The `rapport replay` command: progress, optional own stack, drain and summary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from streams.clients import PLATFORMS
from streams.contracts.topics import INTERACTIONS, raw_topic
from streams.drain import wait_drained
from streams.embedded.stackfile import read_stack
from streams.embedded.supervisor import Stack
from streams.errors import ConfigError, StackError
from streams.ingest.replay import Reconnecting, compression_of, replay_file
from streams.settings import Settings
from streams.store.client import broker_url, connect, store_url

KEYS_PER_QUERY = 80
DRAIN_ROUNDS = 5


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    # clickhouse-connect sends a parameter over 4 KB as multipart form data, which the
    # embedded store does not serve: 80 keys of 32 hex digits stay well below that.
    unique = sorted(set(keys))
    for i in range(0, len(unique), KEYS_PER_QUERY):
        yield unique[i:i + KEYS_PER_QUERY]


def summarize(settings: Settings, url: str, keys: list[str]) -> dict[str, int]:
    """Interactions, changes, dead-lettered and skipped counts for the given archive keys."""
    client = connect(url, settings)
    totals = {"payloads": 0, "results": 0, "dead_lettered": 0, "skipped": 0}
    try:
        for chunk in _chunks(keys):
            row = client.query(
                "SELECT count(), sum(expected), countIf(outcome = 'dead'), countIf(outcome = 'skipped') "
                "FROM raw_events FINAL WHERE raw_key IN {keys:Array(String)}",
                parameters={"keys": chunk},
            ).result_rows[0]
            for name, value in zip(totals, row, strict=True):
                totals[name] += int(value or 0)
    finally:
        client.close()
    return totals


def missing_keys(settings: Settings, url: str, keys: list[str]) -> set[str]:
    """The keys the archive does not hold (published lines the broker lost before archiving)."""
    client = connect(url, settings)
    have: set[str] = set()
    try:
        for chunk in _chunks(keys):
            have.update(r[0] for r in client.query(
                "SELECT DISTINCT raw_key FROM raw_events WHERE raw_key IN {keys:Array(String)}",
                parameters={"keys": chunk}).result_rows)
    finally:
        client.close()
    return set(keys) - have


def run_replay(settings: Settings, file: Path, platform: str, *, rate: float | None, follow: bool,
               drain: bool, source: str, console: Console) -> int:
    if platform not in PLATFORMS:
        raise ConfigError(f"--platform must be one of {', '.join(PLATFORMS)}, not {platform!r}")
    if drain and follow:
        raise ConfigError("--drain and --follow exclude each other: a followed file never ends")
    compressed = compression_of(file)  # refuses a compression it cannot read, before anything is published
    if compressed is not None and follow:
        raise ConfigError("--follow reads a growing plain file; a compressed file cannot grow")
    own: Stack | None = None
    if read_stack(settings.data_dir) is None and not settings.broker_url:
        if not drain:
            raise ConfigError(f"no stack is running for {settings.data_dir}: start `rapport up` "
                              "or pass --drain to run one for this replay")
        console.print(f"starting an embedded stack in {settings.data_dir} ...")
        own = Stack(settings)
        own.start()
    try:
        def locate_broker() -> str:
            return own.broker_url if own else broker_url(settings)  # re-reads stack.json

        def locate_store() -> str:
            return own.store_url if own else store_url(settings)

        def reconnected(url: str) -> None:
            console.print(f"the broker went away; reconnected to {url}")

        publisher = Reconnecting(settings, locate_broker, on_reconnect=reconnected)
        total = file.stat().st_size if compressed is None else 0
        with Progress(TextColumn("[bold]replay[/bold] {task.description}"), BarColumn(), DownloadColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task(file.name, total=total or None)

            def on_line(number: int, line: bytes) -> None:
                progress.advance(task, len(line))

            def refused_now(number: int, reason: str) -> None:
                console.print(f"line {number}: refused: {reason}")

            # A followed file never ends: remember a bounded window, report refusals at once.
            window = settings.replay_follow_window if follow else None
            result = replay_file(file, platform, publisher, source=source, rate=rate, follow=follow,
                                 on_line=on_line, window=window, on_refused=refused_now if follow else None)
        if not follow:
            for number, reason in result.refused:
                console.print(f"line {number}: refused: {reason}")
        if not drain:
            publisher.call(lambda p: p.close())
            console.print(f"published {result.published} lines to {settings.topic(raw_topic(platform))}, "
                          f"refused {result.refused_count}")
            return 0
        stages = [[settings.topic(raw_topic(p)) for p in PLATFORMS], [settings.topic(INTERACTIONS)]]
        keys = list(result.keys)
        republished = 0
        lost: set[str] = set()
        for _ in range(DRAIN_ROUNDS):
            with console.status("waiting until everything is processed and stored ..."):
                try:
                    wait_drained(publisher.url, settings.app_id, stages, alive=own.alive if own else None)
                except (StackError, KafkaError, OSError) as exc:
                    if own is not None:
                        raise
                    publisher.reconnect(exc)  # the stack was restarted: its new broker, from stack.json
                    continue
            lost = missing_keys(settings, locate_store(), keys)
            if not lost:
                break
            lines = {result.keys[k] for k in lost}
            console.print(f"{len(lost)} payloads of {len(lines)} lines are not in the archive; "
                          "publishing them again")
            again = replay_file(file, platform, publisher, source=source, only=lines)
            republished += again.published
        else:
            publisher.call(lambda p: p.close())
            console.print(f"after {DRAIN_ROUNDS} rounds {len(lost)} payloads are still not archived")
            return 1
        publisher.call(lambda p: p.close())
        totals = summarize(settings, locate_store(), keys)
        print(f"published={result.published} refused={result.refused_count} republished={republished} "
              f"interactions_and_changes={totals['results']} dead_lettered={totals['dead_lettered']} "
              f"skipped={totals['skipped']}", flush=True)
        return 0
    finally:
        if own is not None:
            own.stop()
