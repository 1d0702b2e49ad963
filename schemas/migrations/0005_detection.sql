-- Detection results (streams/detect/rows.py, written by the sink agent, docs/metrics.md).
-- One row per natural key, latest state winning: ReplacingMergeTree(version, <deleted>).
-- `version` is the writing worker's processing time in ms, strictly increasing per worker
-- and raised above every stored version of an account when the account is (re)loaded, so
-- the latest state wins while a redelivered batch or a rebuild writes identical values.
-- The second engine argument is ClickHouse's is_deleted column: `SELECT ... FINAL` hides
-- rows whose latest version is deleted (a Mastodon thread folded into a larger one, the
-- conversation that moved with it, a withdrawn alert). Detection rows are not partitioned:
-- a row's times can change (first_at moves earlier when an older post arrives late), and a
-- row moving between partitions would never be replaced.
CREATE TABLE IF NOT EXISTS threads
(
    client_id String,
    account_id String,
    platform LowCardinality(String),
    root_id String,
    posts UInt32,
    depth UInt32,
    participants UInt32,
    account_posts UInt32,
    first_at DateTime64(3, 'UTC'),
    last_at DateTime64(3, 'UTC'),
    retracted Bool,
    version UInt64
)
ENGINE = ReplacingMergeTree(version, retracted)
ORDER BY (client_id, account_id, platform, root_id);

CREATE TABLE IF NOT EXISTS conversations
(
    client_id String,
    account_id String,
    platform LowCardinality(String),
    root_id String,
    person_id String,
    person_handle String,
    turns UInt32,
    opened_by LowCardinality(String),
    started_at DateTime64(3, 'UTC'),
    last_at DateTime64(3, 'UTC'),
    retracted Bool,
    version UInt64
)
ENGINE = ReplacingMergeTree(version, retracted)
ORDER BY (client_id, account_id, platform, root_id, person_id);

CREATE TABLE IF NOT EXISTS connections
(
    client_id String,
    account_id String,
    platform LowCardinality(String),
    person_id String,
    person_handle String,
    conversations UInt32,
    turns UInt32,
    first_at DateTime64(3, 'UTC'),
    last_at DateTime64(3, 'UTC'),
    returning Bool,
    deleted Bool,
    version UInt64
)
ENGINE = ReplacingMergeTree(version, deleted)
ORDER BY (client_id, account_id, platform, person_id);

-- One row per inbound message: its deadline, first response and status.
CREATE TABLE IF NOT EXISTS responses
(
    client_id String,
    account_id String,
    platform LowCardinality(String),
    event_id String,
    author_id String,
    received_at DateTime64(3, 'UTC'),
    due_at DateTime64(3, 'UTC'),
    answered_at Nullable(DateTime64(3, 'UTC')),
    response_s Nullable(Float64),
    response_business_s Nullable(Float64),
    status LowCardinality(String),
    deleted Bool,
    version UInt64
)
ENGINE = ReplacingMergeTree(version, deleted)
ORDER BY (client_id, account_id, platform, event_id);

-- Breach alerts: opened at the deadline (status breached), then resolved or cancelled.
-- A withdrawn alert (a late-arriving answer shows it should never have opened) is a
-- deleted row: gone from FINAL, as it is absent from a recomputation.
CREATE TABLE IF NOT EXISTS alerts
(
    client_id String,
    account_id String,
    platform LowCardinality(String),
    event_id String,
    opened_at DateTime64(3, 'UTC'),
    due_at DateTime64(3, 'UTC'),
    resolved_at Nullable(DateTime64(3, 'UTC')),
    status LowCardinality(String),
    text String,
    deleted Bool,
    version UInt64
)
ENGINE = ReplacingMergeTree(version, deleted)
ORDER BY (client_id, account_id, platform, event_id);
