-- The raw archive deduplicated by (platform, raw_key) whatever month a payload arrives in,
-- keeping its FIRST arrival. It was partitioned by `toYYYYMM(received_at)`, and FINAL
-- never merges across partitions, so a payload fetched again a month later was archived
-- (and re-published) twice; and the latest archiving won, so a re-fetch changed the
-- received_at that replays and re-publishing stamp on every row as its version.
-- Partitioned by platform (in the key: no two arrivals of one payload can be split), with a
-- minmax index on received_at for the time-bounded reads (cursors, the pipeline board).
-- `first_arrival` is highest for the earliest archived_at: ReplacingMergeTree keeps it.
-- Sink dead letters were keyed `topic:partition:offset`, and the embedded broker's offsets
-- restart at 0, so each restart overwrote older ones; they are keyed by content now:
-- 'sink:' and the first 32 hex digits of the SHA-256 of the envelope as stored
-- (streams/agents/sink.py computes the same), and the copy re-keys the stored ones.
-- New table, copy, swap, re-runnable as in 0009 (workers stopped; on a crash between the
-- two renames the full copy is in raw_events_0011: rename it to raw_events and migrate
-- again). The copy reads and writes the whole archive once.
DROP TABLE IF EXISTS raw_events_0010;
CREATE TABLE IF NOT EXISTS raw_events_0011
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
    expected UInt32,
    via_account String DEFAULT '',
    first_arrival UInt64 MATERIALIZED 18446744073709551615 - toUInt64(toUnixTimestamp64Milli(archived_at)),
    INDEX received received_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(first_arrival)
PARTITION BY platform
ORDER BY (platform, raw_key);
INSERT INTO raw_events_0011
SELECT platform,
       if(source = 'sink' AND platform = '', concat('sink:', substring(lower(hex(SHA256(payload))), 1, 32)), raw_key),
       payload, source, received_at, archived_at, topic, partition, offset, outcome, reason, expected, via_account
FROM raw_events;
RENAME TABLE raw_events TO raw_events_0010, raw_events_0011 TO raw_events;
DROP TABLE raw_events_0010;

-- Dead letters as users read them: one per payload (the archive read FINAL), the first
-- arrival's topic, partition and offset.
CREATE OR REPLACE VIEW dead_letters AS
SELECT platform, raw_key, reason, topic, partition, offset, received_at, archived_at, payload
FROM raw_events FINAL
WHERE outcome = 'dead';
