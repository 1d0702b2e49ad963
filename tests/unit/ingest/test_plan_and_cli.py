"""Which agents start, the notes about the others, and the CLI's clear line for a missing credential."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from streams.clients import load_clients
from streams.ingest.cli import ingest_app
from streams.ingest.plan import AgentSpec, planned_agents
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "clients.example.toml"  # every platform; reddit and x accounts on two clients


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RAPPORT_"):
            monkeypatch.delenv(name)


def test_without_credentials_only_bluesky_starts_and_each_other_agent_says_why(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, clients=EXAMPLE)
    specs, notes = planned_agents(settings, load_clients(EXAMPLE))
    assert specs == [AgentSpec("bluesky", ["ingest", "bluesky", "--data-dir", str(tmp_path.resolve()),
                                           "--clients", str(EXAMPLE.resolve())])]
    assert notes == [
        "mastodon: RAPPORT_MASTODON_ACCESS_TOKEN (or RAPPORT_MASTODON_ACCESS_TOKENS) is not set; "
        "the Mastodon agent is not started",
        "x: RAPPORT_X_BEARER_TOKEN is not set; the X agent is not started",
        "webhooks: RAPPORT_META_APP_SECRET is not set; the Facebook/Instagram webhook receiver is not started",
        "reddit: RAPPORT_REDDIT_CLIENT_ID and RAPPORT_REDDIT_CLIENT_SECRET are not set; "
        "the Reddit agent is not started",
    ]


def test_with_credentials_every_platform_of_the_clients_file_gets_its_agent(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, clients=EXAMPLE, x_bearer_token=SecretStr("x"),
                        mastodon_access_token=SecretStr("m"), meta_app_secret=SecretStr("s"),
                        reddit_client_id="id", reddit_client_secret=SecretStr("s"),
                        reddit_passwords={"acme_official": SecretStr("pw")})
    specs, notes = planned_agents(settings, load_clients(EXAMPLE))
    assert [s.name for s in specs] == ["bluesky", "mastodon", "x", "webhooks", "reddit"]
    assert all(s.argv[:2] == ["ingest", s.name] for s in specs)
    assert notes == [
        "webhooks: RAPPORT_META_VERIFY_TOKEN is not set; Meta's subscription check (GET) will be refused, "
        "deliveries are received",
        "reddit: no password for u/initech_help (RAPPORT_REDDIT_PASSWORDS); its inbox is not polled",
    ]


def test_agents_for_platforms_nobody_tracks_are_not_planned(tmp_path: Path) -> None:
    clients = tmp_path / "clients.toml"
    clients.write_text('[[clients]]\nid = "a"\n[[clients.accounts]]\nplatform = "reddit"\naccount_id = "a"\n')
    specs, notes = planned_agents(Settings(data_dir=tmp_path, clients=clients), load_clients(clients))
    assert specs == [] and len(notes) == 1 and notes[0].startswith("reddit: RAPPORT_REDDIT_CLIENT_ID")


@pytest.mark.parametrize(("command", "line"), [
    ("x", "x: RAPPORT_X_BEARER_TOKEN is not set; the X agent is not started"),
    ("mastodon", "mastodon: RAPPORT_MASTODON_ACCESS_TOKEN (or RAPPORT_MASTODON_ACCESS_TOKENS) is not set; "
                 "the Mastodon agent is not started"),
    ("reddit", "reddit: RAPPORT_REDDIT_CLIENT_ID and RAPPORT_REDDIT_CLIENT_SECRET are not set; "
               "the Reddit agent is not started"),
    ("webhooks", "webhooks: RAPPORT_META_APP_SECRET is not set; the Facebook/Instagram webhook receiver "
                 "is not started"),
])
def test_a_missing_credential_is_one_clear_line_not_a_crash(tmp_path: Path, command: str, line: str) -> None:
    result = CliRunner().invoke(ingest_app, [command, "--data-dir", str(tmp_path), "--clients", str(EXAMPLE)])
    assert result.exit_code == 2
    assert result.output.strip() == line
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_agent_without_a_running_stack_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(ingest_app, ["bluesky", "--data-dir", str(tmp_path), "--clients", str(EXAMPLE)])
    assert result.exit_code == 2
    assert "no broker is running" in result.output and "Traceback" not in result.output


def test_an_agent_with_nothing_to_read_exits_quietly(tmp_path: Path) -> None:
    clients = tmp_path / "clients.toml"
    clients.write_text('[[clients]]\nid = "a"\n[[clients.accounts]]\nplatform = "reddit"\naccount_id = "a"\n')
    result = CliRunner().invoke(ingest_app, ["bluesky", "--data-dir", str(tmp_path), "--clients", str(clients)])
    assert result.exit_code == 0
    assert "tracks no bluesky account; nothing to do" in result.output
