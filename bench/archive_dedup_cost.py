"""What migrations 0009-0011 cost on a large archive, and what reading it FINAL costs.

Run: .venv/bin/python bench/archive_dedup_cost.py [ROWS]
Builds a chDB store (in-process, a temporary directory) with migrations 0001-0008, fills
``raw_events`` with ROWS synthetic payloads of 300 bytes (one in 1,000 a dead letter) over
two months, times the "DLQ growing" alert and a ``raw_events FINAL`` scan on the old
schema, applies 0009-0011 (timing each), and times the same reads on the new one. The
alert reads ``dead_letters``, which 0011 makes a ``FINAL`` view (one row per payload).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from chdb import session

from streams.grafana import sql
from streams.grafana.macros import TimeContext, expand
from streams.store.migrations import load_migrations

_NOW = datetime.now(UTC)
ALERT = expand(sql.ALERT_DLQ.sql, {}, TimeContext(_NOW - timedelta(minutes=10), _NOW, 600))  # as provisioned
BARE_VIEW = ("SELECT count() FROM dead_letters WHERE platform != '' "
             "AND archived_at >= now64(3) - INTERVAL 10 MINUTE")  # the view alone, no key prefilter
SCAN = "SELECT count() FROM raw_events FINAL WHERE outcome = 'ok'"


def best_ms(run: Callable[[], object], tries: int = 5) -> float:
    best = float("inf")
    for _ in range(tries):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return round(best * 1000, 1)


def main(rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        s = session.Session(tmp)

        def q(sql: str) -> object:
            return s.query(sql, "CSV")

        q("CREATE DATABASE b")
        q("USE b")
        migrations = load_migrations()
        for mig in migrations[:8]:
            for stmt in mig.statements():
                q(stmt)
        t = time.perf_counter()
        q(f"""INSERT INTO raw_events SELECT ['bluesky', 'mastodon', 'reddit', 'x'][number % 4 + 1],
              lower(hex(MD5(toString(number)))), repeat('x', 300), 'stream',
              now64(3) - toIntervalSecond(number % 5000000), now64(3) - toIntervalSecond(number % 5000000),
              't', 0, number, if(number % 1000 = 0, 'dead', 'ok'), '', 1, '' FROM numbers({rows})""")
        print(f"filled {rows:,} rows in {time.perf_counter() - t:.1f} s")
        print(f"0008: alert {best_ms(lambda: q(ALERT))} ms, FINAL scan {best_ms(lambda: q(SCAN))} ms")
        for mig in migrations[8:11]:
            t = time.perf_counter()
            for stmt in mig.statements():
                q(stmt)
            print(f"migration {mig.number:04d}_{mig.name}: {time.perf_counter() - t:.2f} s")
        print(f"0011: alert {best_ms(lambda: q(ALERT))} ms, FINAL scan {best_ms(lambda: q(SCAN))} ms, "
              f"the view alone {best_ms(lambda: q(BARE_VIEW))} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
