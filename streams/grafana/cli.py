"""``rapport grafana``: render the committed files, check them, provision a local Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streams.commands import command_group
from streams.errors import RapportError
from streams.grafana import provision
from streams.grafana.alerts import DEFAULT_WEBHOOK_URL

grafana_app = command_group("Grafana boards, alert rules and provisioning (docs/grafana.md).")
err = Console(stderr=True)


@grafana_app.command()
def render(out: Annotated[Path, typer.Option(help="Where the committed files live.")] = provision.DEPLOY_DIR,
           ) -> None:
    """Re-render deploy/grafana (dashboards, datasource, alerting) from streams/grafana."""
    written = provision.write(out, provision.committed())
    err.print(f"wrote {len(written)} files under {out}")


@grafana_app.command()
def check(out: Annotated[Path, typer.Option(help="Where the committed files live.")] = provision.DEPLOY_DIR,
          ) -> None:
    """Exit 1 when deploy/grafana differs from a fresh render."""
    stale = provision.stale(out)
    for rel in stale:
        err.print(f"[red]stale:[/red] {out / rel}")
    raise typer.Exit(1 if stale else 0)


@grafana_app.command(name="provision")
def provision_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory for Grafana's provisioning files.")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data dir of the running stack.")] = None,
    clients: Annotated[Path | None, typer.Option("--clients", help="Clients file: one alert route each.")] = None,
    store_url: Annotated[str | None, typer.Option(help="Store URL (default: RAPPORT_STORE_URL or the running stack's).")
                         ] = None,
    webhook_url: Annotated[str, typer.Option(help="Where the webhook contact point posts alerts.")
                           ] = DEFAULT_WEBHOOK_URL,
) -> None:
    """Write datasource, dashboards and alerting files for a Grafana on this machine."""
    from streams.clients import load_clients
    from streams.embedded.credentials import client_login, strip_credentials
    from streams.settings import load_settings
    from streams.store.client import store_url as resolve_store_url

    try:
        settings = load_settings(data_dir=data_dir, clients=clients, store_url=store_url)
        url = resolve_store_url(settings)
        ids = [c.id for c in load_clients(settings.clients).clients] if settings.clients else []
        user, password = client_login(url, settings, "reader")  # Grafana only reads
        target = provision.Target.for_store(strip_credentials(url), settings.store_database, user,
                                            password, out, webhook_url)
        written = provision.write(out, provision.render(target, ids), mode=0o600)
    except RapportError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    err.print(f"wrote {len(written)} files; datasource -> {strip_credentials(url)} as {user} "
              f"(database {settings.store_database})")
    err.print(f"point Grafana at them: GF_PATHS_PROVISIONING={(out / 'provisioning').resolve()} "
              "(then restart Grafana; see docs/grafana.md)")
