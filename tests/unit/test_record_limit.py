"""One record limit: the compose broker, the publisher, faust and the agents agree (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import orjson

from streams.agents.envelopes import bounded_dead_letter, split_rows
from streams.app import create_app
from streams.limits import payload_max_bytes, producer_max_bytes, record_budget
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def kafka_env() -> dict[str, str]:
    lines = (REPO / "deploy" / "kafka" / "kafka.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_compose_broker_uses_the_code_s_record_limit() -> None:
    limit = Settings().record_max_bytes
    env = kafka_env()
    assert int(env["KAFKA_MESSAGE_MAX_BYTES"]) == limit
    assert int(env["KAFKA_REPLICA_FETCH_MAX_BYTES"]) == limit


def test_every_compose_service_uses_the_broker_s_limit() -> None:
    """The scale-out stack: each Rapport service states the limit Kafka enforces, and what the
    publisher sends under it (requests, joined arrays) stays below message.max.bytes."""
    import yaml

    from streams.ingest.publisher import Publisher

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    broker_limit = int(kafka_env()["KAFKA_MESSAGE_MAX_BYTES"])
    services = {n: s for n, s in compose["services"].items() if str(s.get("image", "")).startswith("rapport:")}
    assert services
    for name, service in services.items():
        assert int(service["environment"]["RAPPORT_RECORD_MAX_BYTES"]) == broker_limit, name
    settings = Settings(record_max_bytes=broker_limit, publish_batch=200)
    assert producer_max_bytes(settings) < broker_limit
    publisher = Publisher.__new__(Publisher)  # no broker: what it would send is collected
    publisher.settings, publisher.payload_max = settings, payload_max_bytes(settings)
    publisher.pending, publisher.pending_bytes, publisher.keys = {}, {}, None
    publisher.refused = publisher.payloads = publisher.records = 0
    publisher.pending_since = None
    sent: list[bytes] = []
    publisher._send = lambda platform, value, *a, **k: sent.append(value)  # type: ignore[method-assign]
    for i in range(600):  # 200 payloads of 20 KB would make a 4 MB array
        publisher.add("reddit", orjson.dumps({"i": i, "pad": "x" * 20_000}), "poll", 1_790_000_000_000)
    publisher.flush_arrays()
    assert sent and max(len(v) for v in sent) <= producer_max_bytes(settings)
    assert sum(len(orjson.loads(v)) for v in sent) == 600


def test_faust_producer_and_consumer_derive_from_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, record_max_bytes=2_000_000)
    app = create_app(settings, "tansu://127.0.0.1:1")
    assert app.conf.producer_max_request_size == producer_max_bytes(settings) < settings.record_max_bytes
    assert app.conf.consumer_max_fetch_size == settings.record_max_bytes
    assert record_budget(settings) < producer_max_bytes(settings)
    assert payload_max_bytes(settings) < producer_max_bytes(settings)


def test_a_dead_letter_of_nuls_fits_in_bytes() -> None:
    budget = record_budget(Settings())
    dead = {"reason": "x", "platform": "reddit", "payload": "\u0000" * 262_144}
    value = bounded_dead_letter(dead, budget)
    assert len(value) <= budget
    decoded = orjson.loads(value)
    assert decoded["truncated"] is True and set(decoded["payload"]) == {"\u0000"}
    small = bounded_dead_letter({"payload": "ok"}, budget)
    assert orjson.loads(small) == {"payload": "ok"}


def test_split_records_stay_within_the_budget() -> None:
    rows = [["a" * 1000, i] for i in range(3000)]
    for value in split_rows(b"{", {"i": rows, "c": []}, budget=100_000):
        assert len(value) <= 100_000
