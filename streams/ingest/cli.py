"""`rapport ingest <platform>`: one long-running agent per command (mounted by streams.cli).

Each command reads the settings and the clients file, checks the agent's credentials (a
missing one is one clear line and exit status 2, never a trace), finds the running stack's
broker and store, and runs the agent until SIGTERM or Ctrl-C, flushing what it read.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streams.clients import ClientsFile
from streams.commands import ClientsOpt, DataDir, _clients, _settings, command_group
from streams.errors import RapportError
from streams.ingest.plan import AGENTS, readiness
from streams.ingest.runtime import Agent, Context, run_agent
from streams.malloc_arenas import limit_malloc_arenas
from streams.settings import Settings

ingest_app = command_group("Ingest agents: read a platform live, publish its payloads to rapport.raw.<platform>.")
err = Console(stderr=True, soft_wrap=True, highlight=False)  # a note stays one line

async def _serve(make: Callable[[Context], Agent], name: str, settings: Settings, clients: ClientsFile,
                 broker: str, store: str, notes: list[str]) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await run_agent(make, name, settings, clients, broker, store, notes)
    except asyncio.CancelledError:
        pass


def start(name: str, make: Callable[[Context], Agent], data_dir: Path | None, clients: Path | None,
          **overrides: object) -> None:
    """Check, then run agent ``name``; exit 2 with one line when it cannot start."""
    from streams.store.client import broker_url, store_url

    try:
        settings = _settings(data_dir, clients, quiet_libraries=True, **overrides)
        clients_file = _clients(settings)
        ok, notes = readiness(name, settings, clients_file)
        if not ok:
            for note in notes:
                err.print(note, markup=False)
            if not notes:
                err.print(f"{name}: the clients file tracks no {' or '.join(AGENTS[name])} account; nothing to do",
                          markup=False)
                raise typer.Exit(0)
            raise typer.Exit(2)
        broker, store = broker_url(settings), store_url(settings)
    except RapportError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    limit_malloc_arenas(settings.malloc_arena_max)  # before the threads exist
    try:
        asyncio.run(_serve(make, name, settings, clients_file, broker, store, notes))
    except RapportError as exc:  # the broker or the store went away: one line, and a restart resumes
        err.print(f"[red]error:[/red] {name}: {exc}")
        raise typer.Exit(1) from None


@ingest_app.command()
def bluesky(data_dir: DataDir = None, clients: ClientsOpt = None) -> None:
    """Read Bluesky's Jetstream (posts, likes, reposts, follows) concerning the tracked accounts."""
    from streams.ingest.bluesky import BlueskyAgent

    start("bluesky", BlueskyAgent, data_dir, clients)


@ingest_app.command()
def mastodon(data_dir: DataDir = None, clients: ClientsOpt = None) -> None:
    """Read the tracked accounts' Mastodon user streams and listened hashtags (SSE), with REST backfill."""
    from streams.ingest.mastodon import MastodonAgent

    start("mastodon", MastodonAgent, data_dir, clients)


@ingest_app.command()
def x(data_dir: DataDir = None, clients: ClientsOpt = None) -> None:
    """Read the X API v2 filtered stream for the tracked accounts and listen rules, with search backfill."""
    from streams.ingest.x import XAgent

    start("x", XAgent, data_dir, clients)


@ingest_app.command()
def webhooks(data_dir: DataDir = None, clients: ClientsOpt = None,
             host: Annotated[str | None, typer.Option(help="Bind address (default RAPPORT_WEBHOOK_HOST).")] = None,
             port: Annotated[int | None, typer.Option(help="Port (default RAPPORT_WEBHOOK_PORT).")] = None) -> None:
    """Receive Facebook Page and Instagram webhooks (signed deliveries only)."""
    from streams.ingest.webhooks import WebhookAgent

    start("webhooks", WebhookAgent, data_dir, clients, webhook_host=host, webhook_port=port)


@ingest_app.command()
def reddit(data_dir: DataDir = None, clients: ClientsOpt = None) -> None:
    """Poll the tracked Reddit accounts' inboxes and their listened subreddits."""
    from streams.ingest.reddit import RedditAgent

    start("reddit", RedditAgent, data_dir, clients)
