"""A backlog that stalled the pipeline for good before the detection lookups were chunked.

Before (issue 14), ``DetectStore.minutes_of`` listed every event id of the sink's batch in
one statement; the embedded store refuses a plain statement over 16 MiB
(``streams/embedded/sql_scan.py``, as ClickHouse refuses one over ``max_query_size``) with
QUERY_IS_TOO_LARGE (229), and that error was retried forever as if transient.

Two tests, at the real bounds (no small ``RAPPORT_STORE_MAX_QUERY_BYTES``):

* the lookup of one batch the size a backlog builds: the old single statement is refused by
  the real store with 229 (so 16 MiB is the limit that bit), the error is not transient,
  and the chunked lookup of the very same ids answers;
* a backlog through the real pipeline: events all published before the worker starts, so
  the sink's batches hold as many envelopes as the normalizer has made (up to 1,000); the
  worker logs what each chunked lookup would have weighed as one statement, and the test
  asserts that some batch crossed 16 MiB (the old code would have stalled there for good)
  and that every event is stored and every detection table equals the batch recomputation.

At about 70-byte AT-URIs a batch crosses 16 MiB near 240 k events (the issue's 1 M-event
backlog stalled at 390 k); CI cannot afford that, so the backlog is 80 k Jetstream likes whose
record keys are 480 characters (atproto allows 512): about 530 bytes per id, 42 MB of ids in
all, so a batch holding 40 % of the backlog crosses the old limit, and the log proves one did.
Whether a batch holds that much must not depend on how fast the normalizer runs on a loaded
machine: the backlog makes fewer than the sink's 1,000 envelopes per batch (records of up to
1 MiB), so the sink's first batch is whatever the normalizer has made within the sink's wait,
and that wait (60 s) is longer than the normalizer takes over the whole backlog even at a
load average of 20 on two cores (about 45 s measured there; a quiet machine needs about 10 s).
The simulated-traffic run of a million events is ``rapport bench --scale`` (bench/README.md).
"""

from __future__ import annotations

import re

import orjson
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from streams.agents.retry import is_transient
from streams.chaos.check import diff, expected_rows, interaction_keys, rollup_rows, rollup_truth, stored_rows
from streams.clients import load_clients
from streams.detect_io.queries import DetectStore, quote, quote_list
from streams.ingest.publisher import Publisher
from streams.store.client import connect
from streams.store.errors import error_code, is_statement_error
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration
OLD_LIMIT = 16 << 20  # the store's limit on a plain statement (streams/embedded/sql_scan.py)
START_MS = 1_790_000_000_000
BACKLOG = 60_000
PART = 40_000  # events per part of a sink batch: 40,000 ids of ~530 bytes weigh 21 MB as one statement
BRAND = "did:plc:globexgggggggggggggggggg"  # globex's Bluesky account in clients.example.toml
POST_RKEY = "3mvzvhyc4q226"
_WEIGHT = re.compile(r"minutes of (\d+) known events read in (\d+) statements \((\d+) bytes as one\)")


def _at_uris(n: int) -> set[str]:
    return {f"at://did:plc:{i:024x}/app.bsky.feed.post/3l{i:011x}" for i in range(n)}


def test_one_backlog_batch_lookup_is_refused_as_one_statement_and_answered_in_chunks(
        namespace: Namespace) -> None:
    ids = _at_uris(300_000)  # one sink batch of a Bluesky backlog
    scope = ("acme", "did:plc:acme", "bluesky")
    old = ("SELECT DISTINCT client_id, account_id, platform, intDiv(toUnixTimestamp64Milli(created_at), 60000) "
           f"FROM interactions WHERE (client_id = {quote(scope[0])} AND account_id = {quote(scope[1])} "
           f"AND platform = {quote(scope[2])} AND event_id IN {quote_list(ids)})")
    assert len(old.encode()) > OLD_LIMIT
    unbounded = connect(namespace.store_url, namespace.settings.model_copy(
        update={"store_max_query_bytes": 64 << 20}))
    client = connect(namespace.store_url, namespace.settings)  # the default bound, as workers run
    try:
        with pytest.raises(DatabaseError) as refused:
            unbounded.query(old, settings={"max_query_size": 64 << 20})
        assert error_code(refused.value) == 229, refused.value
        assert is_statement_error(refused.value) and not is_transient(refused.value)
        assert DetectStore(client).minutes_of({scope: ids}) == {}
    finally:
        unbounded.close()
        client.close()


def _jetstream(did: str, collection: str, rkey: str, record: dict[str, object], time_us: int) -> bytes:
    return orjson.dumps({"did": did, "time_us": time_us, "kind": "commit", "commit": {
        "rev": "3mvzvhycy3227", "operation": "create", "collection": collection, "rkey": rkey,
        "record": {"$type": collection, **record}, "cid": "bafyreinx4qzvd6emv3j7bnhr7bjwk26eqpojiqeltayn52s"}})


def _backlog(n: int) -> list[bytes]:
    """A brand post and ``n`` likes of it, each like's record key 480 characters long (an
    atproto record key may have 512), so its AT-URI is about 530 bytes."""
    iso = "2026-09-21T14:13:49.240Z"
    post = _jetstream(BRAND, "app.bsky.feed.post", POST_RKEY,
                      {"text": "Meet the team behind the redesign", "createdAt": iso, "langs": ["en"]},
                      START_MS * 1000)
    subject = {"uri": f"at://{BRAND}/app.bsky.feed.post/{POST_RKEY}", "cid": "bafyreinx4qzvd6emv3j7bnhr7b"}
    likes = [_jetstream(f"did:plc:{i % 5000:024x}", "app.bsky.feed.like", f"3l{i:012x}" + "k" * 466,
                        {"subject": subject, "createdAt": iso}, (START_MS + 1000 + i * 50) * 1000)
             for i in range(n)]
    return [post, *likes]


@pytest.mark.timeout(600)
def test_a_backlog_past_the_old_statement_limit_is_stored_whole(namespace: Namespace) -> None:
    ns = namespace
    clients = load_clients(ns.settings.clients)
    lines = _backlog(BACKLOG)
    assert sum(len(line) for line in lines) > 2 * OLD_LIMIT
    pub = Publisher(ns.settings, ns.broker_url)
    for i, line in enumerate(lines):  # all of it before the worker starts: a backlog
        pub.add("bluesky", line, "stream", received_at=START_MS + 5000 + i)
    pub.close()
    # The sink waits up to 60 s for a full batch (1,000 envelopes), so its batches hold what a
    # slow sink meets in a backlog: tens of thousands of events, not what one fetch brings.
    # A batch is worked through in parts of at most PART events (RAPPORT_SINK_BATCH_EVENTS): the
    # first batch holds most of the backlog, more than PART, and a part still crosses 16 MiB.
    with ns.worker(extra_env={"RAPPORT_LOG_LEVEL": "INFO", "RAPPORT_BATCH_DELAY_S": "60",
                              "RAPPORT_SINK_BATCH_EVENTS": str(PART)}):
        ns.drain(timeout_s=400)
    log = "\n".join(p.read_text(errors="replace") for p in ns.log_dir.glob("*.log"))
    weights = [int(m.group(3)) for m in _WEIGHT.finditer(log)]
    assert weights and max(weights) > OLD_LIMIT, (max(weights, default=0), "no batch crossed the old limit")
    looked_up = [int(m.group(1)) for m in _WEIGHT.finditer(log)]
    assert max(looked_up) <= PART, (max(looked_up), "a part of a batch held more events than its bound")
    assert "QueryTooLargeError" not in log and "code 229" not in log
    client = connect(ns.store_url, ns.settings)
    try:
        count, keys = interaction_keys(client)
        assert count == len(lines) and len(keys) == len(lines)
        assert all(k[:3] == ("globex", BRAND, "bluesky") for k in keys)
        problems = diff(expected_rows(clients, client), stored_rows(client))
        assert not problems, problems
        assert rollup_rows(client) == rollup_truth(client)
    finally:
        client.close()
