-- The canonical interaction record (schemas/interaction.json), one row per event and
-- tracked account. Idempotent under redelivery: ReplacingMergeTree keyed by natural ids,
-- with a deterministic version; read with FINAL (or argMax by version).
CREATE TABLE IF NOT EXISTS interactions
(
    client_id String,
    account_id String,
    platform LowCardinality(String),
    event_id String,
    kind LowCardinality(String),
    author_id String,
    author_handle String,
    parent_id Nullable(String),
    parent_author_id Nullable(String),
    root_id Nullable(String),
    quoted_id Nullable(String),
    quoted_author_id Nullable(String),
    recipient_id Nullable(String),
    mentioned_ids Array(String),
    text String,
    lang LowCardinality(String),
    url String,
    created_at DateTime64(3, 'UTC'),
    client_created_at Nullable(DateTime64(3, 'UTC')),
    ingested_at DateTime64(3, 'UTC'),
    source LowCardinality(String),
    deleted Bool,
    edited_at Nullable(DateTime64(3, 'UTC')),
    raw_key String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (client_id, account_id, platform, event_id);
