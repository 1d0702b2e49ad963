"""Fast paths of the platform normalizers: the same rows, without the checked path's care.

Each platform's checked normalizer (``streams/normalize/<platform>.py``) is the definition
of its output. A fast normalizer reads the payloads it expects with plain dict access and
writes rows directly; on anything else it gives up and the checked normalizer runs, so
dead-letter reasons stay exactly as precise. Why it exists: normalize bounds the worker's
throughput (``bench/normalize_speed.py``), and most of the checked path's time goes to
bookkeeping that only a bad payload needs. See :mod:`streams.normalize.fast.core`.
"""

from __future__ import annotations

from streams.normalize.fast.bluesky import fast_bluesky
from streams.normalize.fast.core import FastNormalizer
from streams.normalize.fast.mastodon import fast_mastodon
from streams.normalize.fast.reddit import fast_reddit
from streams.normalize.fast.webhooks import fast_facebook, fast_instagram
from streams.normalize.fast.x import fast_x

FAST: dict[str, FastNormalizer] = {
    "bluesky": fast_bluesky,
    "reddit": fast_reddit,
    "mastodon": fast_mastodon,
    "x": fast_x,
    "facebook": fast_facebook,
    "instagram": fast_instagram,
}
