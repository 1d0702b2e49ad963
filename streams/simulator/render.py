"""The base of the simulator's platform renderers: abstract messages -> native payloads.

A renderer knows one platform's id forms and payload shapes (as the fixtures in
``shared/fixtures`` show them) and what that platform can deliver at all: X's filtered
stream carries no likes or follows, Instagram's webhook never shows the media itself,
Facebook and Instagram nest comments two levels deep. The traffic model in
``traffic.py`` asks these capability flags before it schedules anything.
"""

from __future__ import annotations

import json
import random
from typing import Any

from streams.clients import Client, TrackedAccount
from streams.simulator.world import Account, Actor, Ids, Msg, Out, ascii_fold


def dumps(obj: Any) -> str:
    """JSON as a streaming server sends it: compact, UTF-8 kept as is."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class Renderer:
    """One platform; shared by all tracked accounts on it so actor ids never collide."""

    platform = ""
    likes = False
    reposts = False
    follows = False
    deletes = False
    edits = False
    quotes = False
    extras = False  # events that concern no metric (Jetstream identity/account)
    listens_tags = False  # hashtag or keyword listens reach the account on this platform
    text_mentions = True  # a text can name an account (Facebook only shows names)
    flat = False  # comments nest two levels at most (Facebook, Instagram)
    roots_emitted = True  # Instagram: the media a thread hangs on is never delivered
    mention_starts_thread = True  # else a mention is a comment on one of the brand's posts
    # X and Mastodon add leading mentions to replies by themselves; there a reply
    # addresses only its parent's author, whatever it mentions.
    reply_mentions_address = True
    reply_mention_prob = 0.0  # a person's reply to the brand also names the brand
    answer_mention_prob = 0.0  # the brand's answer names the person
    mention_elsewhere_rate = 0.0  # Instagram: a mention in a comment on someone else's media

    def __init__(self, ids: Ids, rng: random.Random) -> None:
        self.ids = ids
        self.rng = rng
        self._taken: set[str] = set()
        self._ids_taken: set[str] = set()

    # --- actors ------------------------------------------------------------------------
    def brand(self, client: Client, acc: TrackedAccount) -> Actor:
        handle = acc.handle.strip().lstrip("@") or client.id.lower()
        self._taken.add(handle.lower())
        self._ids_taken.add(acc.account_id)
        return Actor(id=acc.account_id, handle=handle, name=client.name or handle, brand=True)

    def person(self, first: str, last: str, brand: Actor) -> Actor:
        raise NotImplementedError

    def handle_for(self, first: str, last: str, sep: str = "_", limit: int = 20) -> str:
        """A unique, ASCII handle in one of the shapes people pick."""
        f, la = ascii_fold(first).lower(), ascii_fold(last).lower()
        shapes = (f, f + sep + la, f + str(self.rng.randrange(10, 100)),
                  f + sep + str(self.rng.randrange(1970, 2010)), la + f[:1])
        handle = self.rng.choice(shapes)[:limit]
        while handle.lower() in self._taken:
            handle = (f[: limit - 5] + sep + str(self.rng.randrange(100, 10_000)))[:limit]
        self._taken.add(handle.lower())
        return handle

    def numeric_id(self, low: int, high: int) -> str:
        while True:
            value = str(self.rng.randrange(low, high))
            if value not in self._ids_taken:
                self._ids_taken.add(value)
                return value

    # --- events ------------------------------------------------------------------------
    def source(self, msg: Msg) -> str:
        """A thread's root that lives in a listened source came through that source;
        everything else reaches the account through its own stream."""
        th = msg.thread
        return f"listen:{th.listen}" if th.listen and msg is th.root else "stream"

    def out(self, payload: dict[str, Any], source: str, event_ms: int, via: str | None = None,
            ref: str | None = None, parent_ref: str | None = None) -> Out:
        return Out(self.platform, payload, source, event_ms, via, ref, parent_ref)

    def post(self, msg: Msg) -> list[Out]:
        """Give ``msg`` its id and render it; an empty list when it is never delivered."""
        raise NotImplementedError

    def like(self, account: Account, actor: Actor, target: Msg, t: int) -> list[Out]:
        return []

    def repost(self, account: Account, actor: Actor, target: Msg, t: int) -> list[Out]:
        return []

    def follow(self, account: Account, actor: Actor, t: int) -> list[Out]:
        return []

    def delete(self, msg: Msg, t: int) -> list[Out]:
        return []

    def edit(self, msg: Msg, t: int) -> list[Out]:
        return []

    def extra(self, account: Account, actor: Actor, t: int) -> list[Out]:
        return []

    def mention_elsewhere(self, account: Account, actor: Actor, t: int) -> list[Out]:
        return []


def lead_mentions(msg: Msg) -> list[Actor]:
    """Mentions a reply carries by itself on X and Mastodon: the parent's author and
    whoever the parent mentioned, the replying author left out."""
    parent = msg.parent
    if parent is None:
        return []
    out: list[Actor] = []
    for actor in [parent.author, *parent.extra.get("mentioned", [])]:
        if actor.id != msg.author.id and all(actor.id != a.id for a in out):
            out.append(actor)
    return out
