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
    record_max_bytes: int = Field(
        1_048_576, ge=65_536,
        description="The broker's record limit (bytes); the compose broker's message.max.bytes.")
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

    # --- ingest agents ---
    # `rapport ingest <platform>` (streams/ingest/, docs/ingest.md). Every base URL is a setting
    # so tests point the agents at loopback servers; every credential is a SecretStr.
    ingest_backoff_initial_s: float = Field(1.0, gt=0, description="Agents: first reconnect delay (doubles).")
    ingest_backoff_max_s: float = Field(60.0, gt=0, description="Agents: longest reconnect delay.")
    ingest_max_wait_s: float = Field(900.0, gt=0, description="Agents: longest rate-limit wait honoured at once.")
    ingest_stall_s: float = Field(90.0, gt=0, description="Agents: reconnect when a stream is silent this long.")
    ingest_http_timeout_s: float = Field(30.0, gt=0, description="Agents: connect/read timeout of a request.")
    ingest_status_interval_s: float = Field(2.0, gt=0, description="Agents: status file refresh period.")
    ingest_status_log_s: float = Field(60.0, gt=0, description="Agents: status line log period.")
    ingest_cursor_refresh_s: float = Field(30.0, gt=0, description="Agents: re-read the archive cursor period.")
    ingest_rewind_s: float = Field(5.0, ge=0, description="Jetstream: resume this far before the archived cursor.")
    ingest_lookback_s: float = Field(7 * 86400.0, gt=0, description="Agents: how far back the archive is searched.")
    ingest_backfill_pages: int = Field(5, ge=0, description="Agents: pages fetched at most to close a gap.")
    bluesky_jetstream_url: str = Field("wss://jetstream2.us-east.bsky.network/subscribe",
                                       description="Jetstream subscribe URL.")
    bluesky_filter: bool = Field(True, description="Publish only Jetstream events naming a tracked DID or tag.")
    bluesky_only_tracked_dids: bool = Field(False, description="Ask Jetstream for tracked DIDs' own records only.")
    bluesky_resolve_handles: bool = Field(False, description="Jetstream: add authors' handles (AppView lookups).")
    bluesky_appview_url: str = Field("https://public.api.bsky.app", description="Bluesky AppView base URL.")
    bluesky_handle_cache_size: int = Field(100_000, ge=1, description="Jetstream: DIDs whose handle is cached.")
    bluesky_handle_ttl_s: float = Field(6 * 3600.0, gt=0, description="Jetstream: how long a cached handle holds.")
    bluesky_resolve_timeout_s: float = Field(5.0, gt=0, description="Jetstream: timeout of a handle lookup.")
    mastodon_url: str = Field("https://mastodon.social", description="Mastodon server of the tracked accounts.")
    mastodon_urls: dict[str, str] = Field(default_factory=dict, description="Server per account id (JSON).")
    mastodon_streaming_url: str | None = Field(None, description="Streaming API base; default: the server.")
    mastodon_access_token: SecretStr | None = Field(None, description="Token of the (one) tracked account.")
    mastodon_access_tokens: dict[str, SecretStr] = Field(default_factory=dict,
                                                         description="Token per account id or handle (JSON).")
    x_api_url: str = Field("https://api.x.com", description="X API base URL.")
    x_bearer_token: SecretStr | None = Field(None, description="X app-only bearer token.")
    x_replace_rules: bool = Field(True, description="Delete filtered-stream rules the clients file does not imply.")
    reddit_auth_url: str = Field("https://www.reddit.com", description="Reddit token endpoint base URL.")
    reddit_api_url: str = Field("https://oauth.reddit.com", description="Reddit OAuth API base URL.")
    reddit_client_id: str | None = Field(None, description="Reddit app (script) client id.")
    reddit_client_secret: SecretStr | None = Field(None, description="Reddit app secret.")
    reddit_username: str | None = Field(None, description="One tracked account's username.")
    reddit_password: SecretStr | None = Field(None, description="That account's password.")
    reddit_passwords: dict[str, SecretStr] = Field(default_factory=dict, description="Password per username (JSON).")
    reddit_user_agent: str = Field("python:rapport:0.1 (conversation analytics)", description="Reddit User-Agent.")
    reddit_poll_interval_s: float = Field(30.0, gt=0, description="Reddit: seconds between polls.")
    meta_app_secret: SecretStr | None = Field(None, description="Meta app secret: checks webhook signatures.")
    instagram_app_secret: SecretStr | None = Field(None, description="Instagram app secret, if another app.")
    meta_verify_token: SecretStr | None = Field(None, description="Webhook subscription verify token.")
    instagram_graph_url: str = Field("https://graph.facebook.com", description="Graph API base URL (mentions).")
    instagram_api_version: str = Field("v21.0", description="Graph API version of mention lookups.")
    instagram_access_token: SecretStr | None = Field(None, description="Token to complete Instagram mentions.")
    instagram_access_tokens: dict[str, SecretStr] = Field(default_factory=dict,
                                                          description="Token per Instagram account id (JSON).")
    instagram_complete_timeout_s: float = Field(5.0, gt=0, description="Webhook: timeout of a mention lookup.")
    webhook_host: str = Field("127.0.0.1", description="Webhook receiver bind address.")
    webhook_port: int = Field(8787, ge=0, le=65535, description="Webhook receiver port.")
    webhook_path: str = Field("/webhooks/meta", description="Webhook receiver path.")
    webhook_max_body_bytes: int = Field(1024 * 1024, gt=0, description="Webhook: largest body accepted (413).")

    # --- detection ---
    # Threads, conversations, responses and alerts in the sink (docs/architecture.md "Detection").
    live_window_s: float = Field(3600.0, gt=0, description="Detection: an account whose latest event time is "
                                 "this close to the clock is live (deadlines swept at the clock).")
    state_horizon_s: float = Field(7 * 86400.0, gt=0, description="Detection: evict threads idle this long "
                                   "(raised to the longest SLA of the clients file).")
    sweep_interval_s: float = Field(0.5, gt=0, description="Detection: deadline sweep timer period.")
    evict_interval_s: float = Field(30.0, gt=0, description="Detection: how often idle threads are evicted.")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with the non-``None`` overrides applied (CLI flags)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
