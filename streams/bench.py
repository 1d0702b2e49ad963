"""`rapport bench`: throughput and latency of the embedded pipeline, measured in one run.

On one fresh temporary stack:
(a) ``raw_consume_per_s``: the physical limit, a plain aiokafka consumer reading the very
    same raw records and decoding them with orjson;
(b) ``pipeline_per_s``: events through the full path (normalize -> archive -> interactions
    -> threads, conversations, responses and SLA sweep -> detection tables, rollups and
    output topics), timed from the first archived payload to everything committed, as
    `--drain` sees it (offsets are committed only after detection wrote its results);
(c) ``latency_p50_ms``/``latency_p99_ms``: ingest -> queryable at a steady live rate;
(d) ``alert_lag_p50_ms``/``alert_lag_p99_ms``: live, how long after its deadline a breach
    alert is visible in the store. A client with a one-minute SLA and no closed hours is
    added to the clients file; mentions of its account backdated by 47-57 s fall due 3-13 s
    into the phase, with no event after them: the deadline timer alone opens the alerts
    (store polled every 20 ms);
(e) ``bytes_per_thread``: memory an :class:`AccountState` keeps per thread, measured with
    tracemalloc over the states built from the simulated traffic of (b);
(f) ``stages_us_per_event``: each step of the path alone, µs per event
    (:mod:`streams.bench_stages`).
Raw consume is measured three times (before the pipeline phase, after it, and at the end)
over every raw record; ``ratio`` is the pipeline figure over their median, ``ratio_first``
over the first run alone (``raw_consume_per_s``, the single figure of earlier runs).
The pipeline runs as ``rapport up`` runs it: a normalize and a detect worker (both cores), or
with ``RAPPORT_WORKER_SPLIT=false`` one worker of every agent (``worker_split`` in the JSON).
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from streams.bench_stages import stage_costs
from streams.clients import PLATFORMS, Client, load_clients
from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_SOURCE, HEADER_VIA_ACCOUNT
from streams.contracts.topics import INTERACTIONS, raw_topic
from streams.detect.account_state import AccountState
from streams.detect.business_time import BusinessCalendar
from streams.detect_io.engine import Batch
from streams.drain import wait_drained
from streams.embedded.supervisor import Stack
from streams.ingest.publisher import Publisher
from streams.interaction import Change, Interaction
from streams.kafka_admin import bootstrap_of
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records
from streams.resources import example_clients
from streams.settings import Settings
from streams.simulator.traffic import SimEvent, Simulator
from streams.store.client import connect

DEFAULT_CLIENTS = example_clients()
STAGE_EVENTS = 50_000  # events the per-stage breakdown times (each stage alone)


Payload = tuple[str, bytes, str, str]  # platform, body, source, via account


SLA_CLIENT = "bench_sla"
SLA_ACCOUNT = "990000001"  # an X account id


def _bench_clients(settings: Settings, tmp: Path) -> Path:
    """The clients file plus a client with a one-minute SLA and no closed hours."""
    text = Path(settings.clients or DEFAULT_CLIENTS).read_text(encoding="utf-8")
    text += (f'\n[[clients]]\nid = "{SLA_CLIENT}"\nsla_minutes = 1\n'
             f'[[clients.accounts]]\nplatform = "x"\naccount_id = "{SLA_ACCOUNT}"\nhandle = "benchsla"\n')
    path = tmp / "clients.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _events(settings: Settings, n: int, seed: int) -> list[SimEvent]:
    """``n`` simulated events spread over the last day (history, ending now)."""
    clients = load_clients(settings.clients or DEFAULT_CLIENTS)
    gap = max(1, 86_400_000 // max(1, n))
    sim = Simulator(clients, seed=seed, start_ms=int(time.time() * 1000) - 86_400_000, mean_gap_ms=gap)
    return list(sim.events(n))


def _payloads(events: list[SimEvent]) -> list[Payload]:
    return [(e.platform, orjson.dumps(e.payload), e.source, e.via_account or "") for e in events]


async def _raw_consume(url: str, topics: list[str], expected_records: int) -> tuple[int, float]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap_of(url), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    events = records = 0
    started = time.perf_counter()
    try:
        while records < expected_records:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            if not batch and time.perf_counter() - started > 60:
                break
            for msgs in batch.values():
                for msg in msgs:
                    decoded = orjson.loads(msg.value)
                    events += len(decoded) if isinstance(decoded, list) else 1
                    records += 1
        return events, time.perf_counter() - started
    finally:
        await consumer.stop()


def _latency(settings: Settings, stack: Stack, payloads: list[Payload], rate: float,
             seconds: float) -> list[float]:
    """Publish at ``rate``/s and poll the store: ms from publish to first visible."""
    client = connect(stack.store_url, settings)
    pub = Publisher(settings, stack.broker_url)
    since_ms = int(time.time() * 1000)
    latencies: list[float] = []
    seen: set[str] = set()
    started = time.monotonic()
    i = 0
    next_poll = 0.0
    try:
        while time.monotonic() - started < seconds + 5:
            now = time.monotonic()
            if now - started < seconds:
                due = int((now - started) * rate)
                while i < min(due, len(payloads)):
                    platform, body, source, via = payloads[i]
                    pub.add(platform, body, source, via_account=via)
                    i += 1
                pub.tick()
            elif i:
                pub.flush()
            if now >= next_poll:
                next_poll = now + 0.05
                rows = client.query(
                    "SELECT raw_key, toUnixTimestamp64Milli(min(ingested_at)) FROM interactions "
                    "WHERE ingested_at >= fromUnixTimestamp64Milli({t:Int64}) GROUP BY raw_key",
                    parameters={"t": since_ms}).result_rows
                t = time.time() * 1000
                for key, ingested in rows:
                    if key not in seen:
                        seen.add(key)
                        latencies.append(t - int(ingested))
            time.sleep(0.01)
    finally:
        pub.close()
        client.close()
    return latencies


def _x_mention(post_id: int, author: str, at_ms: int) -> bytes:
    iso = datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return orjson.dumps({"data": {
        "id": str(post_id), "text": "@benchsla are you there?", "author_id": author, "created_at": iso,
        "conversation_id": str(post_id),
        "entities": {"mentions": [{"start": 0, "end": 9, "username": "benchsla", "id": SLA_ACCOUNT}]}},
        "includes": {"users": [{"id": author, "username": f"u{author}"}]}})


def _alert_lag(settings: Settings, stack: Stack, n: int = 200) -> list[float]:
    """Publish ``n`` mentions falling due 3-13 s from now; ms from each deadline to its alert."""
    client = connect(stack.store_url, settings)
    pub = Publisher(settings, stack.broker_url)
    now = int(time.time() * 1000)
    base = 1_990_000_000_000_000_000 + now  # ids unique per run
    due: dict[str, int] = {}
    for i in range(n):
        at = now - 57_000 + i * 10_000 // n
        due[str(base + i)] = at + 60_000
        pub.add("x", _x_mention(base + i, str(880_000 + i), at), "stream")
    pub.close()
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 40
    try:
        while len(seen) < n and time.monotonic() < deadline:
            rows = client.query("SELECT event_id FROM alerts WHERE client_id = {c:String} AND event_id >= {lo:String}",
                                parameters={"c": SLA_CLIENT, "lo": str(base)}).result_rows
            t = time.time() * 1000
            for (event_id,) in rows:
                if event_id in due:
                    seen.setdefault(event_id, t)
            time.sleep(0.02)
    finally:
        client.close()
    return [seen[e] - due[e] for e in seen if e in due]


AccountInput = tuple[Client, str, list[Interaction], list[Change]]  # client, account id, its batch


def detection_inputs(settings: Settings, events: list[SimEvent]) -> tuple[list[AccountInput],
                                                                         dict[str, BusinessCalendar]]:
    """``events`` normalized as the workers would, per tracked account, and warmed calendars
    (their day caches filled outside any measurement)."""
    clients = load_clients(settings.clients or DEFAULT_CLIENTS)
    index = AccountIndex.build(clients)
    records = [RawRecord("bench", 0, i, e.platform, orjson.dumps(e.payload),
                         {HEADER_SOURCE: e.source, HEADER_RECEIVED_AT: str(e.event_ms),
                          HEADER_VIA_ACCOUNT: e.via_account or ""},
                         e.event_ms) for i, e in enumerate(events)]
    batch = Batch.of(normalize_records(records, index, 0).envelopes.values())
    tracked = {f"{c.id}:{a.account_id}": c for c, a in clients.accounts()}
    inputs = [(tracked[k], k.split(":", 1)[1], msgs, changes) for k, (msgs, changes) in batch.by_key.items()
              if k in tracked]
    calendars = {c.id: BusinessCalendar.from_client(c) for c in clients.clients}
    for c in clients.clients:
        calendars[c.id].add_business(int(time.time() * 1000), c.sla_minutes)
    return inputs, calendars


def build_states(inputs: list[AccountInput], calendars: dict[str, BusinessCalendar]) -> list[AccountState]:
    """One applied and swept :class:`AccountState` per account input."""
    states = []
    for client, account_id, msgs, changes in inputs:
        state = AccountState(client, account_id, calendars[client.id])
        state.apply(msgs, changes)
        state.sweep(max((m.created_at for m in msgs), default=0))
        states.append(state)
    return states


def bytes_per_thread(settings: Settings, events: list[SimEvent]) -> float:
    """Bytes of Python memory per thread held by the AccountStates of ``events``."""
    inputs, calendars = detection_inputs(settings, events)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    states = build_states(inputs, calendars)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    threads = sum(len(s.book) for s in states)
    return used / threads if threads else 0.0


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return -1.0
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * q))], 1)


def run_bench(settings: Settings, events: int, console: Console) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        bench_settings = settings.model_copy(update={
            "data_dir": Path(tmp), "clients": _bench_clients(settings, Path(tmp)),
            "broker_url": None, "store_url": None})
        console.print(f"generating {events:,} simulated payloads ...")
        sim_events = _events(bench_settings, events, seed=7)
        payloads = _payloads(sim_events)
        live_payloads = _payloads(_events(bench_settings, 30_000, seed=8))
        with Stack(bench_settings, workers=0) as stack:
            raw_topics = [bench_settings.topic(raw_topic(p)) for p in PLATFORMS]
            stages = [raw_topics, [bench_settings.topic(INTERACTIONS)]]
            console.print(f"publishing {events:,} events before any worker runs ...")
            pub = Publisher(bench_settings, stack.broker_url)
            for platform, body, src, via in payloads:
                pub.add(platform, body, src, via_account=via)
            pub.close()
            console.print("(a) raw consume: plain aiokafka + orjson over the raw records (1 of 3) ...")
            raw_runs = [asyncio.run(_raw_consume(stack.broker_url, raw_topics, pub.records))]
            mode = "a normalize and a detect worker" if stack.split else "one worker of every agent"
            console.print(f"(b) pipeline: {mode} normalize, archive, store and detect over them ...")
            stack.add_worker()
            wait_drained(stack.broker_url, bench_settings.app_id, stages, timeout_s=3600, alive=stack.alive)
            done_ms = time.time() * 1000
            client = connect(stack.store_url, bench_settings)
            first_ms = client.query("SELECT toUnixTimestamp64Milli(min(archived_at)) FROM raw_events").result_rows[0][0]
            client.close()
            pipeline_s = max(0.001, (done_ms - int(first_ms)) / 1000)
            console.print("(a) raw consume again, after the pipeline phase (2 of 3) ...")
            raw_runs.append(asyncio.run(_raw_consume(stack.broker_url, raw_topics, pub.records)))
            console.print("(c) latency at a steady live rate of 1,000 events/s for 15 s ...")
            lat = _latency(bench_settings, stack, live_payloads, rate=1000.0, seconds=15.0)
            console.print("(d) alert lag: 200 mentions fall due 3-13 s from now, no event after them ...")
            lags = _alert_lag(bench_settings, stack)
            console.print("(a) raw consume a last time (3 of 3) ...")
            raw_runs.append(asyncio.run(_raw_consume(stack.broker_url, raw_topics, pub.records)))
            stage_events = sim_events[:STAGE_EVENTS]
            console.print(f"(f) stages: each step alone over {len(stage_events):,} of the events ...")
            stages_us = stage_costs(bench_settings, stack.store_url, stage_events)
        console.print("(e) memory: tracemalloc over the account states of the simulated traffic ...")
        per_thread = bytes_per_thread(bench_settings, sim_events[:100_000])
    lat.sort()
    raw_rates = [round(n / s, 1) if s else 0.0 for n, s in raw_runs]
    result: dict[str, Any] = {
        "events": events,
        "raw_consume_per_s": raw_rates[0],  # the first run alone, as before: runs stay comparable
        "raw_consume_runs_per_s": raw_rates,
        "raw_consume_median_per_s": statistics.median(raw_rates),
        "pipeline_per_s": round(events / pipeline_s, 1),
        "latency_p50_ms": round(statistics.median(lat), 1) if lat else -1.0,
        "latency_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else -1.0,
        "alert_lag_p50_ms": _quantile(lags, 0.5),
        "alert_lag_p99_ms": _quantile(lags, 0.99),
        "alerts_measured": len(lags),
        "bytes_per_thread": round(per_thread, 1),
        "stages_us_per_event": stages_us,
        "worker_split": float(bench_settings.worker_split),  # 1: normalize and detect in two processes
    }
    raw = result["raw_consume_median_per_s"]
    result["ratio"] = round(result["pipeline_per_s"] / raw, 3) if raw else 0.0  # against the median
    first = result["raw_consume_per_s"]
    result["ratio_first"] = round(result["pipeline_per_s"] / first, 3) if first else 0.0
    print(orjson.dumps(result).decode(), flush=True)
    return result
