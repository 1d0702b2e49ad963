"""`rapport bench --soak`: does a worker's memory stay flat over months of event time?

On one fresh temporary stack (the real embedded pipeline: broker, store, one worker running
every agent, not split, so the curve stays comparable with earlier runs), the
simulator's traffic for ``--events`` events spread over ``--days`` days of event time,
ending now, is published in rounds; after each round the pipeline is drained (everything
normalized, archived, stored and detected) and the worker's resident set size is read from
``/proc/<pid>/status`` (``VmRSS``, and ``VmHWM`` for the peak). A sampler thread also reads it
every second, so a peak inside a round is seen too.

State is bounded by the state horizon (docs/configuration.md "Bounded memory"): threads
idle past it are evicted, then persons no thread names, then the evicted ids themselves.
So once the traffic has run for more than a horizon (plus the eviction period), RSS stops
growing. The figure is the RSS after warm-up (the first quarter of the events) against the
RSS at the end. No pass/fail: it is a measurement (bench/README.md keeps the figures).
The last line printed is one JSON object with the curve and its summary.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from streams.clients import PLATFORMS, load_clients
from streams.contracts.topics import INTERACTIONS, raw_topic
from streams.drain import wait_drained
from streams.embedded.supervisor import Stack
from streams.ingest.publisher import Publisher
from streams.resources import example_clients
from streams.settings import Settings
from streams.simulator.traffic import Simulator

DAY_MS = 86_400_000
MB = 1024 * 1024


def rss_of(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of a process in bytes; ``(0, 0)`` when it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


class Sampler(threading.Thread):
    """Reads a process's RSS every ``period_s`` and keeps the largest seen."""

    def __init__(self, pid: int, period_s: float = 1.0) -> None:
        super().__init__(name="rapport-soak-rss", daemon=True)
        self.pid = pid
        self.period_s = period_s
        self.peak = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.period_s):
            rss, _ = rss_of(self.pid)
            self.peak = max(self.peak, rss)
            self.samples += 1


def summarize(curve: list[tuple[int, float, int]], warmup_fraction: float = 0.25) -> dict[str, float]:
    """RSS after warm-up against the end: ``curve`` holds (events done, event day, RSS bytes)."""
    total = curve[-1][0]
    after = [rss for done, _, rss in curve if done >= warmup_fraction * total]
    warm = after[0]
    return {
        "rss_warm_mb": round(warm / MB, 1),
        "rss_end_mb": round(curve[-1][2] / MB, 1),
        "rss_max_after_warmup_mb": round(max(after) / MB, 1),
        "rss_min_after_warmup_mb": round(min(after) / MB, 1),
        "growth_after_warmup_pct": round(100.0 * (curve[-1][2] - warm) / warm, 1) if warm else 0.0,
    }


def run_soak(settings: Settings, events: int, days: float, rounds: int, console: Console,
             people_per_account: int = 2000, seed: int = 11) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rapport-soak-") as tmp:
        clients_path = Path(settings.clients or example_clients())
        soak_settings = settings.model_copy(update={
            "data_dir": Path(tmp), "clients": clients_path, "broker_url": None, "store_url": None})
        clients = load_clients(clients_path)
        span_ms = int(days * DAY_MS)
        start_ms = int(time.time() * 1000) - span_ms
        sim = Simulator(clients, seed=seed, start_ms=start_ms, mean_gap_ms=max(1, span_ms // max(1, events)),
                        people_per_account=people_per_account)
        stream = sim.events(events)
        per_round = max(1, -(-events // rounds))
        curve: list[tuple[int, float, int]] = []
        with Stack(soak_settings, workers=0, split=False) as stack:  # one process: one RSS curve
            stack.add_worker()
            pid = stack.workers[0].pid
            sampler = Sampler(pid)
            sampler.start()
            stages = [[soak_settings.topic(raw_topic(p)) for p in PLATFORMS], [soak_settings.topic(INTERACTIONS)]]
            pub = Publisher(soak_settings, stack.broker_url)
            done = 0
            last_ms = start_ms
            began = time.monotonic()
            try:
                while done < events:
                    n = 0
                    for ev in stream:
                        pub.add(ev.platform, orjson.dumps(ev.payload), ev.source, via_account=ev.via_account or "")
                        last_ms = ev.event_ms
                        n += 1
                        if n >= per_round:
                            break
                    if n == 0:
                        break
                    pub.flush()
                    done += n
                    wait_drained(stack.broker_url, soak_settings.app_id, stages, timeout_s=3600, alive=stack.alive)
                    if pid != stack.workers[0].pid:
                        raise RuntimeError("the worker was restarted during the soak: its RSS curve is broken")
                    rss, _ = rss_of(pid)
                    day = (last_ms - start_ms) / DAY_MS
                    curve.append((done, round(day, 1), rss))
                    console.print(f"{done:>10,} events  day {day:6.1f}  worker RSS {rss / MB:7.1f} MB  "
                                  f"({time.monotonic() - began:,.0f} s)")
            finally:
                pub.close()
                sampler.done.set()
                sampler.join(5)
            _, hwm = rss_of(pid)
            wall_s = time.monotonic() - began
    result: dict[str, Any] = {
        "soak_events": done,
        "event_days": days,
        "wall_s": round(wall_s, 1),
        "events_per_s": round(done / wall_s, 1) if wall_s else 0.0,
        **summarize(curve),
        "rss_peak_mb": round(max(hwm, sampler.peak) / MB, 1),
        "curve": [[d, day, round(rss / MB, 1)] for d, day, rss in curve],
    }
    print(orjson.dumps(result).decode(), flush=True)
    return result
