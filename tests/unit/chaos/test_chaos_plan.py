"""The chaos harness's pure parts: the fault plan, hostile lines, their mixing, the truth."""

from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams.chaos.plan import FAULT_KINDS, STORE_STOP_S, hostile_payloads, mix_in, plan_faults
from streams.chaos.truth import expected
from streams.clients import load_clients
from streams.normalize.base import AccountIndex
from streams.simulator.traffic import Simulator
from tests.support.stack import REPO


@given(count=st.integers(0, 40), seed=st.integers(0, 2**32), span=st.floats(1.0, 1e5))
def test_plan_is_seeded_sorted_inside_the_span_and_covers_every_kind(count: int, seed: int, span: float) -> None:
    plan = plan_faults(count, seed, span)
    assert plan == plan_faults(count, seed, span)
    assert len(plan) == count
    assert [f.at_s for f in plan] == sorted(f.at_s for f in plan)
    assert all(0.04 * span <= f.at_s <= 0.96 * span for f in plan)
    assert all(STORE_STOP_S[0] <= f.pause_s <= STORE_STOP_S[1] for f in plan)
    kinds = Counter(f.kind for f in plan)
    assert set(kinds) <= set(FAULT_KINDS)
    if count >= len(FAULT_KINDS):
        assert set(kinds) == set(FAULT_KINDS)
    else:
        assert max(kinds.values(), default=0) <= 1


def test_different_seeds_differ() -> None:
    assert plan_faults(6, 1, 100.0) != plan_faults(6, 2, 100.0)


@given(n=st.integers(0, 50), seed=st.integers(0, 2**16))
def test_mix_in_keeps_both_orders(n: int, seed: int) -> None:
    lines = [f"good{i}".encode() for i in range(n)]
    bad = [b"bad0", b"bad1", b"bad2"]
    out = mix_in(lines, bad, seed)
    assert [x for x in out if x.startswith(b"good")] == lines
    assert [x for x in out if x.startswith(b"bad")] == bad


def test_every_hostile_line_is_one_dead_letter_and_no_interaction() -> None:
    index = AccountIndex.build(load_clients(REPO / "clients.example.toml"))
    lines = [line for name, line in hostile_payloads() if name != "nul_text"]  # nul_text: refused at the edge
    for platform in ("reddit", "bluesky", "x"):
        keys, dead = expected(platform, lines, index, 1_790_000_000_000)
        assert keys == set() and dead == len(lines), platform


def test_truth_of_simulated_traffic_has_every_event_once() -> None:
    clients = load_clients(REPO / "clients.example.toml")
    index = AccountIndex.build(clients)
    events = list(Simulator(clients, seed=3, start_ms=1_790_000_000_000).events(500))
    total: set[tuple[str, str, str, str]] = set()
    for platform in {e.platform for e in events}:
        lines = [orjson.dumps(e.payload) for e in events if e.platform == platform]
        keys, dead = expected(platform, lines, index, 1_790_000_000_000)
        assert dead == 0
        assert all(k[2] == platform for k in keys)
        total |= keys
    assert len(total) > 300  # most events are interactions of a tracked account
