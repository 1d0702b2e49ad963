"""Mastodon: streaming events, REST statuses and notifications (backfill) -> rows.

Ids are as the tracked account's server gives them, which is why one server's stream or
notifications are read per account. The streaming API sends ``payload`` as a JSON-encoded
string (``delete``: the bare status id); readers that decode it first hand us an object,
so both are accepted. Mastodon statuses do not name their thread root, so ``root_id`` is
the status itself for a top-level status and unknown (``None``) for a reply: detection
climbs the ``in_reply_to_id`` chain.

The string ``payload`` is decoded with ``json.loads`` (orjson would read integers beyond 64
bits as floats). Fields are read with :mod:`streams.normalize.access` (fast when the payload
is as expected, precise when it is not) and rows are written directly by
:class:`~streams.normalize.rows.Rows`.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

from streams.normalize.access import (
    Where,
    ident,
    iso_ms,
    obj,
    objects,
    of,
    opt_ident,
    opt_obj,
    opt_text,
    text,
)
from streams.normalize.base import BadPayload
from streams.normalize.rows import Key, Rows, kind_of, unique

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


# Status HTML as Mastodon writes it: text without entities between plain tags whose
# attributes are all name="value". For exactly that, what html.parser makes of it is
# certain (text as is, ``<br>`` a newline, a block start tag a blank line, other tags
# nothing) and three substitutions do it; any other markup (entities, comments, odd
# attributes, script/style, unknown tags) goes to html_to_text. html_to_text adds a block's
# blank line only after some text; a leading one is stripped anyway, so it is added always.
_NAMES = "a|span|br|p|b|i|u|s|em|strong|del|ins|code|pre|blockquote|ul|ol|li|sup|sub|small|h[1-6]"
_SIMPLE = re.compile(
    rf'(?:[^<&]++|<(?i:{_NAMES})(?=[ />])(?: [a-zA-Z][-a-zA-Z0-9]*="[^"<>]*")*+ ?/?>|</(?i:{_NAMES})>)*+'
)
_BR = re.compile(r"<(?i:br)(?=[ />])[^<>]*>")
_BLOCK_START = re.compile(r"<(?i:{})(?=[ />])[^<>]*>".format("|".join(sorted(_BLOCKS))))
_TAG = re.compile(r"<[^<>]*>")


def plain_text(html: str) -> str:
    """``html_to_text`` without an HTML parser for the markup Mastodon writes."""
    if "<" not in html and "&" not in html:
        return html
    if _SIMPLE.fullmatch(html) is None:
        return html_to_text(html)
    return _TAG.sub("", _BLOCK_START.sub("\n\n", _BR.sub("\n", html))).strip()


def deleted_status_reason(ntype: str) -> str:
    """Why a notification whose status is null is skipped."""
    return f"{ntype} notification whose status was deleted (status null)"


def normalize_mastodon(payload: Any, rows: Rows) -> None:
    """A streaming event ``{"event", "payload"}``, or a REST status or notification."""
    top = of(payload)
    if "event" in top:
        event = text(top, "event")
        if event == "update":
            _status(_decoded(top), "payload", rows)
        elif event == "notification":
            _notification(_decoded(top), "payload", rows)
        elif event == "delete":
            _delete(top, rows)
        elif event == "status.update":
            _edit(_decoded(top), "payload", None, rows)
        elif event == "conversation":
            last = opt_obj(_decoded(top), "last_status", "payload")
            if last is None:
                rows.skip("conversation without a last status")
                return
            _status(last, "payload.last_status", rows)
        else:
            rows.skip(f"streaming event {event[:40]!r} is not read")
    elif isinstance(top.get("type"), str) and "content" not in top:
        _notification(top, "", rows)
    else:
        _status(top, "", rows)


def _decoded(top: dict[str, Any]) -> dict[str, Any]:
    raw = top.get("payload")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadPayload("payload is a string but not JSON") from None
    return of(raw, "payload")


def _delete(top: dict[str, Any], rows: Rows) -> None:
    """The payload is the bare id; the event carries no time, so the change is timed
    when we received it (deterministic for the payload, hence for a replay)."""
    raw = top.get("payload")
    if isinstance(raw, str) and raw.startswith('"'):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadPayload("payload is not a status id") from None
    if isinstance(raw, bool) or not isinstance(raw, str | int) or not str(raw).strip():
        raise BadPayload("payload must be the deleted status id")
    ctx = rows.ctx
    rows.change(ctx.audience(()), str(raw).strip(), "delete", ctx.received_at, "", "")


def _account(node: dict[str, Any], key: str, where: Where) -> tuple[str, str]:
    account = obj(node, key, where)
    account_where = (where, key)
    return ident(account, "id", account_where), (
        opt_text(account, "acct", account_where) or opt_text(account, "username", account_where)
    )


class _Status:
    """A status as read once for an interaction or an edit: the row's fields and its audience."""

    __slots__ = ("keys", "event_id", "kind", "author_id", "handle", "created_at", "fields")

    def __init__(self, st: dict[str, Any], where: Where, rows: Rows) -> None:
        ctx = rows.ctx
        status_id = ident(st, "id", where)
        self.created_at = iso_ms(st, "created_at", where)
        author_id, self.handle = _account(st, "account", where)
        self.author_id = author_id
        reblog = opt_obj(st, "reblog", where)
        if reblog is not None:
            # A boost is a signal; keyed like the reblog notification so both routes match.
            reblog_where = (where, "reblog")
            target = ident(reblog, "id", reblog_where)
            target_author, _ = _account(reblog, "account", reblog_where)
            self.keys = ctx.audience((author_id, target_author))
            self.event_id, self.kind = f"repost:{author_id}:{target}", "repost"
            self.fields: dict[str, Any] = {"parent_id": target, "parent_author_id": target_author}
            return

        parent_id = opt_ident(st, "in_reply_to_id", where)
        parent_author = opt_ident(st, "in_reply_to_account_id", where)
        mention_ids: list[str] = []
        mention_names: list[str] = []
        mentions_where = (where, "mentions")
        for i, m in enumerate(objects(st, "mentions", where)):
            m_where = (mentions_where, i)
            mention_ids.append(ident(m, "id", m_where))
            mention_names.append(opt_text(m, "acct", m_where))
        tags = [
            f"#{text(t, 'name', ((where, 'tags'), i)).lstrip('#')}" for i, t in enumerate(objects(st, "tags", where))
        ]
        quoted_id = quoted_author = None
        quote = opt_obj(st, "quote", where)
        if quote is not None:
            quote_where = (where, "quote")
            quoted = opt_obj(quote, "quoted_status", quote_where)
            if quoted is not None:
                quoted_where = (quote_where, "quoted_status")
                quoted_id = ident(quoted, "id", quoted_where)
                quoted_author, _ = _account(quoted, "account", quoted_where)
            else:
                quoted_id = opt_ident(quote, "quoted_status_id", quote_where)
        direct = opt_text(st, "visibility", where) == "direct"
        mentioned = unique(mention_ids)
        tracked = ctx.tracked_ids(mentioned) or ctx.tracked_names(mention_names)
        self.keys = ctx.audience((author_id, parent_author, quoted_author, *mentioned), mention_names, tags)
        self.event_id = status_id
        self.kind = kind_of(dm=direct, parent=parent_id, quoted=quoted_id, mentions_tracked=tracked)
        self.fields = {
            "parent_id": parent_id, "parent_author_id": parent_author,
            "root_id": None if parent_id else status_id,
            "quoted_id": quoted_id, "quoted_author_id": quoted_author,
            # A direct status is addressed to the accounts it mentions.
            "recipient_id": next((m for m in mentioned if m != author_id), None) if direct else None,
            "mentioned_ids": mentioned,
            "text": plain_text(opt_text(st, "content", where)),
            "lang": opt_text(st, "language", where),
            "url": opt_text(st, "url", where) or opt_text(st, "uri", where),
        }


def _status(st: dict[str, Any], where: Where, rows: Rows) -> None:
    s = _Status(st, where, rows)
    rows.interaction(s.keys, s.event_id, s.kind, s.author_id, s.created_at, author_handle=s.handle, **s.fields)


def _edit(st: dict[str, Any], where: Where, fallback_ms: int | None, rows: Rows) -> None:
    s = _Status(st, where, rows)
    if st.get("edited_at") is not None:
        changed_at = iso_ms(st, "edited_at", where)
    else:
        changed_at = fallback_ms if fallback_ms is not None else s.created_at
    rows.change(s.keys, s.event_id, "edit", changed_at, s.fields.get("text", ""), s.author_id)


def _notification(n: dict[str, Any], where: Where, rows: Rows) -> None:
    """Notifications are the account's own source: the arrival's ``via_account`` names it."""
    ntype = text(n, "type", where)
    if ntype in STATUS_TYPES and "status" in n and n["status"] is None:
        rows.skip(deleted_status_reason(ntype))  # the status was deleted: about nothing we measure
        return
    status_where = (where, "status")
    if ntype in STATUS_NOTIFICATIONS:
        _status(obj(n, "status", where), status_where, rows)
        return
    if ntype in EDIT_NOTIFICATIONS:
        status = obj(n, "status", where)
        _edit(status, status_where, iso_ms(n, "created_at", where), rows)
        return
    if ntype not in SIGNALS and ntype != "follow":
        rows.skip(f"notification type {ntype[:40]!r} is not read")
        return
    actor_id, handle = _account(n, "account", where)
    created_at = iso_ms(n, "created_at", where)
    ctx = rows.ctx
    parent_id: str | None
    if ntype == "follow":
        # The followed account is the owner of the notifications: only the arrival says.
        target = ctx.via_account
        if not target:
            rows.skip("follow notification without via_account: the followed account is unknown")
            return
        kind, parent_id, target_author = "follow", None, target
    else:
        status = obj(n, "status", where)
        kind, parent_id = SIGNALS[ntype], ident(status, "id", status_where)
        target_author, _ = _account(status, "account", status_where)
        target = parent_id
    keys: list[Key] = ctx.audience((actor_id, target_author))
    rows.interaction(
        keys, f"{kind}:{actor_id}:{target}", kind, actor_id, created_at, author_handle=handle,
        parent_id=parent_id, parent_author_id=target_author,
    )
