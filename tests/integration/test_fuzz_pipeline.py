"""10 k fuzzed payloads through the real pipeline: DLQ records or counted skips, never a crash."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.clients import PLATFORMS
from streams.ingest.publisher import Publisher
from streams.normalize.base import raw_key_of
from streams.store.client import connect
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
FILES = {"bluesky": "bluesky_jetstream", "mastodon": "mastodon_streaming", "x": "x_api_v2",
         "facebook": "facebook_webhooks", "instagram": "instagram_webhooks", "reddit": "reddit"}


def _junk(rnd: random.Random, depth: int = 0) -> Any:
    choice = rnd.randrange(8 if depth < 3 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rnd.choice([True, False, 0, -1, 2**63, 1.5e308, float(rnd.randrange(10**9))])
    if choice == 2:
        return rnd.choice(["", "at://", "t1_", "did:plc:x", "\u0000", "💬" * rnd.randrange(5), "[deleted]"])
    if choice in (3, 4):
        return "".join(rnd.choice("abc:/_ {}[]\"") for _ in range(rnd.randrange(12)))
    if choice == 5:
        return [_junk(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    keys = ["id", "kind", "data", "commit", "did", "time_us", "payload", "event", "entry", "changes",
            "created_at", "author", "parent_id", "record", "reply", "text"]
    return {rnd.choice(keys): _junk(rnd, depth + 1) for _ in range(rnd.randrange(5))}


def _mutate(rnd: random.Random, value: Any) -> Any:
    if isinstance(value, dict) and value:
        out = dict(value)
        key = rnd.choice(list(out))
        action = rnd.randrange(3)
        if action == 0:
            del out[key]
        elif action == 1:
            out[key] = _junk(rnd)
        else:
            out[key] = _mutate(rnd, out[key])
        return out
    if isinstance(value, list) and value:
        out_list = list(value)
        i = rnd.randrange(len(out_list))
        out_list[i] = _mutate(rnd, out_list[i])
        return out_list
    return _junk(rnd)


def _publish(pub: Publisher, rnd: random.Random, seeds: dict[str, list[Any]], keys: dict[str, set[str]]) -> None:
    for i in range(10_000):
        platform = PLATFORMS[i % len(PLATFORMS)]
        if i % 10 == 0:
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))  # not JSON at all
            if body.strip() == b"" or body.strip().isdigit():
                body = b"{" + body
            pub.add(platform, body, "fuzz")
            continue
        payload = _mutate(rnd, rnd.choice(seeds[platform])) if i % 3 else _junk(rnd)
        pub.add(platform, orjson.dumps(payload), "fuzz")
        keys[platform].add(raw_key_of(payload))


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_ten_thousand_fuzzed_payloads(namespace: Namespace, seed: int) -> None:
    """Hypothesis picks the seed; 10 k payloads are too many to draw one by one from it."""
    ns = namespace
    rnd = random.Random(seed)
    seeds = {p: [orjson.loads(line) for line in (FIXTURES / f"{FILES[p]}.jsonl").read_bytes().splitlines()]
             for p in PLATFORMS}
    pub = Publisher(ns.settings, ns.broker_url)
    keys: dict[str, set[str]] = {p: set() for p in PLATFORMS}
    try:
        _publish(pub, rnd, seeds, keys)
    finally:
        pub.close()
    with ns.worker() as worker:

        ns.drain(timeout_s=240)
        assert worker.poll() is None, ns.log_tail()
    client = connect(ns.store_url, ns.settings)
    try:
        rows = client.query("SELECT outcome, count() FROM raw_events FINAL WHERE source = 'fuzz' "
                            "GROUP BY outcome").result_rows
    finally:
        client.close()
    outcomes = dict(rows)
    assert set(outcomes) <= {"ok", "skipped", "dead"}
    # Every JSON payload is archived exactly once (content-addressed), every non-JSON line too.
    assert sum(outcomes.values()) >= sum(len(k) for k in keys.values())
    assert outcomes.get("dead", 0) > 0 and outcomes.get("skipped", 0) + outcomes.get("ok", 0) > 0
    assert "Traceback" not in ns.log_tail()
