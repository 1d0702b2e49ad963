"""`rapport bench --scale`: a backfill of months of traffic, then every board query timed on it.

On one fresh embedded stack (temporary data dir):

1. *backfill*: ``events`` simulated events spread over ``days`` of event time ending now are
   published before any worker runs (faster than any worker consumes: the backlog case of
   issue 14), then one worker slot (a normalize and a detect process, or one process of
   every agent with ``RAPPORT_WORKER_SPLIT=false``) takes them through the real pipeline
   (normalize, archive, store, detection, rollups). ``backfill_s`` runs from the workers'
   start to every topic drained; their resident memory is sampled meanwhile
   (``worker_rss_max_mb``: the largest process);
2. *boards*: every Grafana panel, variable and alert query (streams/grafana/sql.py), expanded
   as Grafana expands it (variables set to "All" as the variable queries resolve them, the
   datasource's macros for a 7-day and a 90-day range ending now), is sent ``runs`` times over
   HTTP with clickhouse-connect as the read-only user, answers in Grafana's Native format;
   median and p95 per query and range;
3. ``rapport report`` (the catalogue's figures, :func:`streams.report.collect`) and the
   terminal board's refresh (:func:`streams.board.queries.read_board`), ``runs`` times each.

The last line printed is one JSON object; nothing here asserts a time (bench/README.md keeps
the figures with their command).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from rich.console import Console

from streams.board.queries import read_board
from streams.clients import PLATFORMS, load_clients
from streams.contracts.topics import INTERACTIONS, raw_topic
from streams.drain import wait_drained
from streams.embedded.supervisor import Stack
from streams.grafana import sql
from streams.grafana.macros import TimeContext, expand
from streams.ingest.publisher import Publisher
from streams.report import collect
from streams.resources import example_clients
from streams.settings import Settings
from streams.simulator.traffic import Simulator
from streams.store.client import connect

RANGES = {"7d": timedelta(days=7), "90d": timedelta(days=90)}
POINTS = 1000  # Grafana's interval: the range over about a panel's width in pixels
COUNTED = ("interactions", "threads", "conversations", "responses", "alerts", "activity_minutely")


@dataclass(frozen=True, slots=True)
class Timed:
    """One query's timings (ms) over its runs."""

    name: str
    ms: list[float]

    @property
    def median(self) -> float:
        return round(statistics.median(self.ms), 1)

    @property
    def p95(self) -> float:
        ordered = sorted(self.ms)
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 1)


def _time(call: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


class RssSampler:
    """The largest resident set (MB) of some processes, sampled from /proc by a thread."""

    def __init__(self, pids: Callable[[], list[int]], every_s: float = 0.5) -> None:
        self.pids = pids
        self.every_s = every_s
        self.max_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_mb(pid: int) -> float:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for pid in self.pids():
                self.max_mb = max(self.max_mb, self.rss_mb(pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def publish_history(settings: Settings, broker_url: str, events: int, days: float, seed: int,
                    progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Publish ``events`` simulated events over ``days`` ending now; (first, last) event ms."""
    clients = load_clients(settings.clients or example_clients())
    span_ms = int(days * 86_400_000)
    start = int(time.time() * 1000) - span_ms
    sim = Simulator(clients, seed=seed, start_ms=start, mean_gap_ms=max(1, span_ms // max(1, events)))
    pub = Publisher(settings, broker_url)
    first = last = start
    try:
        for i, ev in enumerate(sim.events(events)):
            pub.add(ev.platform, orjson.dumps(ev.payload), ev.source, via_account=ev.via_account or "")
            last = max(last, ev.event_ms)
            if progress is not None and i and i % 100_000 == 0:
                progress(i)
    finally:
        pub.close()
    return first, last


def panel_queries(reader: Client, now: datetime) -> Iterator[tuple[str, str]]:
    """(name, SQL as Grafana sends it) for every variable, panel and alert query and range."""
    for rng, delta in RANGES.items():
        ctx = TimeContext(now - delta, now, max(1.0, delta.total_seconds() / POINTS))
        variables: dict[str, Any] = {"client": [r[0] for r in reader.query(sql.VAR_CLIENT).result_rows]}
        yield f"var:client@{rng}", sql.VAR_CLIENT
        for name in ("account", "platform"):
            text = expand(sql.VARIABLES[name], variables, ctx)
            yield f"var:{name}@{rng}", text
            variables[name] = [r[0] for r in reader.query(text).result_rows] or (
                list(PLATFORMS) if name == "platform" else [""])
        for query in sql.PANEL_QUERIES:
            yield f"panel:{query.key}@{rng}", expand(query.sql, variables, ctx)
        for query in sql.ALERT_QUERIES:
            yield f"alert:{query.key}@{rng}", expand(query.sql, variables, ctx)


def time_boards(reader: Client, runs: int) -> tuple[list[Timed], dict[str, str]]:
    """Timings per query, and the queries the store refused (name -> first line of the error)."""
    now = datetime.now(UTC)
    timed = []
    errors: dict[str, str] = {}
    for name, text in panel_queries(reader, now):
        try:
            reader.raw_query(text, fmt="Native")  # warm: the first run of a statement parses it
        except Exception as exc:  # noqa: BLE001 - reported in the figures, never hidden
            errors[name] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            continue
        timed.append(Timed(name, _time(lambda t=text: reader.raw_query(t, fmt="Native"), runs)))  # type: ignore[misc]
    return timed, errors


def counts(client: Client) -> dict[str, int]:
    return {t: int(client.command(f"SELECT count() FROM {t} FINAL")) for t in COUNTED}  # type: ignore[arg-type]


def has_store(data_dir: Path) -> bool:
    """Whether a data dir holds a store already (a kept bench store: timed again, not refilled)."""
    store = data_dir / "store"
    return store.is_dir() and any(store.iterdir())


def run_scale(settings: Settings, events: int, console: Console, days: float = 120.0, runs: int = 7,
              seed: int = 14, timeout_s: float = 6 * 3600, keep: Path | None = None) -> dict[str, Any]:
    """The whole bench (module docstring); returns and prints the JSON figures.

    With ``keep``, the stack lives in that directory and stays there: the first run backfills
    it, a later run starts the kept store again (migrating it, as any store is on start) and
    only times the queries, so a change of schema or SQL is timed before and after on one store.
    """
    with contextlib.ExitStack() as cleanup:
        if keep is None:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="rapport-bench-scale-")))
        else:
            data_dir = keep.resolve()
            data_dir.mkdir(parents=True, exist_ok=True)
        kept = keep is not None and has_store(data_dir)
        # The simulator's clients unless a file is given, as --soak and the plain bench do.
        bench_settings = settings.model_copy(update={"data_dir": data_dir, "broker_url": None, "store_url": None,
                                                     "clients": Path(settings.clients or example_clients())})
        publish_s = backfill_s = 0.0
        rss_max_mb = 0.0
        with Stack(bench_settings, workers=0) as stack:
            if kept:
                console.print(f"timing the kept store in {data_dir} (no backfill) ...")
            else:
                console.print(f"publishing {events:,} simulated events over {days:g} days, before any worker runs ...")
                started = time.monotonic()
                publish_history(bench_settings, stack.broker_url, events, days, seed,
                                progress=lambda n: console.print(f"  {n:,} published"))
                publish_s = time.monotonic() - started
                console.print(f"published in {publish_s:,.0f}s; one worker slot backfills ...")
                stages = [[bench_settings.topic(raw_topic(p)) for p in PLATFORMS],
                          [bench_settings.topic(INTERACTIONS)]]
                started = time.monotonic()
                with RssSampler(lambda: [w.pid for w in stack.workers]) as rss:
                    stack.add_worker()
                    wait_drained(stack.broker_url, bench_settings.app_id, stages, timeout_s=timeout_s,
                                 alive=stack.alive)
                backfill_s = time.monotonic() - started
                rss_max_mb = rss.max_mb
            client = connect(stack.store_url, bench_settings)
            reader = connect(stack.store_url, bench_settings, role="reader")
            try:
                stored = counts(client)
                if kept:
                    events = stored["interactions"]
                console.print(f"{'kept' if kept else f'backfilled in {backfill_s:,.0f}s'}: {stored}; timing every "
                              f"board query ({runs} runs, 7 and 90 days) ...")
                timed, errors = time_boards(reader, runs)
                report = Timed("report", _time(lambda: collect(reader), runs))
                board = Timed("board_refresh", _time(lambda: read_board(reader), runs))
            finally:
                client.close()
                reader.close()
    panels = [t for t in timed if not t.name.startswith("var:")] or timed
    worst = sorted(timed, key=lambda t: t.p95, reverse=True)
    result: dict[str, Any] = {
        "events": events,
        "kept_store": kept,
        "days": days,
        "publish_s": round(publish_s, 1),
        "backfill_s": round(backfill_s, 1),
        "backfill_events_per_s": round(events / backfill_s, 1) if backfill_s else 0.0,
        "worker_rss_max_mb": round(rss_max_mb, 1),
        "stored": stored,
        "queries": len(timed),
        "panels_p95_ms": max(t.p95 for t in panels),
        "panels_median_ms": round(statistics.median(t.median for t in panels), 1),
        "report_s": round(report.median / 1000, 3),
        "report_p95_s": round(report.p95 / 1000, 3),
        "board_refresh_ms": board.median,
        "slowest": [{"name": t.name, "p95_ms": t.p95, "median_ms": t.median} for t in worst[:5]],
        "errors": errors,
        "timed": {t.name: [t.median, t.p95] for t in timed},
    }
    print(orjson.dumps(result).decode(), flush=True)
    return result
