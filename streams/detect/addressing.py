"""Who addresses whom: the rules of README "Addressing", as pure functions.

A message from X addresses Y when it is a reply to a post authored by Y, a DM to Y, a quote
of Y's post, or a mention of Y. Mentions inside *replies* on X and Mastodon are ignored:
those platforms add the leading mentions themselves, so there a reply addresses only its
parent's author. On Reddit and Bluesky (and the other platforms) a mention addresses its
target in any message. Unknown or deleted authors are never persons: they address no one
and no one addresses them. Nobody addresses themselves.

The parent's author is the one fact a payload may lack (Reddit and Facebook never say it);
it is then taken from the thread, once the parent is known. So addressing is split in two:
what the payload alone shows (:func:`payload_addressing`, computed once on arrival) and
the final set (:func:`addressees`), which adds the parent's author from wherever it is
known. When the payload names the parent's author, that name is used and the thread is not
consulted, so the answer does not depend on whether the parent has arrived yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.detect.identity import canonical_id, is_person
from streams.interaction import SIGNAL_KINDS, Interaction

AUTO_MENTION_REPLY_PLATFORMS: frozenset[str] = frozenset({"x", "mastodon"})


def parent_of(msg: Interaction) -> str | None:
    """The reply edge of ``msg``: its parent id, ``None`` for DMs, signals and top-level posts."""
    if msg.kind == "dm" or msg.kind in SIGNAL_KINDS:
        return None
    if not msg.parent_id or msg.parent_id == msg.event_id:
        return None
    return msg.parent_id


@dataclass(frozen=True, slots=True)
class PayloadAddressing:
    """What the payload alone says about whom a message addresses (ids canonical)."""

    author: str
    named: tuple[str, ...]
    """Addressed by DM recipient, quote or mention; never the author, never unknown."""
    parent_author: str | None
    """The parent's author when the payload names it (a reply only), else ``None``."""


def payload_addressing(msg: Interaction) -> PayloadAddressing:
    """Apply the addressing rules to what the payload of ``msg`` shows."""
    platform = msg.platform
    author = canonical_id(platform, msg.author_id)
    if not is_person(author) or msg.kind in SIGNAL_KINDS:
        return PayloadAddressing(author, (), None)
    is_reply = parent_of(msg) is not None
    named: list[str] = []
    if msg.kind == "dm":
        named.append(canonical_id(platform, msg.recipient_id))
    named.append(canonical_id(platform, msg.quoted_author_id))
    if not (is_reply and platform in AUTO_MENTION_REPLY_PLATFORMS):
        named.extend(canonical_id(platform, m) for m in msg.mentioned_ids)
    seen: dict[str, None] = {}
    for who in named:
        if is_person(who) and who != author:
            seen[who] = None
    parent_author = canonical_id(platform, msg.parent_author_id) if is_reply else ""
    return PayloadAddressing(author, tuple(seen), parent_author or None)


def addressees(
    author: str,
    named: tuple[str, ...],
    payload_parent_author: str | None,
    thread_parent_author: str | None,
) -> frozenset[str]:
    """Everyone a message addresses, given what its payload says and its parent's known author.

    ``thread_parent_author`` is the author of the parent post as the thread knows it
    (``None`` when the message is no reply or its parent has not arrived); it is used only
    when the payload does not name the parent's author.
    """
    if not is_person(author):
        return frozenset()
    parent_author = payload_parent_author or thread_parent_author
    if parent_author and is_person(parent_author) and parent_author != author:
        return frozenset((*named, parent_author))
    return frozenset(named)


def is_inbound(author: str, addressed: frozenset[str], account: str) -> bool:
    """A message by a person other than the account that addresses the account."""
    return is_person(author) and author != account and account in addressed


def persons_addressed_by_account(author: str, addressed: frozenset[str], account: str) -> tuple[str, ...]:
    """The persons a message of the account addresses (empty for anyone else's message)."""
    if author != account:
        return ()
    return tuple(sorted(p for p in addressed if is_person(p) and p != account))
