"""Builds the one ``faust.App`` from settings; nothing else constructs it.

The broker-facing settings are chosen for Tansu *and* Apache Kafka
(shared/notes/embedded-broker.md): short group timeouts, because Tansu holds JoinGroup for
half the session timeout and a stopped member stays registered until its session expires;
no leader topic; topics created up front by :mod:`streams.kafka_admin`, never declared by
faust; a short commit interval so that ``--drain`` sees progress soon after it is written.
"""

from __future__ import annotations

from pathlib import Path

import faust

from streams.kafka_admin import bootstrap_of
from streams.limits import producer_max_bytes
from streams.settings import Settings


def create_app(settings: Settings, broker_url: str, app_id: str | None = None) -> faust.App:
    """The faust app of one worker process."""
    datadir = Path(settings.data_dir) / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id or settings.app_id,
        broker=f"kafka://{bootstrap_of(broker_url)}",
        datadir=str(datadir),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=6.0,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        producer_linger=0.005,
        producer_max_request_size=producer_max_bytes(settings),  # one record limit (streams/limits.py)
        consumer_max_fetch_size=settings.record_max_bytes,
        web_enabled=settings.worker_web_port is not None,
        web_port=settings.worker_web_port or 6066,
        web_host="127.0.0.1",
    )
