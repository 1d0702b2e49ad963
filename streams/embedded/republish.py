"""Re-publishing from the raw archive what the store has not yet processed.

The embedded broker forgets every topic when it stops; the archive does not. A payload is
processed when the store holds as many interactions and changes carrying its ``raw_key``
as the normalizer said it yields (``raw_events.expected``). Anything short of that is
published again on start; idempotent writes make overlap harmless.

Memory is bounded by the chunk (``RAPPORT_REPUBLISH_CHUNK``): the archive is walked in
pages of its sort key ``(platform, raw_key)``; per page the store counts the results of
those keys only, and the payloads of the unprocessed ones are streamed to the publisher.
One statement over the whole archive would have the store sort every unprocessed payload
(and hash every key of ``interactions``) before the first row comes back. Payloads go out
in archive-key order, received time within a page: detection does not depend on order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from clickhouse_connect.driver.client import Client

from streams.detect_io.queries import chunked, quote, quote_list
from streams.ingest.publisher import Publisher
from streams.store.bounded import DEFAULT_MAX_QUERY_BYTES

log = logging.getLogger(__name__)

_SETTINGS = {"join_use_nulls": 0, "max_query_size": 64 * 1024 * 1024}

PAGE_SQL = """
SELECT platform, raw_key, expected FROM raw_events FINAL
WHERE outcome = 'ok' AND expected > 0 AND (platform, raw_key) > ({platform}, {raw_key})
ORDER BY platform, raw_key
LIMIT {limit}
"""

COUNTS_SQL = """
SELECT raw_key, uniqExact(k) FROM
(
    SELECT raw_key, (client_id, account_id, platform, event_id, '') AS k FROM interactions
    WHERE raw_key IN {keys}
    UNION ALL
    SELECT raw_key, (client_id, account_id, platform, event_id, change) AS k FROM changes
    WHERE raw_key IN {keys}
)
GROUP BY raw_key
"""

PAYLOADS_SQL = """
SELECT platform, source, toUnixTimestamp64Milli(received_at) AS received, payload, via_account
FROM raw_events FINAL
WHERE platform = {platform} AND raw_key IN {keys} AND outcome = 'ok'
ORDER BY received_at, raw_key
"""


def _list_budget(client: Client) -> int:
    """Bytes one key list may take: a statement quotes it twice, under the client's bound."""
    return max(1024, int(getattr(client, "max_query_bytes", DEFAULT_MAX_QUERY_BYTES)) // 4)


def _pages(client: Client, chunk: int) -> Iterator[list[tuple[str, str, int]]]:
    """The archive's processable payloads as ``(platform, raw_key, expected)``, a page at a time."""
    after = ("", "")
    while True:
        sql = PAGE_SQL.format(platform=quote(after[0]), raw_key=quote(after[1]), limit=int(chunk))
        page = [(p, k, int(n)) for p, k, n in client.query(sql, settings=_SETTINGS).result_rows]
        if not page:
            return
        yield page
        after = (page[-1][0], page[-1][1])
        if len(page) < chunk:
            return


def unprocessed_pages(client: Client, chunk: int) -> Iterator[dict[str, list[str]]]:
    """Per page of the archive, the raw keys whose results are not all stored, by platform."""
    budget = _list_budget(client)
    for page in _pages(client, chunk):
        counts: dict[str, int] = {}
        for run in chunked((k for _, k, _ in page), budget):
            sql = COUNTS_SQL.format(keys=quote_list(run))
            counts.update((str(k), int(n)) for k, n in client.query(sql, settings=_SETTINGS).result_rows)
        short: dict[str, list[str]] = {}
        for platform, key, expected in page:
            if int(counts.get(key, 0)) < expected:
                short.setdefault(platform, []).append(key)
        if short:
            yield short


def republish_unprocessed(client: Client, publisher: Publisher, chunk: int = 5000) -> int:
    """Publish every archived payload whose results are not all stored; return how many."""
    count = 0
    for short in unprocessed_pages(client, chunk):
        for platform, keys in sorted(short.items()):
            for run in chunked(keys, _list_budget(client)):
                sql = PAYLOADS_SQL.format(platform=quote(platform), keys=quote_list(run))
                with client.query_rows_stream(sql, settings=_SETTINGS) as rows:
                    for platform_, source, received, payload, via_account in rows:
                        publisher.add(platform_, payload.encode(), source, int(received), via_account=via_account)
                        count += 1
        publisher.flush()  # a page at a time: what is queued never outgrows one chunk
    if count:
        log.info("re-published %d archived payloads the store had not fully processed", count)
    return count
