"""Micro-benchmark of the pure normalize step (no broker, no store).

Run: .venv/bin/python bench/normalize_speed.py [EVENTS]
Prints payloads/s of normalize_records over simulated traffic for clients.example.toml.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

from streams.clients import load_clients
from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_SOURCE, HEADER_VIA_ACCOUNT
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records
from streams.simulator.traffic import Simulator

ROOT = Path(__file__).resolve().parent.parent


def main(n: int) -> None:
    clients = load_clients(ROOT / "clients.example.toml")
    events = list(Simulator(clients, seed=7, start_ms=1_790_000_000_000).events(n))
    groups: dict[tuple[str, str, str], list[bytes]] = {}
    for e in events:
        groups.setdefault((e.platform, e.source, e.via_account or ""), []).append(orjson.dumps(e.payload))
    records = []
    for (platform, source, via), bodies in groups.items():
        for i in range(0, len(bodies), 200):
            value = b"[" + b",".join(bodies[i:i + 200]) + b"]"
            headers = {HEADER_SOURCE: source, HEADER_RECEIVED_AT: "1790000000000", HEADER_VIA_ACCOUNT: via}
            records.append(RawRecord("t", 0, i, platform, value, headers, 1))
    index = AccountIndex.build(clients)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        batch = normalize_records(records, index, 1_790_000_000_000)
        best = max(best, n / (time.perf_counter() - t0))
    print(f"normalize_records: {best:,.0f} payloads/s over {n:,} simulated payloads "
          f"({batch.events_out:,} interactions and changes)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40_000)
