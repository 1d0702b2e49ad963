"""Resume points read from the raw archive, and which archive keys it holds.

The pull agents resume from their contiguous watermarks (streams/ingest/resume.py),
confirmed with :meth:`ArchiveCursors.archived_keys`; the archive-wide points below are
their fallback when no watermark exists yet (a first run, an older data dir).

An agent never trusts its own memory across a restart: what it published may have died
with the (embedded, in-memory) broker before a worker archived it. So every resume point is
read with SQL from ``raw_events``, the archive of every consumed payload, at start and
again before each reconnect. Per platform:

- Bluesky: the Jetstream cursor is the largest ``time_us`` among archived payloads of the
  source; the archive keys already there are skipped when Jetstream sends them again.
- X: ``since_id`` is the largest post id among archived X payloads of the agent's sources.
- Mastodon and Reddit: the agent asks which of the ids it just fetched are archived and
  pages back until it meets one (the archive has no account column, and these ids are
  unique per account, so "is this notification / inbox item archived" is exact).

Queries look back ``ingest_lookback_s`` at most (``received_at`` is the archive's partition
key, so the window also prunes what is read).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from streams.errors import StackError
from streams.ingest.spool import ARCHIVED_KEYS_SQL, KEYS_PER_QUERY
from streams.settings import Settings
from streams.store.client import connect

log = logging.getLogger(__name__)

# The store is down or unreachable: worth a retry, not a traceback (a bad query still is one).
STORE_DOWN: tuple[type[BaseException], ...] = (OperationalError, StackError)

_WINDOW = "received_at >= now64(3) - toIntervalSecond({lookback:UInt32})"

# Jetstream delivers in time_us order, so the newest archived event arrived within the last
# hours of archive activity: bounding the scan by received_at keeps the query cheap.
JETSTREAM_CURSOR_SQL = f"""
SELECT max(JSONExtractUInt(payload, 'time_us')) FROM raw_events
WHERE platform = 'bluesky' AND source = {{source:String}} AND {_WINDOW}
  AND received_at >= (SELECT max(received_at) FROM raw_events
                      WHERE platform = 'bluesky' AND source = {{source:String}} AND {_WINDOW})
                     - toIntervalHour(6)
"""

BLUESKY_KEYS_SQL = f"""
SELECT raw_key FROM raw_events
WHERE platform = 'bluesky' AND source = {{source:String}} AND {_WINDOW}
  AND JSONExtractUInt(payload, 'time_us') >= {{since:UInt64}}
"""

BLUESKY_AUTHORS_SQL = f"""
SELECT DISTINCT JSONExtractString(payload, 'did') FROM raw_events
WHERE platform = 'bluesky' AND source = {{source:String}} AND {_WINDOW}
LIMIT 200000
"""

# A search page holds an array of posts, a stream message one post.
X_POST_IDS = ("arrayJoin(if(JSONType(payload, 'data') = 'Array', "
              "arrayMap(p -> JSONExtractString(p, 'id'), JSONExtractArrayRaw(payload, 'data')), "
              "[JSONExtractString(payload, 'data', 'id')]))")

X_SINCE_SQL = f"""
SELECT max(toUInt64OrZero(id)) FROM
(SELECT {X_POST_IDS} AS id FROM raw_events
 WHERE platform = 'x' AND source IN {{sources:Array(String)}} AND {_WINDOW})
"""


class ArchiveCursors:
    """Read-only queries on ``raw_events``, run on one thread of their own (the store client
    is not meant for concurrent use); the connection is opened lazily and again after a
    failure, so a store restart costs one failed read, not the agent."""

    def __init__(self, store_url: str, settings: Settings) -> None:
        self.store_url = store_url
        self.settings = settings
        self.lookback = int(settings.ingest_lookback_s)
        self._client: Client | None = None
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="rapport-cursors")

    def _run(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self._client is None:
            self._client = connect(self.store_url, self.settings)
        try:
            return [tuple(r) for r in self._client.query(sql, parameters=params).result_rows]
        except Exception:
            self._drop()
            raise

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken client may fail too
                pass

    async def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        params.setdefault("lookback", self.lookback)
        return await asyncio.get_running_loop().run_in_executor(self._exec, self._run, sql, params)

    async def jetstream_cursor(self, source: str = "stream") -> int | None:
        """Largest archived Jetstream ``time_us`` of ``source`` (microseconds), if any."""
        rows = await self.query(JETSTREAM_CURSOR_SQL, source=source)
        value = int(rows[0][0] or 0) if rows else 0
        return value or None

    async def bluesky_keys_since(self, since_us: int, source: str = "stream") -> set[str]:
        """Archive keys of the payloads at or after ``since_us``: what a rewind sends again."""
        rows = await self.query(BLUESKY_KEYS_SQL, source=source, since=max(0, since_us))
        return {r[0] for r in rows}

    async def bluesky_authors(self, source: str = "stream") -> set[str]:
        """DIDs whose events were archived: the people who deal with tracked accounts."""
        rows = await self.query(BLUESKY_AUTHORS_SQL, source=source)
        return {r[0] for r in rows if r[0]}

    async def x_since_id(self, sources: Sequence[str]) -> int | None:
        rows = await self.query(X_SINCE_SQL, sources=list(sources))
        value = int(rows[0][0] or 0) if rows else 0
        return value or None

    async def archived(self, platform: str, sources: Sequence[str], key_sql: str, keys: Sequence[str],
                       where: str = "", **params: Any) -> set[str]:
        """Which of ``keys`` (computed from each payload by ``key_sql``) are archived.

        ``key_sql`` and ``where`` are SQL written in the agents, never user input; values
        travel as query parameters.
        """
        if not keys:
            return set()
        sql = (f"SELECT DISTINCT k FROM (SELECT {key_sql} AS k FROM raw_events "
               f"WHERE platform = {{platform:String}} AND source IN {{sources:Array(String)}} AND {_WINDOW}"
               f"{f' AND ({where})' if where else ''}) WHERE k IN {{keys:Array(String)}}")
        rows = await self.query(sql, platform=platform, sources=list(sources), keys=list(keys), **params)
        return {r[0] for r in rows}

    async def archived_keys(self, platform: str, keys: Sequence[str]) -> set[str]:
        """Which of these archive keys ``raw_events`` holds (any time: no lookback window)."""
        found: set[str] = set()
        unique = sorted(set(keys))
        for i in range(0, len(unique), KEYS_PER_QUERY):
            rows = await self.query(ARCHIVED_KEYS_SQL, platform=platform, keys=unique[i:i + KEYS_PER_QUERY])
            found.update(r[0] for r in rows)
        return found

    def close(self) -> None:
        self._exec.submit(self._drop).result(10)
        self._exec.shutdown(wait=True)
