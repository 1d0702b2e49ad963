"""The `rapport replay` command: progress, optional own stack, drain and summary."""

from __future__ import annotations

from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from streams.clients import PLATFORMS
from streams.drain import wait_drained
from streams.embedded.stackfile import read_stack
from streams.embedded.supervisor import Stack
from streams.errors import ConfigError
from streams.ingest.publisher import Publisher
from streams.ingest.replay import replay_file
from streams.normalize.base import raw_key_of, raw_key_of_json
from streams.settings import Settings
from streams.store.client import broker_url, connect, store_url
from streams.topics import INTERACTIONS, raw_topic

KEYS_PER_QUERY = 80


def line_key(line: bytes) -> str:
    """The archive key the normalizer will give this line (see normalize.records)."""
    data = line.strip()
    try:
        return raw_key_of(orjson.loads(data))
    except orjson.JSONDecodeError:
        return raw_key_of_json(data)


def summarize(settings: Settings, url: str, keys: list[str]) -> dict[str, int]:
    """Interactions, changes, dead-lettered and skipped counts for the given archive keys."""
    client = connect(url, settings)
    totals = {"payloads": 0, "results": 0, "dead_lettered": 0, "skipped": 0}
    unique = sorted(set(keys))
    try:
        # clickhouse-connect sends a parameter over 4 KB as multipart form data, which the
        # embedded store does not serve: 80 keys of 32 hex digits stay well below that.
        for i in range(0, len(unique), KEYS_PER_QUERY):
            chunk = unique[i:i + KEYS_PER_QUERY]
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


def run_replay(settings: Settings, file: Path, platform: str, *, rate: float | None, follow: bool,
               drain: bool, source: str, console: Console) -> int:
    if platform not in PLATFORMS:
        raise ConfigError(f"--platform must be one of {', '.join(PLATFORMS)}, not {platform!r}")
    if drain and follow:
        raise ConfigError("--drain and --follow exclude each other: a followed file never ends")
    own: Stack | None = None
    if read_stack(settings.data_dir) is None and not settings.broker_url:
        if not drain:
            raise ConfigError(f"no stack is running for {settings.data_dir}: start `rapport up` "
                              "or pass --drain to run one for this replay")
        console.print(f"starting an embedded stack in {settings.data_dir} ...")
        own = Stack(settings)
        own.start()
    try:
        b_url = own.broker_url if own else broker_url(settings)
        s_url = own.store_url if own else store_url(settings)
        publisher = Publisher(settings, b_url)
        keys: list[str] = []
        total = file.stat().st_size
        with Progress(TextColumn("[bold]replay[/bold] {task.description}"), BarColumn(), DownloadColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task(file.name, total=total or None)

            def on_line(line: bytes) -> None:
                keys.append(line_key(line))
                progress.advance(task, len(line))

            published = replay_file(file, platform, publisher, source=source, rate=rate, follow=follow,
                                    on_line=on_line)
            publisher.close()
        if not drain:
            console.print(f"published {published} payloads to {settings.topic(raw_topic(platform))}")
            return 0
        stages = [[settings.topic(raw_topic(p)) for p in PLATFORMS], [settings.topic(INTERACTIONS)]]
        with console.status("waiting until everything is processed and stored ..."):
            wait_drained(b_url, settings.app_id, stages, alive=own.alive if own else None)
        totals = summarize(settings, s_url, keys)
        print(f"published={published} interactions_and_changes={totals['results']} "
              f"dead_lettered={totals['dead_lettered']} skipped={totals['skipped']}", flush=True)
        return 0
    finally:
        if own is not None:
            own.stop()
