-- Edits and deletes, keyed by the ORIGINAL event id. They never overwrite interactions:
-- history is kept, and a delete only cancels a pending alert.
CREATE TABLE IF NOT EXISTS changes
(
    platform LowCardinality(String),
    event_id String,
    change LowCardinality(String),
    changed_at DateTime64(3, 'UTC'),
    text String,
    author_id String,
    client_id String,
    account_id String,
    source LowCardinality(String),
    raw_key String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(changed_at)
ORDER BY (platform, event_id, change, changed_at, client_id, account_id);
