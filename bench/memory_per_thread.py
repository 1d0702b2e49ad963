"""`rapport bench`'s ``bytes_per_thread`` without the broker, and where the bytes are.

Builds the simulated events as ``run_bench`` does (``--events`` of them, seed 7, the first
100 k measured), prints :func:`streams.bench.bytes_per_thread` and, with ``--detail``, the
same build under a tracemalloc snapshot grouped by source line (bytes per thread, blocks).
Usage: ``PYTHONPATH=$PWD .venv/bin/python bench/memory_per_thread.py 200000 --detail``.
The simulation starts a day before now, so the figure moves by a few percent between runs.
"""
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import orjson

from streams import bench
from streams.clients import load_clients
from streams.contracts.headers import HEADER_RECEIVED_AT, HEADER_SOURCE, HEADER_VIA_ACCOUNT
from streams.detect.account_state import AccountState
from streams.detect.business_time import BusinessCalendar
from streams.detect_io.engine import Batch
from streams.normalize.base import AccountIndex
from streams.normalize.records import RawRecord, normalize_records
from streams.settings import Settings

tmp = Path(tempfile.mkdtemp(prefix="memory-m-"))
settings = Settings()
settings = settings.model_copy(update={"data_dir": tmp, "clients": bench._bench_clients(settings, tmp),
                                       "broker_url": None, "store_url": None})
n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
events = bench._events(settings, n, seed=7)[:100_000]
print("bytes_per_thread", round(bench.bytes_per_thread(settings, events), 1))
if "--detail" not in sys.argv:
    sys.exit()
# breakdown: same steps as bench.bytes_per_thread
clients = load_clients(settings.clients)
index = AccountIndex.build(clients)
records = [RawRecord("bench", 0, i, e.platform, orjson.dumps(e.payload),
                     {HEADER_SOURCE: e.source, HEADER_RECEIVED_AT: str(e.event_ms),
                      HEADER_VIA_ACCOUNT: e.via_account or ""}, e.event_ms) for i, e in enumerate(events)]
batch = Batch.of(normalize_records(records, index, 0).envelopes.values())
tracked = {f"{c.id}:{a.account_id}": c for c, a in clients.accounts()}
inputs = [(tracked[k], k.split(":", 1)[1], msgs, changes)
          for k, (msgs, changes) in batch.by_key.items() if k in tracked]
calendars = {c.id: BusinessCalendar.from_client(c) for c in clients.clients}
for c in clients.clients:
    calendars[c.id].add_business(int(time.time() * 1000), c.sla_minutes)
del records, batch
gc.collect()
tracemalloc.start(1)
s0 = tracemalloc.take_snapshot()
states = []
for client, account_id, msgs, changes in inputs:
    st = AccountState(client, account_id, calendars[client.id])
    st.apply(msgs, changes)
    st.sweep(max((m.created_at for m in msgs), default=0))
    states.append(st)
gc.collect()
s1 = tracemalloc.take_snapshot()
tracemalloc.stop()
threads = sum(len(s.book) for s in states)
posts = sum(len(t.posts) for s in states for t in s.book.threads())
inb = sum(len(s.responses) for s in states)
print("threads", threads, "posts", posts, "inbound", inb, "persons", sum(s.persons_in_memory() for s in states))
stats = s1.compare_to(s0, "lineno")
total = sum(s.size_diff for s in stats)
print("total", total, "per thread", round(total / threads, 1))
for s in stats[:25]:
    if s.size_diff <= 0:
        continue
    fr = s.traceback[0]
    where = fr.filename.rsplit("/streams/", 1)[-1]
    print(f"{s.size_diff / threads:8.1f} B/thread {s.count_diff:8d} blocks  {where}:{fr.lineno}")
