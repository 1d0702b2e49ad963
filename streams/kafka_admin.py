"""Preparing topics with kafka-python's admin client, the same code for Tansu and Kafka.

Also the one place that reads *high watermarks*: Tansu answers ListOffsets(latest) with the
start of the last record batch + 1, not the partition end, so lag and "caught up" checks
here use the high watermark of a Fetch response instead (kafka-python's consumer exposes
it as ``highwater()`` once it has fetched).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.errors import StackError

log = logging.getLogger(__name__)


def bootstrap_of(url: str) -> str:
    """``kafka://host:port`` (faust's spelling) -> ``host:port``; bare ``host:port`` passes."""
    return url.split("://", 1)[1] if "://" in url else url


def wait_for_broker(url: str, timeout_s: float = 30.0) -> None:
    """Block until the broker answers a metadata request, or raise :class:`StackError`."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_of(url), client_id="rapport-probe",
                                     request_timeout_ms=3000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.1)
    raise StackError(f"broker at {url} did not answer metadata requests within {timeout_s:.0f}s: {last}")


def ensure_topics(url: str, names: Iterable[str], partitions: int, replication: int = 1) -> list[str]:
    """Create the topics that do not exist yet; return the ones created.

    Existing topics keep their partition count (changing it would move keys between
    partitions and so split an account's state); a mismatch is logged.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_of(url), client_id="rapport-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [n for n in names if n not in existing]
        created: list[str] = []
        for name in wanted:
            try:
                admin.create_topics([NewTopic(name, partitions, replication)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        for desc in admin.describe_topics([n for n in names if n in existing]):
            have = len(desc.get("partitions") or [])
            if have != partitions:
                log.warning("topic %s has %d partitions, configured %d", desc.get("topic"), have, partitions)
        return created
    finally:
        admin.close()


def high_watermarks(url: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """High watermark of every partition of ``topics``, from real Fetch responses."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_of(url), enable_auto_commit=False,
                             group_id=None, fetch_max_wait_ms=50, max_partition_fetch_bytes=1,
                             fetch_max_bytes=1, consumer_timeout_ms=1000)
    try:
        tps: list[TopicPartition] = []
        for topic in topics:
            for p in sorted(consumer.partitions_for_topic(topic) or ()):
                tps.append(TopicPartition(topic, p))
        if not tps:
            return {}
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        marks: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + 10
        while len(marks) < len(tps) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100, max_records=1)
            for tp in tps:
                hw = consumer.highwater(tp)
                if hw is not None:
                    marks[(tp.topic, tp.partition)] = hw
        return marks
    finally:
        consumer.close()
