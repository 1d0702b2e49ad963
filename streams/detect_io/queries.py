"""What detection reads from (and recomputes in) the store. Blocking calls, no faust.

Everything here is scoped to one tracked account (``client_id``, ``account_id``; the
leading columns of every sort key) and reads ``FINAL`` state. Results come back as
``JSONCompactEachRow`` with times as epoch ms, so rows become records without a per-value
conversion in Python. Id lists are rendered into the SQL body (POSTed), never into URL
parameters: a woken thread can name thousands of ids.

No statement grows with its input: id lists, minute lists and account scopes are cut into
chunks under a byte budget derived from the client's bound (streams/store/bounded.py), and
a lookup too big for one statement becomes several. A backlog of millions of events then
costs more statements, never a statement the server refuses (QUERY_IS_TOO_LARGE).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import orjson
from clickhouse_connect.driver.client import Client as StoreClient

from streams.contracts.tables import INTERACTIONS
from streams.detect.conversations import ConversationSummary
from streams.detect.persons import StoredPerson
from streams.detect.responses import NEVER
from streams.detect_io.tables import OPEN_ITEMS_TABLE, ROLLUP_TABLE, TABLES, Row, StoreKey, TableSpec, store_key
from streams.figures import BRAND_REPLIES, FROM_OTHERS
from streams.interaction import CHANGE_COLUMNS, INTERACTION_COLUMNS, SIGNAL_KINDS, Change, Interaction
from streams.store.bounded import DEFAULT_MAX_QUERY_BYTES

log = logging.getLogger(__name__)
T = TypeVar("T")

# Statements stay under the client's bound (1 MiB by default); the server's parser limit
# (256 KiB by default) is raised above any bound a client may be given.
_BIG_QUERY = {"max_query_size": 64 * 1024 * 1024}
_SETTINGS = {"output_format_json_quote_64bit_integers": 0, **_BIG_QUERY}
_SIGNALS = "(" + ", ".join(f"'{k}'" for k in sorted(SIGNAL_KINDS)) + ")"
_MS_COLUMNS = {"created_at", "client_created_at", "ingested_at", "edited_at", "changed_at"}
# Detection never reads text, url or the raw key: leave them out of rebuild reads.
_BLANK = frozenset({"text", "url", "raw_key"})
MAX_CLOSURE_ROUNDS = 500
# The detection tables' sort keys after (client_id, account_id): schemas/migrations/0005_detection.sql.
_KEY_COLUMNS = {"threads": ("platform", "root_id"), "conversations": ("platform", "root_id", "person_id"),
                "connections": ("platform", "person_id"), "responses": ("platform", "event_id"),
                "alerts": ("platform", "event_id")}


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_SEP = "\x1f"  # the ASCII unit separator: no id contains it


def quote_list(values: Iterable[str]) -> str:
    """A set of strings for ``x IN <set>``.

    A long list is sent as one string literal split by the server: ClickHouse parses one
    literal far faster than tens of thousands (measured 85 ms against 500 ms for 50 k ids).
    """
    items = sorted(set(values))
    if not items:
        return "('')"
    if len(items) <= 64 or any(_SEP in v for v in items):
        return "(" + ", ".join(quote(v) for v in items) + ")"
    return f"(SELECT arrayJoin(splitByChar('\\x1F', {quote(_SEP.join(items))})))"


def _runs(items: Iterable[T], cost: Callable[[T], int], budget: int) -> Iterator[list[T]]:
    """``items`` in order, in consecutive runs whose summed ``cost`` stays within ``budget``.

    One item over the budget is a run of its own (its builder chunks what it holds).
    """
    run: list[T] = []
    size = 0
    for item in items:
        item_cost = cost(item)
        if run and size + item_cost > budget:
            yield run
            run, size = [], 0
        run.append(item)
        size += item_cost
    if run:
        yield run


def chunked(values: Iterable[str], budget: int) -> Iterator[list[str]]:
    """Sorted, de-duplicated ``values`` in runs whose quoted text stays within ``budget`` bytes."""
    return _runs(sorted(set(values)), lambda v: len(v.encode()) + 4, budget)  # quotes, separator, escapes


def packed(terms: Iterable[str], budget: int) -> Iterator[list[str]]:
    """``terms`` grouped, in order, so that each group's joined text stays within ``budget`` bytes."""
    return _runs(terms, lambda t: len(t.encode()) + 4, budget)  # " OR " between terms


def _select_list(cols: Sequence[str], blank: frozenset[str] = frozenset()) -> str:
    out = []
    for c in cols:
        if c in _MS_COLUMNS or c.endswith("_at"):
            out.append(f"toUnixTimestamp64Milli({c})")
        elif c in blank:
            out.append("''")
        else:
            out.append(c)
    return ", ".join(out)


_INTERACTIONS_SELECT = _select_list(INTERACTION_COLUMNS, _BLANK)
_CHANGES_SELECT = _select_list(CHANGE_COLUMNS, _BLANK)
_MENTIONED = INTERACTIONS.position("mentioned_ids")


def _minute_runs(minutes: list[int], budget: int) -> Iterator[list[int]]:
    """Sorted minute numbers in runs whose rendered list stays within ``budget`` bytes."""
    return _runs(minutes, lambda m: len(str(m)) + 2, budget)


def _account(client_id: str, account_id: str) -> str:
    return f"client_id = {quote(client_id)} AND account_id = {quote(account_id)}"


class DetectStore:
    """Reads for rebuilds and restores, and the rollup recomputation, on one client."""

    def __init__(self, client: StoreClient) -> None:
        self.client = client
        bound = int(getattr(client, "max_query_bytes", DEFAULT_MAX_QUERY_BYTES))
        # One id list is at most an eighth of a statement (a term may quote its list twice,
        # and the rollup statement holds its scope twice); terms fill at most a quarter.
        self.list_budget = max(1024, bound // 8)
        self.terms_budget = max(2048, bound // 4)

    def rows(self, sql: str) -> list[list[Any]]:
        raw = self.client.raw_query(sql, settings=_SETTINGS, fmt="JSONCompactEachRow")
        return [orjson.loads(line) for line in raw.splitlines() if line]

    # -- an account's history ---------------------------------------------------------

    def interactions(self, client_id: str, account_id: str, where: str = "", order: str = "",
                     limit: int = 0) -> list[Interaction]:
        """The account's messages (signals are not state), ``FINAL``."""
        sql = (f"SELECT {_INTERACTIONS_SELECT} FROM interactions FINAL "
               f"WHERE {_account(client_id, account_id)} AND kind NOT IN {_SIGNALS}")
        if where:
            sql += f" AND ({where})"
        if order:
            sql += f" ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for row in self.rows(sql):
            row[_MENTIONED] = tuple(row[_MENTIONED])
            out.append(Interaction(*row))
        return out

    def interaction_pages(self, client_id: str, account_id: str, page: int) -> Iterator[list[Interaction]]:
        """The account's messages (``FINAL``), ``page`` at a time in sort-key order
        ``(platform, event_id)``: a rebuild never holds the whole history as rows, and each
        page is a range read of the table's primary key."""
        after = ("", "")
        while True:
            where = f"(platform, event_id) > ({quote(after[0])}, {quote(after[1])})"
            rows = self.interactions(client_id, account_id, where, order="platform, event_id", limit=page)
            if not rows:
                return
            yield rows
            if len(rows) < page:
                return
            after = (rows[-1].platform, rows[-1].event_id)

    def event_watermark(self, client_id: str, account_id: str) -> int:
        """The latest event time stored for the account (signals included), or NEVER."""
        rows = self.rows(f"SELECT count(), toUnixTimestamp64Milli(max(created_at)) FROM interactions "
                         f"WHERE {_account(client_id, account_id)}")
        return int(rows[0][1]) if rows and rows[0][0] else NEVER

    def deletes(self, client_id: str, account_id: str, platform: str | None = None,
                event_ids: Iterable[str] | None = None, *, unattributed_on: Iterable[str] = (),
                unattributed_since_ms: int | None = None) -> list[Change]:
        """Deletes of the account's events: attributed to it, or unattributed ones naming them.

        Without ``event_ids`` (a whole-account rebuild), also every unattributed delete on
        ``unattributed_on`` platforms changed at or after ``unattributed_since_ms``, whether
        or not the event it names is stored yet. Its status may arrive later (a replay
        publishes again what a broker loss dropped, after the delete that survived): live,
        the state remembers such a delete (:meth:`ResponseBook.delete`) until eviction
        forgets it (:meth:`ResponseBook.forget_deletes`, deletes older than the sweep
        watermark minus the horizon), so a rebuild must load the same ones, or the status
        stays ``breached`` where it is ``cancelled`` (found by `rapport chaos`).
        """
        own = _account(client_id, account_id)
        if event_ids is None:
            unattributed = (f"(platform, event_id) IN (SELECT platform, event_id FROM interactions "
                            f"WHERE {own})")
            on = sorted(set(unattributed_on))
            if on and unattributed_since_ms is not None:
                since = max(0, int(unattributed_since_ms))
                unattributed = (f"({unattributed} OR (platform IN {quote_list(on)} AND "
                                f"changed_at >= fromUnixTimestamp64Milli(toInt64({since}), 'UTC')))")
            scopes = [""]
        else:
            unattributed = "1"
            scopes = [f" AND platform = {quote(platform or '')} AND event_id IN {quote_list(chunk)}"
                      for chunk in chunked(event_ids, self.list_budget)]
        out: list[Change] = []
        for scope in scopes:
            sql = (f"SELECT {_CHANGES_SELECT} FROM changes FINAL WHERE change = 'delete'{scope} "
                   f"AND (({own}) OR (client_id = '' AND {unattributed}))")
            out += [Change(*row) for row in self.rows(sql)]
        return out

    def thread_closure(self, client_id: str, account_id: str, platform: str, roots: Iterable[str],
                       ids: Iterable[str]) -> list[Interaction]:
        """Every stored message of the threads that ``roots`` and ``ids`` lead to.

        Follows declared roots, reply edges both ways and DM pairs until nothing new
        comes, so whole threads come back (a partly restored thread would be wrong).
        """
        found: dict[str, Interaction] = {}
        roots_todo, ids_todo = set(roots), set(ids)
        roots_done: set[str] = set()
        ids_done: set[str] = set()
        for _ in range(MAX_CLOSURE_ROUNDS):
            roots_todo -= roots_done
            ids_todo -= ids_done
            if not roots_todo and not ids_todo:
                break
            dm = {r.removeprefix("dm:") for r in roots_todo if r.startswith("dm:")}
            plain = {r for r in roots_todo if not r.startswith("dm:")}
            terms = [f"(root_id IN {quote_list(chunk)})" for chunk in chunked(plain, self.list_budget)]
            for chunk in chunked(plain | ids_todo, self.list_budget):
                ids_sql = quote_list(chunk)
                terms.append(f"(event_id IN {ids_sql} OR parent_id IN {ids_sql})")
            for chunk in chunked(dm, self.list_budget):
                people = quote_list(chunk)
                terms.append(f"(kind = 'dm' AND ifNull(root_id, '') = '' AND "
                             f"(author_id IN {people} OR recipient_id IN {people}))")
            roots_done |= roots_todo
            ids_done |= ids_todo
            roots_todo, ids_todo = set(), set()
            for group in packed(terms, self.terms_budget):
                self._closure_step(client_id, account_id, platform, group, found, roots_todo, ids_todo)
        else:
            log.warning("thread restore for %s:%s stopped after %d rounds", client_id, account_id,
                        MAX_CLOSURE_ROUNDS)
        return list(found.values())

    def _closure_step(self, client_id: str, account_id: str, platform: str, terms: list[str],
                      found: dict[str, Interaction], roots_todo: set[str], ids_todo: set[str]) -> None:
        """One statement of a closure round: new messages into ``found``, what they lead to into the sets."""
        where = f"platform = {quote(platform)} AND (" + " OR ".join(terms) + ")"
        for msg in self.interactions(client_id, account_id, where):
            if msg.event_id in found:
                continue
            found[msg.event_id] = msg
            ids_todo.add(msg.event_id)
            if msg.parent_id:
                ids_todo.add(msg.parent_id)
            if msg.root_id:
                roots_todo.add(msg.root_id)
            elif msg.kind == "dm":
                roots_todo.update(f"dm:{p}" for p in (msg.author_id, msg.recipient_id or "") if p)

    def persons(self, client_id: str, account_id: str, platform: str, person_ids: Iterable[str]) -> list[StoredPerson]:
        """Evicted persons as the store holds them: their live conversation rows, and the
        handle of their latest inbound message with one (the responses rows name those)."""
        own = f"{_account(client_id, account_id)} AND platform = {quote(platform)}"
        convs: dict[str, dict[tuple[str, str], ConversationSummary]] = defaultdict(dict)
        handles: dict[str, tuple[tuple[int, str], str]] = {}
        for chunk in chunked(person_ids, self.list_budget):
            people = quote_list(chunk)
            for person, root, turns, opened_by, started, last in self.rows(
                    f"SELECT person_id, root_id, turns, opened_by, toUnixTimestamp64Milli(started_at), "
                    f"toUnixTimestamp64Milli(last_at) FROM conversations FINAL WHERE {own} AND person_id IN {people}"):
                convs[person][(platform, root)] = ConversationSummary(int(turns), opened_by, int(started), int(last))
            inbound = f"SELECT event_id FROM responses FINAL WHERE {own} AND author_id IN {people}"
            authors = dict(self.rows(f"SELECT event_id, author_id FROM responses FINAL WHERE {own} "
                                     f"AND author_id IN {people}"))
            for event_id, at, handle in self.rows(
                    f"SELECT event_id, toUnixTimestamp64Milli(created_at), author_handle FROM interactions FINAL "
                    f"WHERE {own} AND author_handle != '' AND event_id IN ({inbound})"):
                person = authors.get(event_id)
                if person is None:
                    continue
                cand = ((int(at), event_id), handle)
                if person not in handles or cand > handles[person]:
                    handles[person] = cand
        out = []
        for person in sorted(set(convs) | set(handles)):
            key, handle = handles.get(person, ((NEVER, ""), ""))
            out.append(StoredPerson(platform, person, convs.get(person, {}), handle, key))
        return out

    # -- stored detection rows --------------------------------------------------------

    def alert_states(self, client_id: str, account_id: str, platform: str,
                     event_ids: Iterable[str]) -> dict[tuple[str, str], tuple[str, int | None]]:
        """``(status, resolved_at)`` of the stored (``FINAL``, not withdrawn) alerts of these
        events, by ``(platform, event_id)``: what a restored thread's alerts stand at."""
        out: dict[tuple[str, str], tuple[str, int | None]] = {}
        for chunk in chunked(event_ids, self.list_budget):
            sql = (f"SELECT event_id, status, toUnixTimestamp64Milli(resolved_at) FROM alerts FINAL "
                   f"WHERE {_account(client_id, account_id)} AND platform = {quote(platform)} "
                   f"AND event_id IN {quote_list(chunk)}")
            for event_id, status, resolved_at in self.rows(sql):
                out[(platform, str(event_id))] = (str(status), None if resolved_at is None else int(resolved_at))
        return out

    def stored_pages(self, spec: TableSpec, client_id: str, account_id: str, page: int) -> Iterator[list[Row]]:
        """The table's current rows of the account, ``page`` at a time in sort-key order."""
        cols = _KEY_COLUMNS[spec.name]
        after: tuple[str, ...] = ("",) * len(cols)
        while True:
            sql = (f"SELECT {_select_list(spec.row_columns)} FROM {spec.name} FINAL "
                   f"WHERE {_account(client_id, account_id)} AND ({', '.join(cols)}) > "
                   f"({', '.join(quote(v) for v in after)}) ORDER BY {', '.join(cols)} LIMIT {int(page)}")
            rows: list[Row] = [spec.row_type(*values) for values in self.rows(sql)]
            if not rows:
                return
            yield rows
            if len(rows) < page:
                return
            after = tuple(str(getattr(rows[-1], c)) for c in cols)

    def stored(self, spec: TableSpec, client_id: str, account_id: str) -> dict[StoreKey, Row]:
        """The table's current (``FINAL``, not deleted) rows of the account."""
        sql = (f"SELECT {_select_list(spec.row_columns)} FROM {spec.name} FINAL "
               f"WHERE {_account(client_id, account_id)}")
        out: dict[StoreKey, Row] = {}
        for values in self.rows(sql):
            row: Row = spec.row_type(*values)
            out[store_key(row)] = row
        return out

    def max_version(self, client_id: str, account_id: str) -> int:
        parts = [f"SELECT max(version) AS v FROM {t} WHERE {_account(client_id, account_id)}"
                 for t in (*(spec.name for spec in TABLES), ROLLUP_TABLE, OPEN_ITEMS_TABLE)]
        rows = self.rows("SELECT max(v) FROM (" + " UNION ALL ".join(parts) + ")")
        return int(rows[0][0] or 0) if rows else 0

    # -- the per-minute rollup --------------------------------------------------------

    def minutes_of(self, events: dict[tuple[str, str, str], set[str]]) -> dict[tuple[str, str, str], set[int]]:
        """The minutes (epoch minute numbers) stored rows of these events fall in now.

        Read before a batch is inserted: when a payload gives a known event another time
        (a Mastodon boost seen as a status and as a notification), the minute the replaced
        row counted in must be recomputed too, and a merge may drop the old row any time.
        """
        terms = [f"({_account(c, a)} AND platform = {quote(p)} AND event_id IN {quote_list(chunk)})"
                 for (c, a, p), ids in sorted(events.items()) for chunk in chunked(ids, self.list_budget)]
        out: dict[tuple[str, str, str], set[int]] = {}
        groups = list(packed(terms, self.terms_budget))
        for group in groups:
            sql = ("SELECT DISTINCT client_id, account_id, platform, "
                   "intDiv(toUnixTimestamp64Milli(created_at), 60000) FROM interactions WHERE " + " OR ".join(group))
            for c, a, p, minute in self.rows(sql):
                out.setdefault((c, a, p), set()).add(int(minute))
        if len(groups) > 1:  # what one statement would have weighed (tests/integration/test_backlog.py)
            ids = sum(len(v) for v in events.values())
            whole = sum(len(t.encode()) + 4 for t in terms)
            log.info("minutes of %d known events read in %d statements (%d bytes as one)", ids, len(groups), whole)
        return out

    def recompute_rollup(self, version: int, accounts: Iterable[tuple[str, str]] = (),
                         minutes: dict[tuple[str, str, str], set[int]] | None = None) -> None:
        """Rewrite ``activity_minutely`` rows from ``FINAL`` state.

        Scope: every minute of ``accounts``, and the given ``minutes`` (epoch minute
        numbers) per (client, account, platform). Every minute a batch can touch holds
        at least one interaction, so driving the rows from ``interactions`` covers them
        all, and a re-run writes the same rows.
        """
        whole = sorted(set(accounts))
        scopes = [f"({_account(c, a)})" for c, a in whole]
        for (c, a, p), mins in sorted((minutes or {}).items()):
            if (c, a) in whole:
                continue  # every minute of the account is recomputed already
            for run in _minute_runs(sorted(mins), self.list_budget):
                # The time bounds prune partitions (interactions are partitioned by month);
                # the minute list picks the rows.
                lo, hi = run[0] * 60, (run[-1] + 1) * 60
                scopes.append(
                    f"({_account(c, a)} AND platform = {quote(p)} AND {{time}} >= toDateTime64({lo}, 3, 'UTC') AND "
                    f"{{time}} < toDateTime64({hi}, 3, 'UTC') AND "
                    f"{{minute}} IN ({', '.join(str(m) for m in run)}))")
        # Scopes are disjoint (an account, or minutes of an account not recomputed whole), so
        # one statement per group of them writes each (account, minute) row once.
        for group in packed(scopes, self.terms_budget):
            self._recompute_scopes(version, " OR ".join(group))

    def _recompute_scopes(self, version: int, where: str) -> None:
        """One rollup statement over the rows ``where`` (with ``{time}``/``{minute}`` holes) picks."""
        where_i = where.replace("{minute}", "intDiv(toUnixTimestamp64Milli(created_at), 60000)").replace(
            "{time}", "created_at")
        where_r = where.replace("{minute}", "intDiv(toUnixTimestamp64Milli(received_at), 60000)").replace(
            "{time}", "received_at")
        account_author = ("if(platform = 'reddit', lower(author_id) = lower(account_id), "
                          "author_id = account_id)")
        sql = f"""
INSERT INTO {ROLLUP_TABLE} (client_id, account_id, platform, minute, messages, account_messages, inbound,
    answered, answered_in_sla, breached, cancelled, likes, reposts, follows, from_others, brand_replies, version)
SELECT i.client_id, i.account_id, i.platform, i.minute, i.messages, i.account_messages, r.inbound,
    r.answered, r.answered_in_sla, r.breached, r.cancelled, i.likes, i.reposts, i.follows, i.from_others,
    i.brand_replies, {int(version)}
FROM (
    SELECT client_id, account_id, platform, toStartOfMinute(toDateTime(created_at, 'UTC')) AS minute,
        countIf(kind NOT IN {_SIGNALS}) AS messages,
        countIf(kind NOT IN {_SIGNALS} AND {account_author}) AS account_messages,
        countIf(kind = 'like') AS likes, countIf(kind = 'repost') AS reposts, countIf(kind = 'follow') AS follows,
        countIf({FROM_OTHERS}) AS from_others, countIf({BRAND_REPLIES}) AS brand_replies
    FROM interactions FINAL
    WHERE {where_i}
    GROUP BY client_id, account_id, platform, minute
) AS i
LEFT JOIN (
    SELECT client_id, account_id, platform, toStartOfMinute(toDateTime(received_at, 'UTC')) AS minute,
        count() AS inbound, countIf(status = 'answered') AS answered,
        countIf(status = 'answered' AND answered_at <= due_at) AS answered_in_sla,
        countIf(status = 'breached') AS breached, countIf(status = 'cancelled') AS cancelled
    FROM responses FINAL
    WHERE {where_r}
    GROUP BY client_id, account_id, platform, minute
) AS r ON i.client_id = r.client_id AND i.account_id = r.account_id AND i.platform = r.platform
    AND i.minute = r.minute
"""
        # A backfill spans years: one recomputation may touch more than the default 100
        # monthly partitions, and all of its rows are needed at once.
        self.client.command(sql, settings={"max_partitions_per_insert_block": 0, **_BIG_QUERY})
        # A minute the FINAL interactions left (a boost's other copy replaced the row that
        # counted there) has no row above: its stored row is zeroed, else it keeps counting.
        where_m = where.replace("{minute}", "intDiv(toUnixTimestamp(minute), 60)").replace("{time}", "minute")
        empty = f"""
INSERT INTO {ROLLUP_TABLE} (client_id, account_id, platform, minute, messages, account_messages, inbound,
    answered, answered_in_sla, breached, cancelled, likes, reposts, follows, version)
SELECT client_id, account_id, platform, minute, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {int(version)}
FROM {ROLLUP_TABLE} FINAL
WHERE ({where_m}) AND messages + inbound + likes + reposts + follows > 0
    AND (client_id, account_id, platform, minute) NOT IN (
        SELECT client_id, account_id, platform, toStartOfMinute(toDateTime(created_at, 'UTC'))
        FROM interactions FINAL WHERE {where_i})
"""
        self.client.command(empty, settings={"max_partitions_per_insert_block": 0, **_BIG_QUERY})
