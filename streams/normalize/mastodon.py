"""Mastodon: streaming events, REST statuses and notifications (backfill) -> rows.

Ids are as the tracked account's server gives them, which is why one server's stream or
notifications are read per account. The streaming API sends ``payload`` as a JSON-encoded
string (``delete``: the bare status id); readers that decode it first hand us an object,
so both are accepted. Mastodon statuses do not name their thread root, so ``root_id`` is
the status itself for a top-level status and unknown (``None``) for a reply: detection
climbs the ``in_reply_to_id`` chain.

Its fast path, :mod:`streams.normalize.fast.mastodon`, must give exactly the same outcome: a change
here needs its twin there (tests/unit/normalize/test_fast_path.py compares the two).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

from streams.normalize.access import Node
from streams.normalize.base import AccountIndex, Arrival, BadPayload, Outcome, Skipped
from streams.normalize.emit import (
    Audience,
    Collector,
    Draft,
    kind_of,
    tracked_id,
    tracked_name,
    unique,
)

PLATFORM = "mastodon"
SIGNALS = {"favourite": "like", "reblog": "repost"}
STATUS_NOTIFICATIONS = frozenset({"mention", "status", "quote"})
EDIT_NOTIFICATIONS = frozenset({"update", "quoted_update"})
STATUS_TYPES = STATUS_NOTIFICATIONS | EDIT_NOTIFICATIONS | frozenset(SIGNALS)
"""Notification types about a status: Mastodon sends ``status: null`` once it is deleted."""
_BLOCKS = frozenset({"p", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6"})


class _PlainText(HTMLParser):
    """Status HTML to plain text: paragraphs become blank lines, ``<br>`` a newline."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    if "<" not in html and "&" not in html:
        return html
    parser = _PlainText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).strip()


def normalize_mastodon(payload: Any, arrival: Arrival, index: AccountIndex) -> Outcome:
    """A streaming event ``{"event", "payload"}``, or a REST status or notification."""
    top = Node.of(payload)
    out = Collector(arrival)
    if "event" in top.data:
        event = top.text("event")
        if event == "delete":
            _delete(top, arrival, index, out)
        elif event == "update":
            _status(_decoded(top), arrival, index, out)
        elif event == "status.update":
            _edit(_decoded(top), None, arrival, index, out)
        elif event == "notification":
            _notification(_decoded(top), arrival, index, out)
        elif event == "conversation":
            last = _decoded(top).opt_obj("last_status")
            if last is None:
                return Skipped("conversation without a last status")
            _status(last, arrival, index, out)
        else:
            return Skipped(f"streaming event {event[:40]!r} is not read")
    elif isinstance(top.raw("type"), str) and "content" not in top.data:
        _notification(top, arrival, index, out)
    else:
        _status(top, arrival, index, out)
    return out.outcome()


def _decoded(top: Node) -> Node:
    raw = top.raw("payload")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadPayload("payload is a string but not JSON") from None
    return Node.of(raw, "payload")


def _delete(top: Node, arrival: Arrival, index: AccountIndex, out: Collector) -> None:
    """The payload is the bare id; the event carries no time, so the change is timed
    when we received it (deterministic for the payload, hence for a replay)."""
    raw = top.raw("payload")
    if isinstance(raw, str) and raw.startswith('"'):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadPayload("payload is not a status id") from None
    if isinstance(raw, bool) or not isinstance(raw, str | int) or not str(raw).strip():
        raise BadPayload("payload must be the deleted status id")
    out.change(
        platform=PLATFORM, event_id=str(raw).strip(), change="delete",
        changed_at=arrival.received_at, text="", author_id="",
        audience=Audience(PLATFORM, index).arrival(arrival),
    )


def _account(node: Node, key: str) -> tuple[str, str]:
    account = node.obj(key)
    return account.ident("id"), account.opt_text("acct") or account.opt_text("username")


def _draft(st: Node, arrival: Arrival, index: AccountIndex) -> tuple[Draft, Audience]:
    status_id = st.ident("id")
    created_at = st.iso_ms("created_at")
    author_id, handle = _account(st, "account")
    reblog = st.opt_obj("reblog")
    if reblog is not None:
        # A boost is a signal; keyed like the reblog notification so both routes match.
        target = reblog.ident("id")
        target_author, _ = _account(reblog, "account")
        audience = Audience(PLATFORM, index).ids(author_id, target_author).arrival(arrival)
        draft = Draft(
            platform=PLATFORM, event_id=f"repost:{author_id}:{target}", kind="repost",
            author_id=author_id, author_handle=handle, created_at=created_at,
            parent_id=target, parent_author_id=target_author,
        )
        return draft, audience

    parent_id = st.opt_ident("in_reply_to_id")
    parent_author = st.opt_ident("in_reply_to_account_id")
    mention_ids: list[str] = []
    mention_names: list[str] = []
    for m in st.objects("mentions"):
        mention_ids.append(m.ident("id"))
        mention_names.append(m.opt_text("acct"))
    tags = [f"#{t.text('name').lstrip('#')}" for t in st.objects("tags")]
    quoted_id = quoted_author = None
    quote = st.opt_obj("quote")
    if quote is not None:
        quoted = quote.opt_obj("quoted_status")
        if quoted is not None:
            quoted_id = quoted.ident("id")
            quoted_author, _ = _account(quoted, "account")
        else:
            quoted_id = quote.opt_ident("quoted_status_id")
    direct = st.opt_text("visibility") == "direct"
    mentioned = unique(mention_ids)
    tracked = any(tracked_id(index, PLATFORM, m) for m in mentioned) or any(
        tracked_name(index, PLATFORM, n) for n in mention_names
    )
    audience = (
        Audience(PLATFORM, index)
        .ids(author_id, parent_author, quoted_author, *mentioned)
        .names(*mention_names)
        .listened(*tags)
        .arrival(arrival)
    )
    draft = Draft(
        platform=PLATFORM,
        event_id=status_id,
        kind=kind_of(dm=direct, parent=parent_id, quoted=quoted_id, mentions_tracked=tracked),
        author_id=author_id,
        author_handle=handle,
        created_at=created_at,
        parent_id=parent_id,
        parent_author_id=parent_author,
        root_id=None if parent_id else status_id,
        quoted_id=quoted_id,
        quoted_author_id=quoted_author,
        # A direct status is addressed to the accounts it mentions.
        recipient_id=next((m for m in mentioned if m != author_id), None) if direct else None,
        mentioned_ids=mentioned,
        text=html_to_text(st.opt_text("content")),
        lang=st.opt_text("language"),
        url=st.opt_text("url") or st.opt_text("uri"),
    )
    return draft, audience


def _status(st: Node, arrival: Arrival, index: AccountIndex, out: Collector) -> None:
    draft, audience = _draft(st, arrival, index)
    out.interaction(draft, audience)


def deleted_status_reason(ntype: str) -> str:
    """Why a notification whose status is null is skipped (both paths give this reason)."""
    return f"{ntype} notification whose status was deleted (status null)"


def _edit(
    st: Node, fallback_ms: int | None, arrival: Arrival, index: AccountIndex, out: Collector,
) -> None:
    draft, audience = _draft(st, arrival, index)
    if st.has("edited_at"):
        changed_at = st.iso_ms("edited_at")
    else:
        changed_at = fallback_ms if fallback_ms is not None else draft.created_at
    out.change(
        platform=PLATFORM, event_id=draft.event_id, change="edit", changed_at=changed_at,
        text=draft.text, author_id=draft.author_id, audience=audience,
    )


def _notification(n: Node, arrival: Arrival, index: AccountIndex, out: Collector) -> None:
    """Notifications are the account's own source: ``arrival.via_account`` names it."""
    ntype = n.text("type")
    if ntype in STATUS_TYPES and "status" in n.data and n.data["status"] is None:
        out.skip(deleted_status_reason(ntype))  # the status was deleted: about nothing we measure
        return
    if ntype in STATUS_NOTIFICATIONS:
        _status(n.obj("status"), arrival, index, out)
        return
    if ntype in EDIT_NOTIFICATIONS:
        _edit(n.obj("status"), n.iso_ms("created_at"), arrival, index, out)
        return
    if ntype not in SIGNALS and ntype != "follow":
        out.skip(f"notification type {ntype[:40]!r} is not read")
        return
    actor_id, handle = _account(n, "account")
    created_at = n.iso_ms("created_at")
    if ntype == "follow":
        # The followed account is the owner of the notifications: only the arrival says.
        target = arrival.via_account
        if not target:
            out.skip("follow notification without via_account: the followed account is unknown")
            return
        kind, parent_id, target_author = "follow", None, target
    else:
        status = n.obj("status")
        kind, parent_id = SIGNALS[ntype], status.ident("id")
        target_author, _ = _account(status, "account")
        target = parent_id
    draft = Draft(
        platform=PLATFORM, event_id=f"{kind}:{actor_id}:{target}", kind=kind,
        author_id=actor_id, author_handle=handle, created_at=created_at,
        parent_id=parent_id, parent_author_id=target_author,
    )
    out.interaction(draft, Audience(PLATFORM, index).ids(actor_id, target_author).arrival(arrival))
