"""One builder of test interactions: every field defaulted, the ones a test cares about named."""

from __future__ import annotations

from streams.interaction import Interaction


def interaction(platform: str, eid: str, kind: str, author: str, at: int, **fields: object) -> Interaction:
    """An interaction of client ``c``/account ``acct`` at event time ``at``; ``fields`` override."""
    base: dict[str, object] = dict(
        client_id="c", account_id="acct", platform=platform, event_id=eid, kind=kind, author_id=author,
        author_handle="", parent_id=None, parent_author_id=None, root_id=None, quoted_id=None,
        quoted_author_id=None, recipient_id=None, mentioned_ids=(), text="", lang="", url="",
        created_at=at, client_created_at=None, ingested_at=at, source="stream", deleted=False,
        edited_at=None, raw_key="", version=1,
    )
    base.update(fields)
    return Interaction(**base)  # type: ignore[arg-type]
