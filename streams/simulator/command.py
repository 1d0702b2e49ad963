"""The `rapport simulate` command: paced simulated traffic into the raw topics."""

from __future__ import annotations

import threading
import time

import orjson
from rich.console import Console

from streams.clients import ClientsFile
from streams.ingest.publisher import Publisher
from streams.settings import Settings
from streams.simulator.traffic import Simulator
from streams.store.client import broker_url


def pump(publisher: Publisher, sim: Simulator, rate: float, count: int | None = None,
         duration: float | None = None, stop: threading.Event | None = None) -> int:
    """Publish simulated events at ``rate`` per second; returns how many were published."""
    started = time.monotonic()
    sent = 0
    for event in sim.events(count):
        if stop is not None and stop.is_set():
            break
        if duration is not None and time.monotonic() - started >= duration:
            break
        publisher.add(event.platform, orjson.dumps(event.payload), event.source,
                      via_account=event.via_account or "")
        sent += 1
        ahead = sent / rate - (time.monotonic() - started)
        if ahead > 0:
            publisher.flush_arrays()
            time.sleep(ahead)
        publisher.tick()
    publisher.flush()
    return sent


def run_simulate(settings: Settings, clients: ClientsFile, *, seed: int, rate: float, count: int | None,
                 duration: float | None, console: Console) -> None:
    publisher = Publisher(settings, broker_url(settings))
    sim = Simulator(clients, seed=seed, mean_gap_ms=max(1, int(1000 / rate)))
    console.print(f"simulating {rate:g} events/s for {len(clients.clients)} client(s); Ctrl-C stops")
    try:
        sent = pump(publisher, sim, rate, count, duration)
    except KeyboardInterrupt:
        sent = publisher.payloads
    finally:
        publisher.close()
    console.print(f"published {sent} simulated payloads")
