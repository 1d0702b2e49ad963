-- The raw archive: every payload as it was consumed, keyed by platform and content hash
-- (broker offsets restart with the embedded broker, so they cannot be the key). It is
-- where durability lives in the embedded default: replay, backfill, and re-publishing
-- what the store has not yet processed after a restart on an empty broker.
-- `outcome` is ok | skipped | dead; `expected` is how many interactions and changes the
-- payload yielded, so "processed" can be checked against what the sink stored.
CREATE TABLE IF NOT EXISTS raw_events
(
    platform LowCardinality(String),
    raw_key String,
    payload String,
    source LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    archived_at DateTime64(3, 'UTC'),
    topic String,
    partition UInt32,
    offset UInt64,
    outcome LowCardinality(String),
    reason String,
    expected UInt32
)
ENGINE = ReplacingMergeTree(archived_at)
PARTITION BY toYYYYMM(received_at)
ORDER BY (platform, raw_key);

-- The durable side of the DLQ: what could not be parsed or processed, with the reason and
-- the source topic/partition/offset (the rapport.dlq topic carries the same records).
CREATE VIEW IF NOT EXISTS dead_letters AS
SELECT platform, raw_key, reason, topic, partition, offset, received_at, archived_at, payload
FROM raw_events
WHERE outcome = 'dead';
