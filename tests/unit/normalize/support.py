"""Shared helpers of the normalizer tests: the test clients, arrivals, fixture lines."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from streams.clients import parse_clients
from streams.interaction import Change, Interaction
from streams.normalize.base import AccountIndex, Arrival, DeadLetter, Normalized, Outcome, Skipped
from streams.normalize.registry import normalize

TESTS = Path(__file__).resolve().parents[2]
LOCAL = TESTS / "fixtures" / "normalize"
# shared/ beside the checkout (/work/main -> /work/shared), also from a worktree deeper down
SHARED = next((p / "shared" / "fixtures" for p in TESTS.parents if (p / "shared" / "fixtures").is_dir()),
              TESTS.parents[1] / "shared" / "fixtures")
SHARED_FILES = {
    "bluesky": "bluesky_jetstream.jsonl",
    "reddit": "reddit.jsonl",
    "mastodon": "mastodon_streaming.jsonl",
    "x": "x_api_v2.jsonl",
    "facebook": "facebook_webhooks.jsonl",
    "instagram": "instagram_webhooks.jsonl",
}
PLATFORMS = tuple(SHARED_FILES)
RECEIVED = 1_795_700_000_000


@cache
def index() -> AccountIndex:
    text = (LOCAL / "clients.toml").read_text(encoding="utf-8")
    return AccountIndex.build(parse_clients(text, "tests/fixtures/normalize/clients.toml"))


def arrival(platform: str, source: str = "stream", via: str | None = None) -> Arrival:
    return Arrival(platform, source, RECEIVED, f"raw-{platform}", via)


def shared_lines(platform: str) -> list[Any]:
    path = SHARED / SHARED_FILES[platform]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@cache
def _extra(platform: str) -> dict[str, Any]:
    path = LOCAL / f"extra_{platform}.jsonl"
    out: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line:
            case = json.loads(line)
            out[case["case"]] = case["payload"]
    return out


def extra(platform: str, case: str) -> Any:
    return json.loads(json.dumps(_extra(platform)[case]))  # a fresh copy per test


def extra_payloads(platform: str) -> list[Any]:
    return list(_extra(platform).values())


def run(
    platform: str, payload: Any, source: str = "stream", via: str | None = None,
) -> Outcome:
    return normalize(platform, payload, arrival(platform, source, via), index())


def ok(platform: str, payload: Any, source: str = "stream", via: str | None = None) -> Normalized:
    out = run(platform, payload, source, via)
    assert isinstance(out, Normalized), out
    return out


def only(
    platform: str, payload: Any, source: str = "stream", via: str | None = None,
) -> Interaction:
    out = ok(platform, payload, source, via)
    assert len(out.interactions) == 1 and not out.changes, out
    return out.interactions[0]


def change(platform: str, payload: Any, source: str = "stream", via: str | None = None) -> Change:
    out = ok(platform, payload, source, via)
    assert len(out.changes) == 1 and not out.interactions, out
    return out.changes[0]


def skipped(platform: str, payload: Any, source: str = "stream", via: str | None = None) -> str:
    out = run(platform, payload, source, via)
    assert isinstance(out, Skipped), out
    return out.reason


def dead(platform: str, payload: Any) -> str:
    out = run(platform, payload)
    assert isinstance(out, DeadLetter), out
    return out.reason


def targets(out: Normalized) -> list[tuple[str, str]]:
    return [(i.client_id, i.account_id) for i in out.interactions]
