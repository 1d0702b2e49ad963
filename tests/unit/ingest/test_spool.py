"""The write-ahead spool on its own: frames, torn tails, confirmation, ownership (no broker)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ingest.publisher import REFUSED_KEEP, Publisher, payload_key
from streams.ingest.spool import Entry, Spool, SpoolBusy, decode, encode
from streams.ingest.spool_keeper import archived_in, due


def fill(spool: Spool, n: int, start: int = 0) -> list[Entry]:
    entries = [spool.append("facebook", orjson.dumps({"i": i}), "webhook", "p1", 1_790_000_000_000 + i, f"k{i}")
               for i in range(start, start + n)]
    asyncio.run(spool.sync())
    return entries


def test_entries_survive_a_reopen_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200).open()
    fill(spool, 10)
    assert len(list(tmp_path.glob("*.seg"))) > 1  # segments rotate at the size limit
    spool.close()
    again = Spool(tmp_path).open()
    got = again.pending()
    assert [orjson.loads(e.body)["i"] for e in got] == list(range(10))
    assert {(e.platform, e.source, e.via_account, e.key) for e in got} == {
        ("facebook", "webhook", "p1", f"k{i}") for i in range(10)}
    assert [e.received_at for e in got] == [1_790_000_000_000 + i for i in range(10)]
    again.close()


def test_a_torn_last_frame_is_cut_and_the_rest_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path).open()
    fill(spool, 3)
    spool.close()
    (seg,) = tmp_path.glob("*.seg")
    whole = seg.read_bytes()
    seg.write_bytes(whole[:-5])  # the process died in the middle of writing the third
    again = Spool(tmp_path).open()
    assert [orjson.loads(e.body)["i"] for e in again.pending()] == [0, 1]
    assert again.truncated > 0 and len(seg.read_bytes()) < len(whole) - 5
    more = fill(again, 1, start=7)  # appends after a cut go on in a new segment
    assert more[0].segment != again.pending()[0].segment
    again.close()
    assert [orjson.loads(e.body)["i"] for e in Spool(tmp_path).open().pending()] == [0, 1, 7]


def test_a_corrupt_frame_ends_its_segment(tmp_path: Path) -> None:
    frames = [encode(Entry("x", b"{}", "s", "", 1, f"k{i}")) for i in range(3)]
    data = bytearray(b"".join(frames))
    data[len(frames[0]) + 14] ^= 0xFF  # inside the second frame
    entries, good = decode(bytes(data))
    assert [e.key for e in entries] == ["k0"] and good == len(frames[0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=300), st.text(max_size=20), st.integers(0, 2**62)), max_size=20),
       st.integers(0, 400))
def test_frames_round_trip_and_any_cut_keeps_a_prefix(items: list[tuple[bytes, str, int]], cut: int) -> None:
    entries = [Entry("reddit", body, "poll", via, t, f"k{i}") for i, (body, via, t) in enumerate(items)]
    data = b"".join(encode(e) for e in entries)
    back, good = decode(data)
    assert good == len(data)
    assert [(e.body, e.via_account, e.received_at, e.key) for e in back] == \
        [(e.body, e.via_account, e.received_at, e.key) for e in entries]
    prefix, _ = decode(data[: max(0, len(data) - cut)])
    assert [e.key for e in prefix] == [e.key for e in entries[: len(prefix)]]


def test_confirmed_segments_are_deleted_and_unconfirmed_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=150).open()
    entries = fill(spool, 8)
    segments = {e.segment for e in entries}
    first = min(segments)
    in_first = [e for e in entries if e.segment == first]
    assert spool.confirm(in_first) == len(in_first)
    assert not (tmp_path / f"{first}.seg").exists()
    assert spool.confirm(in_first) == 0  # confirming twice changes nothing
    left = [e for e in entries if e.segment != first]
    assert spool.pending() == left
    spool.confirm(left)
    assert len(spool) == 0 and not list(tmp_path.glob("*.seg"))  # the current one too
    fill(spool, 1, start=100)  # and appending goes on after that
    spool.close()
    assert [orjson.loads(e.body)["i"] for e in Spool(tmp_path).open().pending()] == [100]


def test_one_owner_at_a_time(tmp_path: Path) -> None:
    owner = Spool(tmp_path).open()
    with pytest.raises(SpoolBusy):
        Spool(tmp_path).open()
    owner.close()
    Spool(tmp_path).open().close()


def test_concurrent_appends_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    spool = Spool(tmp_path).open()
    spool.append("x", b"{}", "s", "", 1, "first")  # opens the segment (fsyncs the directory)
    calls.clear()

    async def many() -> None:
        async def one(i: int) -> None:
            spool.append("x", b"{}", "s", "", 1, f"k{i}")
            await spool.sync()
        await asyncio.gather(*(one(i) for i in range(50)))

    asyncio.run(many())
    assert 1 <= len(calls) <= 3 and spool._synced == spool._written == 51
    spool.close()


def test_republish_is_due_for_new_and_stale_entries() -> None:
    fresh, stale, never = (Entry("x", b"", "s", "", 1, k) for k in "abc")
    fresh.published_at, stale.published_at = 100.0, 10.0
    assert due([fresh, stale, never], now=110.0, republish_s=60.0) == [stale, never]


def test_archived_in_asks_per_platform() -> None:
    entries = [Entry(p, b"", "s", "", 1, k) for p, k in (("facebook", "a"), ("instagram", "a"), ("facebook", "b"))]
    asked: list[tuple[str, list[str]]] = []

    def lookup(platform: str, keys: list[str]) -> set[str]:
        asked.append((platform, keys))
        return {"a"} if platform == "facebook" else set()

    assert archived_in(entries, lookup) == [entries[0]]
    assert sorted(asked) == [("facebook", ["a", "b"]), ("instagram", ["a"])]


def test_payload_key_is_the_key_the_publisher_archives_under(tmp_path: Path) -> None:
    """The spool confirms by the key replay --drain also confirms by (Publisher.keys)."""
    from streams.settings import Settings

    limit = 70_000
    publisher = Publisher.__new__(Publisher)  # no broker: only the key bookkeeping is used
    publisher.settings = Settings(data_dir=tmp_path)
    publisher.payload_max = limit
    publisher.pending, publisher.pending_bytes, publisher.keys = {}, {}, []
    publisher.refused = publisher.payloads = publisher.records = 0
    publisher.pending_since = None
    sent: list[bytes] = []
    publisher._send = lambda platform, value, *a, **k: sent.append(value)  # type: ignore[method-assign]
    bodies = [b'{"object": "page", "entry": [{"id": "1"}]}', b'  {"b":  2}\n', b"not json",
              b'{"big": "' + b"x" * limit + b'"}']
    for body in bodies:
        publisher._queue("facebook", body.strip(), "webhook", None, "")
    assert publisher.keys == [payload_key(b, limit) for b in bodies]
    assert payload_key(bodies[-1], limit) == payload_key(bodies[-1][:REFUSED_KEEP], 10**9)
