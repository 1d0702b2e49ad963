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
import tracemalloc
from pathlib import Path

from streams import bench
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
# breakdown: the same build as bench.bytes_per_thread, under a snapshot
inputs, calendars = bench.detection_inputs(settings, events)
gc.collect()
tracemalloc.start(1)
s0 = tracemalloc.take_snapshot()
states = bench.build_states(inputs, calendars)
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
