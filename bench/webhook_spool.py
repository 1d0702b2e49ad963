"""What the write-ahead spool adds to a webhook answer: p50/p99 with and without the fsync.

Run: .venv/bin/python bench/webhook_spool.py [--deliveries N] [--dir DIR]

A real Tansu broker (memory storage) and the real receiver (streams/ingest/webhooks.py)
on loopback; signed Facebook deliveries of ~600 bytes are POSTed one at a time and 32 at a
time. Two modes on the same code path: ``spool`` (append + fsync before the 200, what
ships) and ``no-fsync`` (append only: the answer as it would be without the durability
wait). The added latency is the difference. DIR must be on the disk the data dir lives
on (fsync on tmpfs costs nothing); default: a temporary dir under the current directory.
Prints one JSON line per (mode, concurrency), then a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from pydantic import SecretStr

from streams.contracts.topics import full_names
from streams.embedded.broker import Broker
from streams.ingest.agent import Outbox, Status
from streams.ingest.spool import Spool
from streams.ingest.webhooks import Receiver
from streams.kafka_admin import ensure_topics
from streams.settings import Settings

SECRET = "bench-secret"


class TimedSpool(Spool):
    """The shipped spool, timing each durability wait (append to fsynced) from inside the server."""

    waits: list[float]

    async def sync(self) -> None:
        t0 = time.perf_counter()
        await super().sync()
        self.waits.append((time.perf_counter() - t0) * 1000)


class NoFsyncSpool(TimedSpool):
    """The same appends, no durability wait: the baseline the spool's cost is measured against."""

    async def sync(self) -> None:
        self.waits.append(0.0)


def body(i: int) -> bytes:
    return orjson.dumps({"object": "page", "entry": [{"id": "700001", "time": 1_790_000_000 + i, "changes": [
        {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": f"700001_b{i}",
                                    "post_id": "700001_p1", "message": f"benchmark comment number {i} " * 8,
                                    "from": {"id": f"u{i % 50}", "name": "someone"},
                                    "created_time": 1_790_000_000 + i}}]}]})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(url: str, n: int, concurrency: int) -> list[float]:
    """The client side (run in a process of its own, so it does not share the server's loop)."""
    latencies: list[float] = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as http:
        async def one(i: int) -> None:
            b = body(i)
            sig = "sha256=" + hmac.new(SECRET.encode(), b, hashlib.sha256).hexdigest()
            t0 = time.perf_counter()
            answer = await http.post(url, content=b, headers={"X-Hub-Signature-256": sig})
            latencies.append((time.perf_counter() - t0) * 1000)
            assert answer.status_code == 200, answer.status_code

        for i in range(min(50, n)):  # warm-up: connections, the producer's metadata
            await one(-i - 1)
        latencies.clear()
        queue = iter(range(n))

        async def lane() -> None:
            for i in queue:
                await one(i)

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return latencies


async def measure(settings: Settings, broker_url: str, spool: TimedSpool, n: int, concurrency: int) -> list[float]:
    status = Status("webhooks")
    outbox = await Outbox.open(settings, broker_url, status)
    pump = asyncio.create_task(outbox.pump())
    receiver = Receiver(settings, outbox, status, spool)
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    address: Any = runner.addresses[0]
    url = f"http://127.0.0.1:{address[1]}{settings.webhook_path}"
    client = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", url, "--deliveries", str(n), "--concurrency", str(concurrency),
        stdout=asyncio.subprocess.PIPE)
    try:
        out, _ = await client.communicate()
        assert client.returncode == 0, f"the load client failed ({client.returncode})"
        latencies: list[float] = orjson.loads(out)
    finally:
        await runner.cleanup()
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        await outbox.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--client", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        sys.stdout.buffer.write(orjson.dumps(asyncio.run(load(args.client, args.deliveries, args.concurrency))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-spool-", dir=args.dir or Path.cwd()) as tmp, Broker() as broker:
        settings = Settings(data_dir=Path(tmp), topic_prefix="bench", meta_app_secret=SecretStr(SECRET),
                            broker_url=broker.url)
        ensure_topics(broker.url, full_names(settings), 1)
        results: dict[tuple[str, int], list[float]] = {}
        waits: dict[tuple[str, int], list[float]] = {}
        for concurrency in (1, 32):
            for mode, cls in (("no-fsync", NoFsyncSpool), ("spool", TimedSpool), ("no-fsync", NoFsyncSpool),
                              ("spool", TimedSpool)):  # interleaved, twice: noise hits both modes
                spool = cls(Path(tmp) / f"{mode}-{concurrency}-{time.monotonic_ns()}")
                spool.waits = []
                spool.open()
                try:
                    got = asyncio.run(measure(settings, broker.url, spool, args.deliveries // 2, concurrency))
                finally:
                    spool.close()
                results.setdefault((mode, concurrency), []).extend(got)
                waits.setdefault((mode, concurrency), []).extend(spool.waits[-len(got):])
        summary: dict[str, float] = {}
        for (mode, concurrency), values in sorted(results.items()):
            line = {"mode": mode, "concurrency": concurrency, "deliveries": len(values),
                    "p50_ms": round(statistics.median(values), 2), "p99_ms": round(pct(values, 0.99), 2),
                    "max_ms": round(max(values), 2),
                    "fsync_wait_p50_ms": round(statistics.median(waits[(mode, concurrency)]), 2),
                    "fsync_wait_p99_ms": round(pct(waits[(mode, concurrency)], 0.99), 2)}
            print(json.dumps(line))
            summary[f"{mode}_c{concurrency}_p99_ms"] = line["p99_ms"]
            if mode == "spool":
                summary[f"fsync_wait_c{concurrency}_p99_ms"] = line["fsync_wait_p99_ms"]
        for c in (1, 32):
            summary[f"added_p99_ms_c{c}"] = round(summary[f"spool_c{c}_p99_ms"] - summary[f"no-fsync_c{c}_p99_ms"], 2)
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
