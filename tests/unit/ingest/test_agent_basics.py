"""Backoff, rate-limit waits, the seen set and the status file (no I/O but a temp dir)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from streams.ingest.agent import Backoff, Seen, Status, retry_after_s, status_path, write_status
from streams.settings import Settings

NOW = 1_800_000_000.0


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    low = Backoff(1.0, 8.0, rand=lambda: 0.0)
    high = Backoff(1.0, 8.0, rand=lambda: 1.0)
    assert [low.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [high.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    high.reset()
    assert high.next() == 1.0


def test_backoff_jitter_spreads_reconnects() -> None:
    delays = {round(Backoff(1.0, 60.0).next(), 6) for _ in range(50)}
    assert len(delays) > 40 and all(0.5 <= d <= 1.0 for d in delays)


@pytest.mark.parametrize(("headers", "wait"), [
    ({"Retry-After": "7"}, 7.0),
    ({"retry-after": "0"}, 0.0),
    ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)}, 30.0),
    ({"x-rate-limit-reset": str(int(NOW + 42))}, 42.0),  # X: epoch seconds
    ({"x-ratelimit-reset": "120"}, 120.0),  # Reddit: seconds to wait
    ({"X-RateLimit-Reset": datetime.fromtimestamp(NOW + 15, UTC).isoformat()}, 15.0),  # Mastodon: a time
    ({"x-rate-limit-reset": str(int(NOW - 5))}, 0.0),  # already past
    ({"Retry-After": "soon"}, None),
    ({}, None),
])
def test_retry_after_reads_each_platforms_header(headers: dict[str, str], wait: float | None) -> None:
    got = retry_after_s(headers, now=NOW)
    assert got == (None if wait is None else pytest.approx(wait, abs=0.01))


def test_seen_set_remembers_recent_keys_and_forgets_the_oldest() -> None:
    seen = Seen(capacity=100)
    assert seen.add("a") and not seen.add("a")
    seen.update(str(i) for i in range(200))
    assert len(seen) <= 100 and "199" in seen and "a" not in seen


def test_status_file_is_replaced_whole_and_names_state_lag_rate_and_error(tmp_path: Path) -> None:
    status = Status("bluesky")
    status.connected()
    status.event(time.time() - 2.0)
    status.published += 1
    status.waiting(1.5, "rate limited: HTTP 429")
    path = status_path(tmp_path, "bluesky")
    write_status(path, status)
    snap = orjson.loads(path.read_bytes())
    assert path == tmp_path / "agents" / "bluesky.json"
    assert snap["state"] == "backoff" and snap["connected"] is False
    assert snap["received"] == 1 and snap["published"] == 1 and snap["reconnects"] == 1
    assert 1.5 < snap["lag_s"] < 10 and snap["retry_in_s"] == 1.5
    assert snap["last_error"] == "rate limited: HTTP 429"
    assert not list(path.parent.glob(".*tmp")), "no temporary file left behind"
    line = status.line()
    assert line.startswith("bluesky: backoff lag=") and "last_error=rate limited: HTTP 429" in line


def test_status_with_several_streams_is_degraded_while_one_is_down() -> None:
    status = Status("mastodon")
    status.connected("user:1001")
    status.connected("#coffee")
    assert status.state == "connected"
    status.waiting(2.0, "ReadTimeout", "#coffee")
    assert status.state == "degraded" and status.parts["#coffee"].startswith("retrying")
    status.connected("#coffee")
    assert status.state == "connected"


def test_ingest_secrets_are_masked() -> None:
    settings = Settings(x_bearer_token=SecretStr("xb-secret"), meta_app_secret=SecretStr("meta-secret"),
                        reddit_client_secret=SecretStr("rd-secret"),
                        mastodon_access_tokens={"1001": SecretStr("md-secret")},
                        reddit_passwords={"acme": SecretStr("pw-secret")})
    text = repr(settings) + str(settings.masked())
    for secret in ("xb-secret", "meta-secret", "rd-secret", "md-secret", "pw-secret"):
        assert secret not in text
