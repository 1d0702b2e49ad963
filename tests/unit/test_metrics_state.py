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
