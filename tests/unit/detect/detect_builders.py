"""Builders shared by the detection unit tests: interactions, changes and clients, tersely.

Imported by module name (pytest puts this directory on ``sys.path``); named uniquely so
it can never shadow another test directory's helpers.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from streams.clients import Client, TrackedAccount
from streams.interaction import Change, Interaction
from tests.support.interactions import interaction

WEEKDAYS_9_17 = {d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri")}


def make_client(
    platform: str = "x",
    account: str = "acct",
    tz: str = "UTC",
    hours: dict[str, str] | None = None,
    sla: int = 60,
    **extra: object,
) -> Client:
    return Client(
        id="c",
        timezone=tz,
        hours=hours,
        sla_minutes=sla,
        accounts=(TrackedAccount(platform=platform, account_id=account),),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def make_msg(
    eid: str,
    kind: str = "post",
    author: str = "p1",
    *,
    platform: str = "x",
    parent: str | None = None,
    pa: str | None = None,
    root: str | None = None,
    at: int = 0,
    mentions: tuple[str, ...] = (),
    quoted: str | None = None,
    quoted_author: str | None = None,
    recipient: str | None = None,
    handle: str | None = None,
    account: str = "acct",
) -> Interaction:
    return interaction(
        platform, eid, kind, author, at,
        account_id=account,
        author_handle=author if handle is None else handle,
        parent_id=parent,
        parent_author_id=pa,
        root_id=root,
        quoted_id=quoted,
        quoted_author_id=quoted_author,
        recipient_id=recipient,
        mentioned_ids=mentions,
    )


def make_delete(eid: str, at: int, platform: str = "x") -> Change:
    return Change(platform, eid, "delete", at, "", "", "c", "acct", "stream", "", 1)


def local_ms(tz: str, *args: int) -> int:
    """Epoch ms of a wall-clock time in ``tz`` (not in a DST gap)."""
    return int(datetime(*args, tzinfo=ZoneInfo(tz)).timestamp() * 1000)  # type: ignore[arg-type,misc]
