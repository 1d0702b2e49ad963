"""The one settings object. Nothing else in Rapport reads ``os.environ``.

Every value can come from a ``RAPPORT_*`` environment variable; CLI flags override
them (``--data-dir``, ``--clients``). Secrets are ``SecretStr`` so they never reach a log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration shared by every Rapport process."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_", extra="ignore")

    data_dir: Path = Field(Path(".rapport"), description="Where the embedded stack keeps its data.")
    clients: Path | None = Field(None, description="The clients file (TOML).")
    broker_url: str | None = Field(
        None, description="Kafka bootstrap, e.g. kafka://localhost:9092; default: the running stack's."
    )
    store_url: str | None = Field(
        None, description="ClickHouse HTTP URL, e.g. http://localhost:8123; default: the running stack's."
    )
    store_database: str = Field("rapport", description="ClickHouse database holding Rapport's tables.")
    store_user: str = "default"
    store_password: SecretStr = SecretStr("")
    topic_prefix: str = Field("rapport", description="Prefix of every topic name; isolates tenants and tests.")
    partitions: int = Field(4, ge=1, le=256, description="Partitions of each topic Rapport creates.")
    replication_factor: int = Field(1, ge=1)
    batch_size: int = Field(5000, ge=1, description="Sink: rows per insert (at most).")
    batch_delay_s: float = Field(0.25, gt=0, description="Sink: longest wait before a partial batch is written.")
    publish_batch: int = Field(200, ge=1, description="Payloads per raw record when publishing arrays.")
    publish_linger_s: float = Field(0.1, gt=0, description="Longest wait before a partial array is published.")
    app_id: str = Field("rapport", description="Faust app id (the consumer group).")
    worker_web_port: int | None = Field(None, description="Faust web port; default: disabled.")
    log_level: str = "INFO"

    def masked(self) -> dict[str, Any]:
        """All settings as a dict with secrets masked, fit for logs."""
        out: dict[str, Any] = {}
        for key, value in self.model_dump().items():
            out[key] = "***" if isinstance(value, SecretStr) else value
        return out

    def topic(self, name: str) -> str:
        """The full topic name for a logical name such as ``interactions`` or ``raw.reddit``."""
        return f"{self.topic_prefix}.{name}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with the non-``None`` overrides applied (CLI flags)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
