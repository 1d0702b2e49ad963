"""Message text for one-line views, cut the same way in SQL and in Python.

Social text is full of emoji, accents, CJK and right-to-left scripts. ClickHouse's
``substring``/``left`` count *bytes*, so a cut can split a multi-byte character, and
clickhouse-connect then hands the invalid UTF-8 back as hex: the board once showed a
Reddit title as ``52656c65617365…``. Every surface therefore cuts by *code points*
(``leftUTF8`` in SQL, string slicing in Python, which count the same), so a cut never
produces invalid text and every surface shows the same characters.

One-line views also collapse each run of separators and control characters into one
space and trim the ends: Unicode separators (``\\pZ``: spaces, NBSP, ideographic space,
line and paragraph separators) and C0/C1 controls (newlines, tabs, ESC, NEL). Format
characters such as the zero-width joiner are kept, so ZWJ emoji sequences survive. A cut
may still fall inside a grapheme (between a letter and its combining accent, or the two
halves of a flag); the result is valid text, only shorter.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

# RE2 (ClickHouse) spells the class ``[\pZ\x00-\x1f\x7f-\x9f]``; Python's ``re`` has no
# ``\p``, so the same class is listed from the Unicode database (categories Zs, Zl, Zp, Cc).
SQL_SEPARATORS = r"[\\pZ\\x00-\\x1f\\x7f-\\x9f]+"
"""The class as it stands inside a ClickHouse string literal (backslashes doubled)."""



@lru_cache(maxsize=1)
def _separators() -> re.Pattern[str]:
    """Built on first use: scanning the code space costs a fraction of a second."""
    chars = "".join(chr(c) for c in range(sys.maxunicode + 1)
                    if unicodedata.category(chr(c)) in ("Zs", "Zl", "Zp", "Cc"))
    return re.compile("[" + re.escape(chars) + "]+")


BOARD_TEXT_CHARS = 60
"""Code points of message text in the terminal board's "last events"."""
PANEL_TEXT_CHARS = 280
"""Code points of message text in Grafana tables and alert labels."""


def one_line(text: str | None, limit: int) -> str:
    """``text`` on one line, at most ``limit`` code points: what :func:`one_line_sql` returns."""
    return _separators().sub(" ", text or "").strip(" ")[:limit]


def one_line_sql(column: str, limit: int) -> str:
    """SQL for ``column`` on one line, at most ``limit`` code points (valid UTF-8 always)."""
    return f"leftUTF8(trimBoth(replaceRegexpAll({column}, '{SQL_SEPARATORS}', ' ')), {int(limit)})"
