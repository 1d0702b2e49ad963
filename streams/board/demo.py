"""`rapport demo`: the embedded stack, the simulator and the live board, in one command."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live

from streams.board.ingest_status import ingest_status_lines, ingest_status_table, read_ingest_status
from streams.board.queries import read_board
from streams.board.render import render, summary_lines
from streams.clients import ClientsFile, load_clients
from streams.embedded.supervisor import Stack
from streams.errors import ConfigError
from streams.ingest.publisher import Publisher
from streams.settings import Settings
from streams.simulator.command import pump
from streams.simulator.traffic import Simulator
from streams.store.client import connect

DEMO_HOUR_UTC = 14  # 09:00 in New York, 15:00 in Berlin: most business hours are open


def demo_start_ms(now_s: float) -> int:
    """Event time the demo's simulated day starts at: the latest past weekday, 14:00 UTC.

    Brands answer only within business hours, so a demo started at night on the wall
    clock would show people talking and nobody answering. The simulated traffic runs on a
    recent business afternoon instead; its deadlines are swept on event time (the accounts
    are not "live"), exactly as for a replay of history.
    """
    day = datetime.fromtimestamp(now_s, tz=UTC).date()
    while True:
        start = datetime.combine(day, clock_time(DEMO_HOUR_UTC), tzinfo=UTC)
        if start.weekday() < 5 and start.timestamp() < now_s - 3 * 3600:
            return int(start.timestamp() * 1000)
        day -= timedelta(days=1)


@contextmanager
def logs_to_file(path: Path) -> Iterator[Path]:
    """Every log record of this process goes to ``path`` while the board runs.

    The board owns the terminal: kafka-python (the simulator's producer), clickhouse-connect
    and our own modules log through the root logger, whose handler writes to the terminal's
    stderr and would print over the live board (rich's Live redirects ``sys.stderr`` writes,
    but a logging handler keeps the stream it was given). The root handlers are swapped for
    one file handler and put back afterwards.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    try:
        yield path
    finally:
        root.handlers = saved
        handler.close()


def run_demo(settings: Settings, *, duration: float | None, headless: bool, rate: float, seed: int,
             ingest: bool = False) -> int:
    if settings.clients is None:
        raise ConfigError("no clients file: pass --clients FILE or set RAPPORT_CLIENTS")
    clients = load_clients(settings.clients)
    with logs_to_file(Path(settings.data_dir) / "logs" / "demo.log"):
        return _run_demo(settings, clients, duration=duration, headless=headless, rate=rate, seed=seed,
                         ingest=ingest)


def _run_demo(settings: Settings, clients: ClientsFile, *, duration: float | None, headless: bool, rate: float,
              seed: int, ingest: bool) -> int:
    console = Console(stderr=headless)
    out = Console(soft_wrap=True)
    console.print(f"starting the embedded stack in {settings.data_dir} ...")
    started = time.monotonic()
    with Stack(settings, ingest=ingest) as stack:
        for note in stack.agent_notes:
            console.print(f"ingest  {note}")
        console.print(f"store {stack.store_url}  broker {stack.broker_url}  "
                      f"logs {stack.data_dir / 'logs'} (this process: demo.log)")
        stop = threading.Event()
        publisher = Publisher(settings, stack.broker_url)
        sim = Simulator(clients, seed=seed, start_ms=demo_start_ms(time.time()),
                        mean_gap_ms=max(1, int(1000 / rate)))
        feeder = threading.Thread(target=pump, args=(publisher, sim, rate), kwargs={"stop": stop},
                                  daemon=True, name="simulator")
        feeder.start()
        client = connect(stack.store_url, settings, role="reader")
        try:
            if headless:
                next_print = 0.0
                while duration is None or time.monotonic() - started < duration:
                    stack.check()
                    if time.monotonic() >= next_print:
                        ingest_lines = ingest_status_lines(read_ingest_status(stack.data_dir))
                        lines = summary_lines(read_board(client), clients) + ingest_lines
                        for line in lines:
                            out.print(f"t={time.monotonic() - started:.0f}s {line}", highlight=False)
                        next_print = time.monotonic() + 5
                    time.sleep(0.5)
            else:
                with Live(console=console, refresh_per_second=2, screen=False) as live:
                    while duration is None or time.monotonic() - started < duration:
                        stack.check()
                        board = render(read_board(client), clients, time.monotonic() - started)
                        statuses = read_ingest_status(stack.data_dir)
                        live.update(Group(board, ingest_status_table(statuses)) if statuses else board)
                        time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            feeder.join(timeout=5)
            publisher.close()
            out.print("summary:", highlight=False)
            for line in summary_lines(read_board(client), clients):
                out.print(f"  {line}", highlight=False)
            client.close()
    return 0
