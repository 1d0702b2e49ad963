-- Per-minute pipeline counters written by every worker (one row per worker, minute,
-- stage and topic; sum them). Operational data: kept 30 days.
CREATE TABLE IF NOT EXISTS pipeline_metrics
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
    written_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (stage, topic, minute, worker)
TTL toDateTime(minute) + INTERVAL 30 DAY;
