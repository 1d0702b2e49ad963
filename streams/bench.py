"""`rapport bench`: throughput and latency of the embedded pipeline, measured in one run.

On one fresh temporary stack:
(a) ``raw_consume_per_s``: the physical limit, a plain aiokafka consumer reading the very
    same raw records and decoding them with orjson;
(b) ``pipeline_per_s``: events through normalizer + sink into the store (publish start to
    everything stored, as `--drain` sees it);
(c) ``latency_p50_ms``/``latency_p99_ms``: ingest -> queryable at a steady live rate.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console

from streams.clients import PLATFORMS, load_clients
from streams.drain import wait_drained
from streams.embedded.supervisor import Stack
from streams.ingest.publisher import Publisher
from streams.ingest.simulate import Simulator
from streams.kafka_admin import bootstrap_of
from streams.settings import Settings
from streams.store.client import connect
from streams.topics import INTERACTIONS, raw_topic

DEFAULT_CLIENTS = Path(__file__).resolve().parent.parent / "clients.example.toml"


Payload = tuple[str, bytes, str, str]  # platform, body, source, via account


def _payloads(settings: Settings, n: int, seed: int) -> list[Payload]:
    clients = load_clients(settings.clients or DEFAULT_CLIENTS)
    sim = Simulator(clients, seed=seed, start_ms=int(time.time() * 1000) - 86_400_000)
    return [(e.platform, orjson.dumps(e.payload), e.source, e.via_account or "") for e in sim.events(n)]


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


def run_bench(settings: Settings, events: int, console: Console) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        bench_settings = settings.model_copy(update={
            "data_dir": Path(tmp), "clients": settings.clients or DEFAULT_CLIENTS,
            "broker_url": None, "store_url": None})
        console.print(f"generating {events:,} simulated payloads ...")
        payloads = _payloads(bench_settings, events, seed=7)
        live_payloads = _payloads(bench_settings, 30_000, seed=8)
        with Stack(bench_settings, workers=0) as stack:
            raw_topics = [bench_settings.topic(raw_topic(p)) for p in PLATFORMS]
            stages = [raw_topics, [bench_settings.topic(INTERACTIONS)]]
            console.print(f"publishing {events:,} events before any worker runs ...")
            pub = Publisher(bench_settings, stack.broker_url)
            for platform, body, src, via in payloads:
                pub.add(platform, body, src, via_account=via)
            pub.close()
            console.print("(a) raw consume: plain aiokafka + orjson over the raw records ...")
            raw_events, raw_s = asyncio.run(_raw_consume(stack.broker_url, raw_topics, pub.records))
            console.print("(b) pipeline: a worker normalizes, archives and stores them ...")
            stack.add_worker()
            wait_drained(stack.broker_url, bench_settings.app_id, stages, timeout_s=3600, alive=stack.alive)
            done_ms = time.time() * 1000
            client = connect(stack.store_url, bench_settings)
            first_ms = client.query("SELECT toUnixTimestamp64Milli(min(archived_at)) FROM raw_events").result_rows[0][0]
            client.close()
            pipeline_s = max(0.001, (done_ms - int(first_ms)) / 1000)
            console.print("(c) latency at a steady live rate of 1,000 events/s for 15 s ...")
            lat = _latency(bench_settings, stack, live_payloads, rate=1000.0, seconds=15.0)
    lat.sort()
    result = {
        "events": events,
        "raw_consume_per_s": round(raw_events / raw_s, 1) if raw_s else 0.0,
        "pipeline_per_s": round(events / pipeline_s, 1),
        "latency_p50_ms": round(statistics.median(lat), 1) if lat else -1.0,
        "latency_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else -1.0,
    }
    raw = result["raw_consume_per_s"]
    result["ratio"] = round(result["pipeline_per_s"] / raw, 3) if raw else 0.0
    print(orjson.dumps(result).decode(), flush=True)
    return result
