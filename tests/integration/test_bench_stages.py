"""The bench's per-stage breakdown runs the real path, stage by stage, on the real store.

`rapport bench` reports µs per event of each stage (streams/bench_stages.py). A breakdown is
only worth reading if its stages do the work the workers do: so the detection tables it
leaves in its own database must equal the batch recomputation over what it stored, and the
pipeline's database must be untouched.
"""

from __future__ import annotations

import time

import pytest

from streams.bench_stages import stage_costs
from streams.chaos.check import diff, expected_rows, stored_rows
from streams.clients import load_clients
from streams.simulator.traffic import Simulator
from streams.store.client import connect
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration


def test_each_stage_is_timed_and_together_they_store_what_detection_would(namespace: Namespace) -> None:
    ns = namespace
    assert ns.settings.clients is not None
    clients = load_clients(ns.settings.clients)
    start = int(time.time() * 1000) - 86_400_000
    events = list(Simulator(clients, seed=5, start_ms=start, mean_gap_ms=20_000).events(3000))
    database = f"{ns.settings.store_database}_stages"
    with pytest.raises(ValueError, match="database of their own"):
        stage_costs(ns.settings, ns.store_url, events, database=ns.settings.store_database)

    costs = stage_costs(ns.settings, ns.store_url, events, database=database)

    assert set(costs) == {"decode", "normalize", "archive_insert", "interactions_insert", "detect",
                          "detection_writes"}
    assert all(us > 0 for us in costs.values()), costs
    staged = connect(ns.store_url, ns.settings, database=database)
    pipeline = connect(ns.store_url, ns.settings)
    try:
        archived = staged.query("SELECT count() FROM raw_events FINAL").result_rows[0][0]
        assert archived == len(events)
        stored = stored_rows(staged)
        assert sum(len(rows) for rows in stored.values()) > 0
        problems = diff(expected_rows(clients, staged), stored)
        assert not problems, problems
        assert pipeline.query("SELECT count() FROM raw_events").result_rows[0][0] == 0
    finally:
        staged.close()
        pipeline.close()
