"""Which ingest agents to start for a clients file, and a clear line for each one that is not.

An agent starts when the clients file tracks an account on its platform and the
credentials it needs are set; a missing credential is a note (one line naming the
environment variable), never a crash. ``rapport up`` starts the planned agents as
``rapport <argv>`` children; ``rapport ingest <name>`` checks the same on its own start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from streams.clients import ClientsFile
from streams.settings import Settings

# Agent name -> the platforms it reads.
AGENTS: dict[str, tuple[str, ...]] = {
    "bluesky": ("bluesky",),
    "mastodon": ("mastodon",),
    "x": ("x",),
    "webhooks": ("facebook", "instagram"),
    "reddit": ("reddit",),
}


@dataclass(frozen=True)
class AgentSpec:
    """One agent to run: its name (status file ``<data_dir>/agents/<name>.json``) and the
    arguments of ``rapport`` that run it."""

    name: str
    argv: list[str] = field(default_factory=list)


def readiness(name: str, settings: Settings, clients: ClientsFile) -> tuple[bool, list[str]]:
    """Whether agent ``name`` has work and credentials, and the notes to show about it."""
    if not clients.platforms() & set(AGENTS[name]):
        return False, []
    if name == "bluesky":
        return True, []  # Jetstream is public
    if name == "x":
        if settings.x_bearer_token is None:
            return False, ["x: RAPPORT_X_BEARER_TOKEN is not set; the X agent is not started"]
        return True, []
    if name == "mastodon":
        from streams.ingest.mastodon import plan_readers

        readers, notes = plan_readers(settings, clients)
        if not readers:
            return False, ["mastodon: RAPPORT_MASTODON_ACCESS_TOKEN (or RAPPORT_MASTODON_ACCESS_TOKENS) is not set; "
                           "the Mastodon agent is not started"]
        return True, notes
    if name == "reddit":
        missing = [var for var, value in (("RAPPORT_REDDIT_CLIENT_ID", settings.reddit_client_id),
                                          ("RAPPORT_REDDIT_CLIENT_SECRET", settings.reddit_client_secret))
                   if not value]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            return False, [f"reddit: {' and '.join(missing)} {verb} not set; the Reddit agent is not started"]
        from streams.ingest.reddit import plan_listings

        listings, notes = plan_listings(settings, clients)
        if not listings:
            return False, [*notes, "reddit: no account has a password and none listens to a subreddit; "
                                   "the Reddit agent is not started"]
        return True, notes
    if name == "webhooks":
        if settings.meta_app_secret is None and settings.instagram_app_secret is None:
            return False, ["webhooks: RAPPORT_META_APP_SECRET is not set; the Facebook/Instagram webhook receiver "
                           "is not started"]
        if settings.meta_verify_token is None:
            return True, ["webhooks: RAPPORT_META_VERIFY_TOKEN is not set; Meta's subscription check (GET) "
                          "will be refused, deliveries are received"]
        return True, []
    raise KeyError(name)


def agent_argv(name: str, settings: Settings) -> list[str]:
    argv = ["ingest", name, "--data-dir", str(Path(settings.data_dir).resolve())]
    if settings.clients is not None:
        argv += ["--clients", str(Path(settings.clients).resolve())]
    return argv


def planned_agents(settings: Settings, clients: ClientsFile) -> tuple[list[AgentSpec], list[str]]:
    """The agents to start (in a fixed order) and one line per thing worth knowing."""
    specs: list[AgentSpec] = []
    notes: list[str] = []
    for name in AGENTS:
        start, why = readiness(name, settings, clients)
        notes.extend(why)
        if start:
            specs.append(AgentSpec(name, agent_argv(name, settings)))
    return specs, notes
