-- Per-minute activity of each tracked account for live boards (docs/metrics.md).
-- Not a materialized view counting inserts (a redelivered batch would count twice): every
-- row is recomputed from the FINAL state of interactions and responses for each minute a
-- batch touched, and written with a newer version, so re-writing yields the same row.
-- Minutes are event time. Inbound counts and their outcomes belong to the minute the
-- inbound message was received; signals and messages to the minute they were made.
CREATE TABLE IF NOT EXISTS activity_minutely
(
    client_id String,
    account_id String,
    platform LowCardinality(String),
    minute DateTime('UTC'),
    messages UInt32,
    account_messages UInt32,
    inbound UInt32,
    answered UInt32,
    answered_in_sla UInt32,
    breached UInt32,
    cancelled UInt32,
    likes UInt32,
    reposts UInt32,
    follows UInt32,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (client_id, account_id, platform, minute);
