"""The arena cap is applied on glibc, left alone at 0 or when MALLOC_ARENA_MAX is set."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streams.malloc_arenas import limit_malloc_arenas

# A child process: mallopt changes the process it runs in. It prints the outcome, then
# starts threads that all allocate at once and counts the heaps they got in /proc/self/maps
# (an arena of its own is one more anonymous 64 MB-aligned heap region).
PROBE = """
import os, sys, threading
from streams.malloc_arenas import limit_malloc_arenas
applied = limit_malloc_arenas(int(sys.argv[1]))
start = threading.Barrier(16)
def churn():
    start.wait()
    for _ in range(2000):
        bytearray(4096)
threads = [threading.Thread(target=churn) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
def size(line):
    low, high = line.split()[0].split("-")
    return int(high, 16) - int(low, 16)
with open("/proc/self/maps") as f:
    heaps = sum(1 for line in f if " 00000000 00:00 0" in line and size(line) >= 60 * 2**20)
print(applied, heaps)
"""


def test_zero_or_an_explicit_environment_variable_leaves_glibc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    assert limit_malloc_arenas(0) is False
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_cap_holds_the_arenas_of_busy_threads() -> None:
    def run(arena_max: int) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", PROBE, str(arena_max)], capture_output=True, text=True,
                             check=True, env={"PATH": "/usr/bin:/bin"})
        applied, heaps = out.stdout.split()
        return applied, int(heaps)

    capped, default = run(1), run(0)
    assert capped[0] == "True" and default[0] == "False"
    assert capped[1] == 0 and default[1] > 2, (capped, default)  # the main heap alone, against one per thread
