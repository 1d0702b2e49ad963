"""Who is who: the canonical form of account ids, and which authors count as persons.

Every comparison of ids in ``streams.detect`` goes through :func:`canonical_id`, because
Reddit names accounts by username, case-insensitively (a mention ``u/Alice`` and an
author ``alice`` are the same person; normalizers lower-case mentions), while every other
platform uses opaque ids compared exactly. Person ids in the rows are canonical too, so on
Reddit they are lower-cased usernames; the handle keeps the spelling the author uses.
"""

from __future__ import annotations

import sys

CASE_INSENSITIVE_PLATFORMS: frozenset[str] = frozenset({"reddit"})
# The contract says unknown or deleted authors arrive as "", but Reddit's placeholders are
# cheap to recognise here too, and a placeholder must never become a person.
UNKNOWN_AUTHORS: frozenset[str] = frozenset({"", "[deleted]", "[removed]"})


def canonical_id(platform: str, value: str | None) -> str:
    """The form of an account id used for comparisons; ``""`` when unknown."""
    if not value:
        return ""
    value = value.strip()
    if platform in CASE_INSENSITIVE_PLATFORMS:
        value = value.lower()
    if value in UNKNOWN_AUTHORS:
        return ""
    # Authors repeat across many posts: share one string object per id.
    return sys.intern(value)


def is_person(canonical: str) -> bool:
    """Unknown and deleted authors are never persons (they address and are addressed by no one)."""
    return bool(canonical)
