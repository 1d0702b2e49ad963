"""Re-publishing from the raw archive what the store has not yet processed.

The embedded broker forgets every topic when it stops; the archive does not. A payload is
processed when the store holds as many interactions and changes carrying its ``raw_key``
as the normalizer said it yields (``raw_events.expected``). Anything short of that is
published again on start; idempotent writes make overlap harmless.
"""

from __future__ import annotations

import logging

from clickhouse_connect.driver.client import Client

from streams.ingest.publisher import Publisher

log = logging.getLogger(__name__)

UNPROCESSED_SQL = """
SELECT r.platform, r.source, toUnixTimestamp64Milli(r.received_at) AS received, r.payload, r.via_account
FROM (SELECT * FROM raw_events FINAL WHERE outcome = 'ok' AND expected > 0) AS r
LEFT JOIN
(
    SELECT raw_key, uniqExact(k) AS n FROM
    (
        SELECT raw_key, (client_id, account_id, platform, event_id, '') AS k FROM interactions
        UNION ALL
        SELECT raw_key, (client_id, account_id, platform, event_id, change) AS k FROM changes
    )
    GROUP BY raw_key
) AS s ON r.raw_key = s.raw_key
WHERE s.n < r.expected
ORDER BY r.received_at
"""


def republish_unprocessed(client: Client, publisher: Publisher) -> int:
    """Publish every archived payload whose results are not all stored; return how many."""
    count = 0
    with client.query_rows_stream(UNPROCESSED_SQL, settings={"join_use_nulls": 0}) as rows:
        for platform, source, received, payload, via_account in rows:
            publisher.add(platform, payload.encode(), source, int(received), via_account=via_account)
            count += 1
    publisher.flush()
    if count:
        log.info("re-published %d archived payloads the store had not fully processed", count)
    return count
