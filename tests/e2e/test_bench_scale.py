"""`rapport bench --scale`, small: its JSON line has every figure, and every board query ran.

No timed assertion (speed is measured by the bench itself, bench/README.md): the test checks
the shape of the result, that the backfill stored what was published, and that every
variable, panel and alert query of streams/grafana/sql.py was timed for both ranges, none
refused by the store as the read-only user Grafana logs in as.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.bench_scale import RANGES
from streams.grafana import sql
from tests.support.stack import REPO

pytestmark = pytest.mark.e2e
KEYS = {"events", "backfill_s", "backfill_events_per_s", "worker_rss_max_mb", "panels_p95_ms", "report_s",
        "board_refresh_ms", "slowest", "timed", "errors", "stored", "queries"}


@pytest.mark.timeout(600)
def test_bench_scale_times_every_board_query(tmp_path: Path) -> None:
    # No clients file given: the bench simulates the example clients, as --soak does.
    env = {k: v for k, v in os.environ.items() if k != "RAPPORT_CLIENTS"}
    proc = subprocess.run([sys.executable, "-m", "streams.cli", "bench", "--scale", "--events", "1500", "--runs",
                           "2", "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=540, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert KEYS <= set(result), sorted(KEYS - set(result))
    assert result["events"] == 1500 and result["stored"]["interactions"] > 1000
    assert result["backfill_s"] > 0 and result["worker_rss_max_mb"] > 0 and result["report_s"] > 0
    names = {f"{kind}:{q.key}@{r}" for r in RANGES for kind, queries in (("panel", sql.PANEL_QUERIES),
                                                                          ("alert", sql.ALERT_QUERIES))
             for q in queries}
    names |= {f"var:{v}@{r}" for r in RANGES for v in sql.VARIABLES}
    assert result["errors"] == {}
    assert set(result["timed"]) == names and result["queries"] == len(names)
    assert all(len(v) == 2 and 0 < v[0] <= v[1] for v in result["timed"].values())
    assert len(result["slowest"]) == 5 and result["panels_p95_ms"] == max(
        v[1] for k, v in result["timed"].items() if not k.startswith("var:"))
