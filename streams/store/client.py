"""Opening a clickhouse-connect client on the configured or running store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from rich.console import Console

from streams.embedded.credentials import Role, client_login, strip_credentials
from streams.embedded.stackfile import read_stack
from streams.errors import StackError
from streams.settings import Settings
from streams.store.bounded import bound


def store_url(settings: Settings) -> str:
    """The store URL: from settings, else from the running stack of the data dir."""
    if settings.store_url:
        return settings.store_url
    info = read_stack(settings.data_dir)
    if info is None:
        raise StackError(
            f"no store is running for data dir {settings.data_dir}; start `rapport up` "
            "or set RAPPORT_STORE_URL"
        )
    return info.store_url


def broker_url(settings: Settings) -> str:
    """The broker URL: from settings, else from the running stack of the data dir."""
    if settings.broker_url:
        return settings.broker_url
    info = read_stack(settings.data_dir)
    if info is None:
        raise StackError(
            f"no broker is running for data dir {settings.data_dir}; start `rapport up` "
            "or set RAPPORT_BROKER_URL"
        )
    return info.broker_url


def connect(url: str, settings: Settings, database: str | None = "", role: Role = "pipeline",
            **kwargs: object) -> Client:
    """A clickhouse-connect client for ``url`` logged in as ``role`` (credentials as
    :func:`~streams.embedded.credentials.client_login` finds them); ``database=None`` opens
    no database. Messages name the URL without its credentials."""
    parsed = urlparse(url)
    shown = strip_credentials(url) if parsed.scheme in ("http", "https") else "(not an http URL)"
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise StackError(f"store URL {shown!r} is not http(s)://host:port")
    db = settings.store_database if database == "" else database
    username, password = client_login(url, settings, role)
    try:
        client = clickhouse_connect.get_client(
            host=parsed.hostname,
            port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
            secure=parsed.scheme == "https",
            username=username,
            password=password,
            database=db or "",
            compress=False,
            connect_timeout=10,
            send_receive_timeout=300,
            **kwargs,  # type: ignore[arg-type]
        )
    except Exception as exc:  # noqa: BLE001 - clickhouse-connect raises many types here
        text = str(exc).replace(password, "***") if password else str(exc)
        raise StackError(f"cannot reach the store at {shown}: {text}") from None
    return bound(client, settings.store_max_query_bytes)  # type: ignore[arg-type]


@contextmanager
def store_for(settings: Settings, console: Console, role: Role = "reader") -> Iterator[Client]:
    """A client on the configured or running stack's store, or on the data dir's store opened here.

    Commands that only read (`rapport query`, `rapport report`) work without a running
    stack: the store is then served by this process for as long as the client is open.
    They log in as the reader unless ``role`` says otherwise (``rapport query --write``).
    """
    server = None
    if settings.store_url:
        url = settings.store_url
    elif (info := read_stack(settings.data_dir)) is not None:
        url = info.store_url
    else:
        from streams.embedded.credentials import load_or_create
        from streams.embedded.store import StoreServer

        console.print(f"no stack runs for {settings.data_dir}; opening its store directly", style="dim")
        server = StoreServer(Path(settings.data_dir) / "store",
                             users=load_or_create(Path(settings.data_dir), settings),
                             allowed_origins=settings.store_allowed_origins)
        server.start()
        url = server.url
    try:
        client = connect(url, settings, role=role)
        try:
            yield client
        finally:
            client.close()
    finally:
        if server is not None:
            server.stop()
