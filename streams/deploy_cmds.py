"""One-shot commands of the scale-out stack (docker-compose.yml), runnable as
``python -m streams.deploy_cmds create-topics|ping``.

* ``create-topics``: wait for the broker, then create every topic of :mod:`streams.contracts.topics` with
  the configured prefix, partitions (``RAPPORT_PARTITIONS``) and replication
  (``RAPPORT_REPLICATION_FACTOR``); existing topics are kept (a changed partition count would move
  account keys between partitions) and a mismatch is reported.
* ``ping``: exit 0 when the broker and the store answer (the workers' healthcheck).

Meant to be mounted in the CLI as ``rapport topics create`` (:func:`create_topics`).
"""

from __future__ import annotations

import sys
import urllib.request

from streams.contracts.topics import full_names
from streams.settings import Settings, load_settings


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


def main(argv: list[str]) -> int:
    settings = load_settings()
    if argv == ["create-topics"]:
        created = create_topics(settings)
        print(f"created {len(created)} topic(s) with {settings.partitions} partition(s): "
              + (", ".join(created) or "all existed"), flush=True)
        return 0
    if argv == ["ping"]:
        return 0 if ping(settings) else 1
    print("usage: python -m streams.deploy_cmds create-topics|ping", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
