"""A resume point that only moves past what the archive holds, in order (pure logic).

Raw records carry no key, so they land on random partitions and are archived partition by
partition: the newest archived item says nothing about the older ones. A
:class:`Watermark` follows one stream of an agent (Jetstream, one Mastodon stream, one X
rule, one Reddit listing) by *position* (Jetstream ``time_us``, a status / post id, a
listing item's time): the agent tells it what it published (:meth:`published`) and how far
it has read (:meth:`covered`); the archive tells it what it holds (:meth:`confirm`). Its
:attr:`safe` position is the furthest point such that every item published at or before it
is archived and the agent has read everything up to it. Resuming from there re-fetches,
never skips: a broker death at any moment costs a re-fetch, not a gap.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Watermark:
    safe: int | None = None  # the resume position; None: nothing known yet
    reach: int | None = None  # how far the agent has read (covered), archived or not
    _positions: list[int] = field(default_factory=list)  # pending positions, sorted
    _keys: dict[str, int] = field(default_factory=dict)  # pending archive key -> its position

    def published(self, position: int, key: str) -> None:
        """An item at ``position`` was handed to the broker under archive key ``key``."""
        if key in self._keys:
            return
        self._keys[key] = position
        bisect.insort(self._positions, position)
        self._advance()

    def covered(self, position: int) -> None:
        """Everything up to ``position`` has been read (published, or not ours to publish)."""
        self.reach = position if self.reach is None else max(self.reach, position)
        self._advance()

    def pending(self) -> list[str]:
        """Archive keys published and not yet confirmed."""
        return list(self._keys)

    def confirm(self, archived: Iterable[str]) -> None:
        """These keys are in the archive."""
        for key in archived:
            position = self._keys.pop(key, None)
            if position is not None:
                del self._positions[bisect.bisect_left(self._positions, position)]
        self._advance()

    def _advance(self) -> None:
        if self._positions and self.safe is not None and self._positions[0] <= self.safe:
            self.safe = self._positions[0] - 1  # an item older than the resume point: step back for it
            return
        if self.reach is None:
            return
        limit = self.reach if not self._positions else min(self.reach, self._positions[0] - 1)
        if self.safe is None or limit > self.safe:
            self.safe = limit
