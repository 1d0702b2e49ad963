"""What every command shares: the Typer set-up, the common options, settings with logging,
and error output.

Kept apart from :mod:`streams.cli` so that the command groups ``cli`` mounts
(``streams.grafana.cli``, ``streams.ingest.cli``) import this and not the app itself: ``cli``
imports them, so importing ``cli`` back would be an import cycle
(``tests/unit/test_import_cycles.py``).
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streams.clients import ClientsFile
from streams.errors import RapportError
from streams.settings import Settings, load_settings

err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data dir (default .rapport/, or RAPPORT_DATA_DIR).")]
ClientsOpt = Annotated[Path | None, typer.Option("--clients", help="Clients file (TOML), or RAPPORT_CLIENTS.")]


def command_group(help: str) -> typer.Typer:
    """A Typer for ``rapport`` or one of its groups: all set up alike, so every command
    behaves alike (no shell-completion options, help when called bare, no locals in
    tracebacks since a frame may hold a password: docs/store.md, Security)."""
    return typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False, help=help)


# Libraries whose INFO lines drown an ingest program's own (one per HTTP request or frame).
NOISY_LIBRARIES = ("httpx", "httpcore", "websockets", "aiohttp.access", "kafka", "aiokafka")


def _settings(data_dir: Path | None, clients: Path | None, *, quiet_libraries: bool = False,
              **overrides: object) -> Settings:
    """The settings of one command, with logging set up and, when a Rapport process started
    this one, a watch that ends it with its parent."""
    from streams.embedded.lifecycle import watch_supervisor

    settings = load_settings(data_dir=data_dir, clients=clients, **overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if quiet_libraries:
        for noisy in NOISY_LIBRARIES:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if settings.supervisor_pid is not None:  # started by a Rapport process: die with it
        watch_supervisor(settings.supervisor_pid)
    return settings


def _clients(settings: Settings) -> ClientsFile:
    from streams.clients import load_clients
    from streams.errors import ConfigError

    if settings.clients is None:
        raise ConfigError("no clients file: pass --clients FILE or set RAPPORT_CLIENTS")
    return load_clients(settings.clients)


@contextmanager
def _friendly():  # type: ignore[no-untyped-def]
    """Expected errors print one clear line and exit 2; no stack trace for users."""
    try:
        yield
    except RapportError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
