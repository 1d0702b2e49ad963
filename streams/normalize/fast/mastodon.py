"""Fast path of :mod:`streams.normalize.mastodon`: streaming events read with plain dict access.

Covers ``update``, ``status.update``, ``notification`` and a plain ``delete`` event, and
REST statuses and notifications; a ``conversation`` event or a quoted delete id goes to the
checked module. The string ``payload`` is decoded with the same ``json.loads`` as there
(orjson would read integers beyond 64 bits as floats). Mirrors the checked module step for
step; anything it does not expect raises and the checked module decides. Keep the two in
step: ``tests/unit/normalize/test_fast_path.py`` compares them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from streams.normalize.emit import kind_of, unique
from streams.normalize.fast.core import (
    Fallback,
    Key,
    Rows,
    ident,
    iso_ms,
    obj,
    objects,
    opt_ident,
    opt_obj,
    opt_text,
    text,
)
from streams.normalize.mastodon import (
    _BLOCKS,
    EDIT_NOTIFICATIONS,
    SIGNALS,
    STATUS_NOTIFICATIONS,
    STATUS_TYPES,
    deleted_status_reason,
    html_to_text,
)

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


def fast_mastodon(payload: Any, rows: Rows) -> None:
    if type(payload) is not dict:
        raise Fallback
    if "event" in payload:
        event = payload["event"]
        if event == "notification":
            _notification(_decoded(payload), rows)
        elif event == "update":
            _status(_decoded(payload), rows)
        elif event == "status.update":
            _edit(_decoded(payload), None, rows)
        elif event == "delete":
            _delete(payload.get("payload"), rows)
        else:
            raise Fallback
    elif isinstance(payload.get("type"), str) and "content" not in payload:  # a branch, not a check
        _notification(payload, rows)
    else:
        _status(payload, rows)


def _decoded(top: dict[str, Any]) -> dict[str, Any]:
    raw = top.get("payload")
    if type(raw) is str:
        raw = json.loads(raw)  # ValueError: the checked path names the payload
    return obj(raw)


def _delete(raw: Any, rows: Rows) -> None:
    if type(raw) is str:
        if raw.startswith('"'):
            raise Fallback
    elif type(raw) is not int:
        raise Fallback
    event_id = str(raw).strip()
    if not event_id:
        raise Fallback
    ctx = rows.ctx
    rows.change(ctx.audience(()), event_id, "delete", ctx.received_at, "", "")


def _account(node: dict[str, Any], key: str) -> tuple[str, str]:
    account = obj(node.get(key))
    return ident(account.get("id")), opt_text(account.get("acct")) or opt_text(account.get("username"))


class _Status:
    """A status as ``_draft`` reads it: the row's fields and its audience."""

    __slots__ = ("keys", "event_id", "kind", "author_id", "handle", "created_at", "fields")

    def __init__(self, st: dict[str, Any], rows: Rows) -> None:
        ctx = rows.ctx
        status_id = ident(st.get("id"))
        self.created_at = iso_ms(st.get("created_at"))
        author_id, self.handle = _account(st, "account")
        self.author_id = author_id
        reblog = opt_obj(st.get("reblog"))
        if reblog is not None:
            target = ident(reblog.get("id"))
            target_author, _ = _account(reblog, "account")
            self.keys = ctx.audience((author_id, target_author))
            self.event_id, self.kind = f"repost:{author_id}:{target}", "repost"
            self.fields: dict[str, Any] = {"parent_id": target, "parent_author_id": target_author}
            return

        parent_id = opt_ident(st.get("in_reply_to_id"))
        parent_author = opt_ident(st.get("in_reply_to_account_id"))
        mention_ids: list[str] = []
        mention_names: list[str] = []
        for m in objects(st.get("mentions")):
            mention_ids.append(ident(m.get("id")))
            mention_names.append(opt_text(m.get("acct")))
        tags = [f"#{text(t.get('name')).lstrip('#')}" for t in objects(st.get("tags"))]
        quoted_id = quoted_author = None
        quote = opt_obj(st.get("quote"))
        if quote is not None:
            quoted = opt_obj(quote.get("quoted_status"))
            if quoted is not None:
                quoted_id = ident(quoted.get("id"))
                quoted_author, _ = _account(quoted, "account")
            else:
                quoted_id = opt_ident(quote.get("quoted_status_id"))
        direct = opt_text(st.get("visibility")) == "direct"
        mentioned = unique(mention_ids)
        tracked = ctx.tracked_ids(mentioned) or ctx.tracked_names(mention_names)
        self.keys = ctx.audience((author_id, parent_author, quoted_author, *mentioned), mention_names, tags)
        self.event_id = status_id
        self.kind = kind_of(dm=direct, parent=parent_id, quoted=quoted_id, mentions_tracked=tracked)
        self.fields = {
            "parent_id": parent_id, "parent_author_id": parent_author,
            "root_id": None if parent_id else status_id,
            "quoted_id": quoted_id, "quoted_author_id": quoted_author,
            "recipient_id": next((m for m in mentioned if m != author_id), None) if direct else None,
            "mentioned_ids": mentioned,
            "text": plain_text(opt_text(st.get("content"))),
            "lang": opt_text(st.get("language")),
            "url": opt_text(st.get("url")) or opt_text(st.get("uri")),
        }


def _status(st: dict[str, Any], rows: Rows) -> None:
    s = _Status(st, rows)
    rows.interaction(s.keys, s.event_id, s.kind, s.author_id, s.created_at, author_handle=s.handle, **s.fields)


def _edit(st: dict[str, Any], fallback_ms: int | None, rows: Rows) -> None:
    s = _Status(st, rows)
    if st.get("edited_at") is not None:
        changed_at = iso_ms(st.get("edited_at"))
    else:
        changed_at = fallback_ms if fallback_ms is not None else s.created_at
    rows.change(s.keys, s.event_id, "edit", changed_at, s.fields.get("text", ""), s.author_id)


def _notification(n: dict[str, Any], rows: Rows) -> None:
    ntype = text(n.get("type"))
    if ntype in STATUS_TYPES and "status" in n and n["status"] is None:
        rows.skip(deleted_status_reason(ntype))
        return
    if ntype in STATUS_NOTIFICATIONS:
        _status(obj(n.get("status")), rows)
        return
    if ntype in EDIT_NOTIFICATIONS:
        _edit(obj(n.get("status")), iso_ms(n.get("created_at")), rows)
        return
    if ntype not in SIGNALS and ntype != "follow":
        rows.skip(f"notification type {ntype[:40]!r} is not read")
        return
    actor_id, handle = _account(n, "account")
    created_at = iso_ms(n.get("created_at"))
    ctx = rows.ctx
    parent_id: str | None
    if ntype == "follow":
        target = ctx.via_account
        if not target:
            rows.skip("follow notification without via_account: the followed account is unknown")
            return
        kind, parent_id, target_author = "follow", None, target
    else:
        status = obj(n.get("status"))
        kind, parent_id = SIGNALS[ntype], ident(status.get("id"))
        target_author, _ = _account(status, "account")
        target = parent_id
    keys: list[Key] = ctx.audience((actor_id, target_author))
    rows.interaction(
        keys, f"{kind}:{actor_id}:{target}", kind, actor_id, created_at, author_handle=handle,
        parent_id=parent_id, parent_author_id=target_author,
    )
