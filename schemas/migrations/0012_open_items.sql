-- Open items: the responses without an answer (status open or breached) and the open breach
-- alerts (status breached), nothing else, for the unanswered queue and the unanswered-mention
-- alert rule (docs/metrics.md "open_items").
-- `responses` and `alerts` keep every message ever received and every alert ever opened, so
-- those two read all of history through FINAL to show the few still waiting; this table holds
-- only those few. One row per message key (the sort key of both tables), its latest state
-- winning: every row is recomputed by the detection writer from `responses FINAL` and
-- `alerts FINAL` for each key a batch or sweep wrote, after those tables are written and
-- before the batch is acknowledged, with a newer version, so a redelivered batch rewrites the
-- same rows (streams/detect_io/open_items.py). A row leaves when its response is answered,
-- cancelled or gone and its alert is not open: it is written again with `deleted` set, which
-- FINAL hides. `author_id`, `received_at`, `status` are the unanswered response's ('' and 1970
-- when the row is there for its alert alone); `alert_status`, `opened_at`, `alert_text` the
-- open alert's ('' and 1970 when none is open); `due_at` the message's deadline;
-- `author_handle`, `text`, `url` the stored message's (latest version), so the queue reads
-- nothing else (a batch bringing a message again recomputes its row too).
-- Deleted rows are removed by the merges themselves (CLEANUP merges of ReplacingMergeTree,
-- forced on parts older than a minute), so the table stays as small as the open set.
CREATE TABLE IF NOT EXISTS open_items
(
    client_id String,
    account_id String,
    platform LowCardinality(String),
    event_id String,
    author_id String,
    author_handle String,
    text String,
    url String,
    received_at DateTime64(3, 'UTC'),
    due_at DateTime64(3, 'UTC'),
    status LowCardinality(String),
    alert_status LowCardinality(String),
    opened_at DateTime64(3, 'UTC'),
    alert_text String,
    deleted Bool,
    version UInt64
)
ENGINE = ReplacingMergeTree(version, deleted)
ORDER BY (client_id, account_id, platform, event_id)
SETTINGS allow_experimental_replacing_merge_with_cleanup = 1,
         enable_replacing_merge_with_cleanup_for_min_age_to_force_merge = 1,
         min_age_to_force_merge_seconds = 60,
         min_age_to_force_merge_on_partition_only = 1;

-- An existing store: its open set as `responses FINAL` and `alerts FINAL` hold it now
-- (the rows streams/detect_io/open_items.py `refresh_sql` writes), at the versions of those
-- rows (a worker's next write of a key is newer). Re-running the insert after a failure
-- writes identical rows, which FINAL shows once.
INSERT INTO open_items
WITH
    r AS (SELECT client_id, account_id, platform, event_id, author_id, received_at, due_at, status, version
          FROM responses FINAL WHERE status IN ('open', 'breached')),
    a AS (SELECT client_id, account_id, platform, event_id, due_at, status, opened_at, text, version
          FROM alerts FINAL WHERE status = 'breached'),
    k AS (SELECT client_id, account_id, platform, event_id FROM r
          UNION DISTINCT SELECT client_id, account_id, platform, event_id FROM a),
    i AS (SELECT client_id, account_id, platform, event_id, argMax(author_handle, version) AS author_handle,
                 argMax(text, version) AS text, argMax(url, version) AS url
          FROM interactions
          WHERE (client_id, account_id, platform, event_id) IN (SELECT client_id, account_id, platform, event_id FROM k)
          GROUP BY client_id, account_id, platform, event_id)
SELECT k.client_id, k.account_id, k.platform, k.event_id, r.author_id, i.author_handle, i.text, i.url,
       r.received_at, if(r.event_id != '', r.due_at, a.due_at), r.status, a.status, a.opened_at, a.text, false,
       greatest(r.version, a.version)
FROM k
LEFT JOIN r ON r.client_id = k.client_id AND r.account_id = k.account_id AND r.platform = k.platform
   AND r.event_id = k.event_id
LEFT JOIN a ON a.client_id = k.client_id AND a.account_id = k.account_id AND a.platform = k.platform
   AND a.event_id = k.event_id
LEFT JOIN i ON i.client_id = k.client_id AND i.account_id = k.account_id AND i.platform = k.platform
   AND i.event_id = k.event_id;

-- The board's counts of stored interactions (figures `from_others`, `brand_replies`, and
-- `interactions` as messages + signals) come from the per-minute rollup, as the vanity signals
-- do, instead of `interactions FINAL` over all history: two more counts per minute, recomputed
-- with the others (streams/detect_io/queries.py). Every row of an existing store is recomputed
-- once from the FINAL state, at a version above the stored ones (a worker's next write is newer
-- still: a loaded account's version is raised above every stored one).
ALTER TABLE activity_minutely
    ADD COLUMN IF NOT EXISTS from_others UInt32 DEFAULT 0 AFTER follows,
    ADD COLUMN IF NOT EXISTS brand_replies UInt32 DEFAULT 0 AFTER from_others;
INSERT INTO activity_minutely (client_id, account_id, platform, minute, messages, account_messages, inbound,
    answered, answered_in_sla, breached, cancelled, likes, reposts, follows, from_others, brand_replies, version)
SELECT i.client_id, i.account_id, i.platform, i.minute, i.messages, i.account_messages, r.inbound,
    r.answered, r.answered_in_sla, r.breached, r.cancelled, i.likes, i.reposts, i.follows, i.from_others,
    i.brand_replies, (SELECT max(version) + 1 FROM activity_minutely)
FROM (
    SELECT client_id, account_id, platform, toStartOfMinute(toDateTime(created_at, 'UTC')) AS minute,
        countIf(kind NOT IN ('follow', 'like', 'repost')) AS messages,
        countIf(kind NOT IN ('follow', 'like', 'repost')
                AND if(platform = 'reddit', lower(author_id) = lower(account_id), author_id = account_id))
            AS account_messages,
        countIf(kind = 'like') AS likes, countIf(kind = 'repost') AS reposts, countIf(kind = 'follow') AS follows,
        countIf(kind NOT IN ('like', 'repost', 'follow') AND author_id != account_id AND author_id != '')
            AS from_others,
        countIf(kind NOT IN ('like', 'repost', 'follow') AND author_id = account_id AND kind != 'post')
            AS brand_replies
    FROM interactions FINAL
    GROUP BY client_id, account_id, platform, minute
) AS i
LEFT JOIN (
    SELECT client_id, account_id, platform, toStartOfMinute(toDateTime(received_at, 'UTC')) AS minute,
        count() AS inbound, countIf(status = 'answered') AS answered,
        countIf(status = 'answered' AND answered_at <= due_at) AS answered_in_sla,
        countIf(status = 'breached') AS breached, countIf(status = 'cancelled') AS cancelled
    FROM responses FINAL
    GROUP BY client_id, account_id, platform, minute
) AS r ON i.client_id = r.client_id AND i.account_id = r.account_id AND i.platform = r.platform
    AND i.minute = r.minute
SETTINGS max_partitions_per_insert_block = 0;

-- "Stored in the last minute" (`ingested_last_minute`) reads FINAL only the keys with a row
-- ingested in that minute (streams/figures.py `prefilter`); a minmax index on ingested_at lets
-- that plain read skip the granules ingested earlier.
ALTER TABLE interactions ADD INDEX IF NOT EXISTS ingested ingested_at TYPE minmax GRANULARITY 1;
ALTER TABLE interactions MATERIALIZE INDEX ingested;
