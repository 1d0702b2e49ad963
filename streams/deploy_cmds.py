"""What the scale-out stack's one-shot commands do (docker-compose.yml runs them through the
CLI, which mounts every command: :mod:`streams.cli`).

* ``rapport topics`` (:func:`create_topics`): wait for the broker, then create every topic of
  :mod:`streams.contracts.topics` with the configured prefix, partitions (``RAPPORT_PARTITIONS``) and replication
  (``RAPPORT_REPLICATION_FACTOR``); existing topics are kept (a changed partition count would move
  account keys between partitions) and a mismatch is reported.
* ``rapport ping`` (:func:`ping`): exit 0 when the broker and the store answer (the workers'
  healthcheck).
"""

from __future__ import annotations

import urllib.request

from streams.contracts.topics import full_names
from streams.settings import Settings


def create_topics(settings: Settings, timeout_s: float = 60.0) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    from streams.kafka_admin import ensure_topics, wait_for_broker
    from streams.store.client import broker_url

    url = broker_url(settings)
    wait_for_broker(url, timeout_s)
    return ensure_topics(url, full_names(settings), settings.partitions, settings.replication_factor)


def ping(settings: Settings, timeout_s: float = 5.0) -> bool:
    """Whether the broker and the store both answer."""
    from streams.kafka_admin import wait_for_broker
    from streams.store.client import broker_url, store_url

    try:
        wait_for_broker(broker_url(settings), timeout_s)
        with urllib.request.urlopen(store_url(settings).rstrip("/") + "/ping", timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        return False
