"""The entry point's contract, and the time helpers every platform relies on."""

from __future__ import annotations

import pytest

from streams.normalize.access import epoch_to_ms, iso_to_ms
from streams.normalize.base import BadPayload, DeadLetter
from streams.normalize.registry import NORMALIZERS, normalize
from tests.unit.normalize.support import PLATFORMS, arrival, index


def test_every_platform_has_a_normalizer() -> None:
    assert set(NORMALIZERS) == set(PLATFORMS)


def test_unknown_platform_is_a_dead_letter() -> None:
    out = normalize("myspace", {}, arrival("myspace"), index())
    assert out == DeadLetter("unknown platform 'myspace'")


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("payload", [None, 1, "x", [], [{}], {}, {"data": None}])
def test_non_payloads_never_raise(platform: str, payload: object) -> None:
    out = normalize(platform, payload, arrival(platform), index())
    assert out.__class__.__name__ in {"DeadLetter", "Skipped"}
    if isinstance(out, DeadLetter):
        assert out.reason.startswith(f"{platform}: ")


def test_deep_nesting_is_a_dead_letter_not_a_crash() -> None:
    deep: object = "u/acme_official"
    for _ in range(5000):
        deep = {"kind": "Listing", "data": {"children": [deep]}}
    out = normalize("reddit", deep, arrival("reddit"), index())
    assert isinstance(out, DeadLetter)


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("2026-11-25T12:00:00.000Z", 1795608000000),
        ("2026-11-25T12:00:00.123+00:00", 1795608000123),
        ("2026-11-25T13:00:00+0100", 1795608000000),
        ("2026-11-25T12:00:00", 1795608000000),  # no offset: UTC
    ],
)
def test_iso_times(value: str, ms: int) -> None:
    assert iso_to_ms(value, "t") == ms


def test_epoch_seconds_or_ms_told_apart_by_size() -> None:
    assert epoch_to_ms(1795608060, "t") == 1795608060000
    assert epoch_to_ms(1795608060.5, "t") == 1795608060500
    assert epoch_to_ms(1795608060123, "t") == 1795608060123
    assert epoch_to_ms(1795608060, "t", "s") == 1795608060000


@pytest.mark.parametrize("value", [-1, 1e300, float("nan"), float("inf")])
def test_absurd_epochs_are_refused(value: float) -> None:
    with pytest.raises(BadPayload):
        epoch_to_ms(value, "t")


@pytest.mark.parametrize("value", ["soon", "1969-12-31T23:59:59Z", "2400-01-01T00:00:00Z", ""])
def test_absurd_iso_times_are_refused(value: str) -> None:
    with pytest.raises(BadPayload):
        iso_to_ms(value, "t")
