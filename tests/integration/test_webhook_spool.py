"""The webhook spool against the real broker and store: replayed at an agent's start,
published again while the archive lacks an entry, dropped once archived; an oversize body
is kept as a dead letter with its reason.
"""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from streams.ingest.publisher import payload_key
from streams.ingest.spool import decode, spool_dir
from streams.limits import payload_max_bytes
from streams.store.client import connect
from tests.integration.ingest_support import eventually, raw_payloads
from tests.integration.test_ingest_webhooks import receiver, run, sign
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration


def body(i: int, pad: int = 0) -> bytes:
    return orjson.dumps({"object": "page", "entry": [{"id": "700001", "time": 1_790_000_000 + i, "changes": [
        {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": f"700001_s{i}",
                                    "post_id": "700001_p1", "message": f"hi {i}" + "x" * pad,
                                    "from": {"id": "u1", "name": "u"}, "created_time": 1_790_000_000 + i}}]}]})


def spooled(ns: Namespace) -> int:
    return sum(len(decode(p.read_bytes())[0]) for p in spool_dir(ns.settings.data_dir, "webhooks").glob("*.seg"))


def archived(ns: Namespace) -> dict[str, str]:
    client = connect(ns.store_url, ns.settings)
    try:
        rows = client.query("SELECT raw_key, outcome FROM raw_events FINAL WHERE platform = 'facebook'").result_rows
    finally:
        client.close()
    return {r[0]: r[1] for r in rows}


async def post(url: str, bodies: list[bytes]) -> list[int]:
    async with httpx.AsyncClient() as http:
        answers = await asyncio.gather(*(http.post(url, content=b, headers={"X-Hub-Signature-256": sign(b)})
                                         for b in bodies))
    return [a.status_code for a in answers]


def test_an_agent_publishes_its_spool_again_until_the_archive_has_it(namespace: Namespace) -> None:
    bodies = [body(i) for i in range(100)]  # more keys than one archive look-up takes
    fast = dict(spool_confirm_s=0.2, spool_republish_s=1.0)

    async def before_any_worker() -> None:
        async with receiver(namespace, **fast) as (url, _):
            assert await post(url, bodies) == [200] * 100
            assert spooled(namespace) == 100  # answered means on disk
        # No worker ran: nothing is archived, so a new agent publishes it all again at once,
        # and again each RAPPORT_SPOOL_REPUBLISH_S while the archive still lacks it.
        async with receiver(namespace, **fast):
            await eventually(lambda: len(raw_payloads(namespace, "facebook")) >= 300, what="published again")

    run(before_any_worker)
    assert spooled(namespace) == 100
    limit = payload_max_bytes(namespace.settings)

    async def with_a_worker() -> None:
        async with receiver(namespace, **fast):
            with namespace.worker():
                await eventually(lambda: spooled(namespace) == 0, timeout_s=60, what="spool emptied")

    run(with_a_worker)
    assert set(archived(namespace)) == {payload_key(b, limit) for b in bodies}
    assert not list(spool_dir(namespace.settings.data_dir, "webhooks").glob("*.seg"))


def test_a_body_over_the_record_limit_is_one_dead_letter_not_a_loss(namespace: Namespace) -> None:
    small_limit = 65_536  # the least RAPPORT_RECORD_MAX_BYTES; payloads up to ~47 KiB are sent whole
    limit = payload_max_bytes(namespace.settings.model_copy(update={"record_max_bytes": small_limit}))
    big, fine = body(1, pad=limit), body(2)
    assert limit < len(big) < 64 * 1024  # read (under the body limit), but over the record limit

    async def scenario() -> None:
        async with receiver(namespace, record_max_bytes=small_limit, spool_confirm_s=0.2) as (url, status):
            assert await post(url, [big, fine]) == [200, 200]
            with namespace.worker():
                await eventually(lambda: spooled(namespace) == 0, timeout_s=60, what="spool emptied")
            assert status.received == 2

    run(scenario)
    got = archived(namespace)
    assert got == {payload_key(big, limit): "dead", payload_key(fine, limit): "ok"}
    client = connect(namespace.store_url, namespace.settings)
    try:
        reason = client.query("SELECT reason FROM dead_letters WHERE platform = 'facebook'").result_rows
    finally:
        client.close()
    assert len(reason) == 1 and "over the record limit" in reason[0][0]

