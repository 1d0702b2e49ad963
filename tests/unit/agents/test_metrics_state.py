"""A retrying stage is flushed to pipeline_metrics even when it counts nothing (pure)."""

from __future__ import annotations

from streams.agents.metrics import COLUMNS, MetricsBuffer


def rows_by_stage(buf: MetricsBuffer) -> dict[str, dict[str, object]]:
    return {row[COLUMNS.index("stage")]: dict(zip(COLUMNS, row, strict=True)) for row in buf.drain(lambda t, p: None)}


def test_retrying_then_ok_is_flushed_once_each() -> None:
    buf = MetricsBuffer("w1")
    buf.add("normalize", "raw", records_in=3)
    buf.state("sink", "retrying", "writing interactions: DatabaseError code 60: Unknown table")
    rows = rows_by_stage(buf)
    assert rows["sink"]["state"] == "retrying" and "code 60" in str(rows["sink"]["detail"])
    assert rows["normalize"]["state"] == "ok"
    again = rows_by_stage(buf)  # still retrying: said again at every flush
    assert again["sink"]["state"] == "retrying"
    buf.state("sink", "ok", "")
    assert rows_by_stage(buf)["sink"]["state"] == "ok"
    assert "sink" not in rows_by_stage(buf)  # ok and nothing counted: no row


def test_each_flush_has_its_own_written_at_and_its_rows_share_it() -> None:
    """written_at identifies a flush in pipeline_metrics' key (migration 0009): flushes in the
    same millisecond must still differ, and the rows of one flush (retried as one) share it."""
    buf = MetricsBuffer("w1")
    keys = []
    seen: list[int] = []
    for _ in range(50):  # far faster than a millisecond apart
        buf.add("normalize", "raw.a", records_in=1)
        buf.add("normalize", "raw.b", records_in=1)
        buf.state("sink", "retrying", "x")
        rows = buf.drain(lambda t, p: None)
        stamps = {row[COLUMNS.index("written_at")] for row in rows}
        assert len(stamps) == 1 and len(rows) == 3
        seen.append(stamps.pop())
        key_cols = [COLUMNS.index(c) for c in ("stage", "topic", "minute", "worker", "written_at")]
        keys += [tuple(row[i] for i in key_cols) for row in rows]
    assert seen == sorted(set(seen))  # strictly increasing
    assert len(keys) == len(set(keys))  # no two rows of different flushes share a key
