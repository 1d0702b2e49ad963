-- `changes` keyed by what a change is, not by when it arrived: (platform, event_id, change,
-- the edit's version, client_id, account_id). An edit's changed_at is the platform's own
-- time of that edit (its version: two edits of one post are two rows); a delete is keyed
-- without its time, since Mastodon and Reddit give none and the normalizer takes the
-- arrival (a delete received twice was two rows, and `toYYYYMM(changed_at)` could put two
-- arrivals of one change in two partitions, which FINAL never merges). Of several arrivals
-- the FIRST is kept (`first_arrival` is highest for the smallest version, which is the
-- arrival's received_at): a delete keeps the earliest time it was seen gone, and a payload
-- fetched again later changes nothing stored. Partitioned by platform, which is in the key,
-- so no two arrivals of one change can be in different partitions.
-- New table, copy, swap, re-runnable as in 0009 (workers stopped; on a crash between the
-- two renames the full copy is in changes_0010: rename it to changes and migrate again).
DROP TABLE IF EXISTS changes_0009;
CREATE TABLE IF NOT EXISTS changes_0010
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
    version UInt64,
    first_arrival UInt64 MATERIALIZED 18446744073709551615 - version
)
ENGINE = ReplacingMergeTree(first_arrival)
PARTITION BY platform
ORDER BY (platform, event_id, change, if(change = 'delete', toDateTime64(0, 3, 'UTC'), changed_at),
          client_id, account_id);
INSERT INTO changes_0010
SELECT platform, event_id, change, changed_at, text, author_id, client_id, account_id, source, raw_key, version
FROM changes;
RENAME TABLE changes TO changes_0009, changes_0010 TO changes;
DROP TABLE changes_0009;
