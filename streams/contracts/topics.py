"""Every topic Rapport uses, declared once.

Names are logical (``interactions``) and get the configured prefix (``rapport.``) when
they become Kafka topics, so tenants and tests isolate by prefix. The same list feeds the
admin code that creates topics (on Tansu *and* Apache Kafka: faust never creates source
topics, and Tansu would auto-create them with 4 partitions whatever we want) and the faust
topic objects in :mod:`streams.app`.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.clients import PLATFORMS
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str  # logical name, without the prefix
    doc: str


RAW_PREFIX = "raw."
INTERACTIONS = "interactions"
DLQ = "dlq"
THREADS = "threads"
CONVERSATIONS = "conversations"
ALERTS = "alerts"

TOPICS: tuple[TopicSpec, ...] = (
    *(TopicSpec(f"{RAW_PREFIX}{p}", f"{p} payloads as received (one, or a JSON array)") for p in PLATFORMS),
    TopicSpec(INTERACTIONS, "normalized interactions, keyed client_id:account_id, many per record"),
    TopicSpec(DLQ, "payloads that could not be parsed or processed, with the reason and origin"),
    TopicSpec(THREADS, "thread updates from detection"),
    TopicSpec(CONVERSATIONS, "conversation updates from detection"),
    TopicSpec(ALERTS, "unanswered-mention alerts"),
)


def raw_topic(platform: str) -> str:
    """Logical name of a platform's raw topic."""
    return f"{RAW_PREFIX}{platform}"


def platform_of(topic: str, settings: Settings) -> str:
    """The platform of a full raw topic name, e.g. ``rapport.raw.reddit`` -> ``reddit``."""
    return topic.removeprefix(settings.topic(RAW_PREFIX))


def full_names(settings: Settings) -> list[str]:
    """Every topic name with the prefix applied."""
    return [settings.topic(spec.name) for spec in TOPICS]
