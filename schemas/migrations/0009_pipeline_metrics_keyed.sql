-- pipeline_metrics becomes idempotent: one row per worker flush, keyed by (stage, topic,
-- minute, worker, written_at). written_at identifies the flush: milliseconds, strictly
-- increasing per worker process, and the same on every retry of that flush's insert, so a
-- retried insert replaces itself instead of counting twice (read with FINAL; sum the rows).
-- Migrated by new table, copy, swap (run it with the workers stopped, as `rapport up` and
-- `rapport migrate` do). Re-running after an interruption converges: the copy is keyed, so
-- copying again replaces rather than adds, and the old table is dropped only once renamed
-- away. Should a crash fall between the two renames of the RENAME statement (ClickHouse
-- renames several tables one by one), the full copy is in pipeline_metrics_0009 and the
-- re-run stops loudly on the missing table: RENAME TABLE pipeline_metrics_0009 TO
-- pipeline_metrics, then migrate again.
DROP TABLE IF EXISTS pipeline_metrics_0008;
CREATE TABLE IF NOT EXISTS pipeline_metrics_0009
(
    minute DateTime('UTC'),
    worker String,
    stage LowCardinality(String),
    topic String,
    records_in UInt64,
    events_in UInt64,
    events_out UInt64,
    dead_lettered UInt64,
    skipped UInt64,
    lag Int64,
    written_at DateTime64(3, 'UTC'),
    state LowCardinality(String) DEFAULT '',
    detail String DEFAULT ''
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (stage, topic, minute, worker, written_at)
TTL toDateTime(minute) + INTERVAL 30 DAY;
INSERT INTO pipeline_metrics_0009
SELECT minute, worker, stage, topic, records_in, events_in, events_out, dead_lettered, skipped, lag,
       written_at, state, detail
FROM pipeline_metrics;
RENAME TABLE pipeline_metrics TO pipeline_metrics_0008, pipeline_metrics_0009 TO pipeline_metrics;
DROP TABLE pipeline_metrics_0008;
