"""The simulator's world: actors, messages, threads, id factories, knobs, the brand's clock.

Pure and deterministic: every random choice goes through the ``random.Random`` handed in,
content ids are hashes, and no set is ever iterated (string hashing is salted per process).
Platform renderers (``social``, ``pages``) turn the :class:`Msg` objects made here
into native payloads.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from streams.clients import Client, TrackedAccount

if TYPE_CHECKING:
    from streams.simulator.render import Renderer

MINUTE = 60_000
HOUR = 60 * MINUTE
TWITTER_EPOCH_MS = 1_288_834_974_657
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable, as atproto TIDs use
_DID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class Actor:
    """A person or a brand on one platform, as that platform names them."""

    id: str  # DID, Reddit name, Mastodon/X/Facebook/Instagram numeric id
    handle: str  # Bluesky handle, Reddit name, username, Facebook display name
    name: str  # display name
    domain: str = ""  # Mastodon: the account's server
    brand: bool = False
    fullname: str = ""  # Reddit: t2_ id
    gone: bool = False  # Reddit "[deleted]": not a person, addresses no one


@dataclass(frozen=True, slots=True)
class Tag:
    """A listened hashtag (``#coffee``) or keyword (``coffee``) inside a text."""

    name: str
    hashtag: bool = True


Part = str | Actor | Tag


@dataclass(eq=False)
class Account:
    """One tracked account and its simulated surroundings."""

    client: Client
    acc: TrackedAccount
    renderer: Renderer
    brand: Actor
    people: list[Actor]
    weights: list[float]
    hours: Hours
    subs: list[str]  # Reddit: listened subreddits (names without r/)
    tags: list[tuple[str, Tag]]  # other platforms: (listen entry, its token)
    recent: deque[Msg] = field(default_factory=lambda: deque(maxlen=6))
    followers: dict[str, bool] = field(default_factory=dict)


@dataclass(eq=False)
class Thread:
    account: Account
    listen: str | None = None  # the listened source the thread lives in ("r/acme", "#coffee")
    venue: str = ""  # Reddit: the subreddit
    chatter: bool = True  # whether people's talk among themselves reaches the account
    root: Msg | None = None
    slug: str = ""


@dataclass(eq=False)
class Msg:
    """One post, reply or comment; ``id`` and ``extra`` are filled in by its renderer."""

    thread: Thread
    author: Actor
    parent: Msg | None
    parts: tuple[Part, ...]
    t: int  # event time, epoch ms
    role: str  # root | inbound | answer | chatter | chime | mention | listen
    lang: str = "en"
    title: str = ""
    quoted: Msg | None = None
    turn: int = 0  # brand answers so far in this exchange (follow-ups grow rarer)
    id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    def shown_parent(self, flat: bool) -> Msg | None:
        """The parent the payload names: Facebook and Instagram nest comments two levels
        deep at most, so a reply to a reply is filed under the top-level comment."""
        parent = self.parent
        if flat:
            while parent is not None and parent.depth > 1:
                parent = parent.parent
        return parent

    def mentions(self) -> list[Actor]:
        return [p for p in self.parts if isinstance(p, Actor)]


@dataclass(frozen=True, slots=True)
class Out:
    """One rendered payload, with what the emitter needs to reorder it."""

    platform: str
    payload: dict[str, Any]
    source: str
    event_ms: int
    via: str | None = None
    ref: str | None = None  # the event id it carries (when it has one)
    parent_ref: str | None = None  # the emitted parent it replies to (when it has one)


@dataclass(frozen=True)
class TrafficModel:
    """The knobs of the traffic model; rates are probabilities, delays are means (ms)."""

    replies_per_post: float = 3.0
    likes_per_post: float = 14.0
    reposts_per_post: float = 3.0
    quote_rate: float = 0.15  # X: a brand post is quoted
    reply_delay_ms: int = 15 * MINUTE
    signal_delay_ms: int = 20 * MINUTE
    followup_rate: float = 0.5  # a person answers the brand's answer ...
    followup_decay: float = 0.6  # ... less and less often as the exchange goes on
    followup_delay_ms: int = 6 * MINUTE
    chatter_rate: float = 0.25  # someone replies to a person's message in the thread
    chatter_decay: float = 0.6
    chatter_delay_ms: int = 4 * MINUTE
    chatter_mention_rate: float = 0.08  # ... and calls the brand in ("cc @brand")
    listen_replies: float = 1.2  # replies to a post in a listened subreddit
    chime_in_rate: float = 0.2  # the brand joins a listened post unasked
    thank_like_rate: float = 0.25  # the person likes the brand's answer
    delete_rate: float = 0.03
    delete_delay_ms: int = 20 * MINUTE
    edit_rate: float = 0.05  # Mastodon: the brand edits a post
    gone_author_rate: float = 0.06  # Reddit: a chatter comment's author is [deleted]
    max_depth: int = 12
    frequent_skew: float = 0.8  # Zipf exponent of people's activity
    # (weight, shortest, longest): the brand's answer delay, log-uniform within a band.
    answer_delays: tuple[tuple[float, int, int], ...] = (
        (0.30, 5_000, 2 * MINUTE),
        (0.35, 2 * MINUTE, 30 * MINUTE),
        (0.25, 30 * MINUTE, 4 * HOUR),
        (0.10, 4 * HOUR, 26 * HOUR),
    )
    after_hours_ms: int = 20 * MINUTE  # mean wait past the opening for a night's backlog
    # Spontaneous actions and their weights.
    actions: tuple[tuple[str, float], ...] = (
        ("post", 0.6), ("mention", 1.2), ("follow", 1.0), ("listen", 1.0), ("extra", 0.15),
    )


def iso_ms(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


class Ids:
    """Id factories in each platform's own form; unique within one run."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._seq = 0
        # TIDs drawn lately: two can only meet within the clients' clock skew, so a
        # bounded memory keeps them unique without growing with an endless stream.
        self._tids: set[str] = set()
        self._tid_order: deque[str] = deque()
        self.reddit_link = int("1h00000", 36) + rng.randrange(36**5)
        self.reddit_comment = int("m000000", 36) + rng.randrange(36**5)
        self.fb_post = 800_000_000_000_000 + rng.randrange(10**12)
        self.fb_comment = 900_000_000_000_000 + rng.randrange(10**12)
        self.ig_media = 17_900_000_000_000_000 + rng.randrange(10**12)
        self.ig_comment = 17_865_000_000_000_000 + rng.randrange(10**12)
        self.notification = 5_000_000 + rng.randrange(10**6)
        self.jetstream_seq = 1_000_000_000 + rng.randrange(10**8)

    def seq(self) -> int:
        self._seq += 1
        return self._seq

    def tid(self, us: int) -> str:
        """An atproto TID: 53 bits of microseconds, 10 bits of clock id, base32-sortable."""
        value = (us << 10) | (self.seq() % 1024)
        while True:
            tid = "".join(_TID_ALPHABET[(value >> (60 - 5 * i)) & 31] for i in range(13))
            if tid not in self._tids:
                self._tids.add(tid)
                self._tid_order.append(tid)
                if len(self._tid_order) > 100_000:
                    self._tids.discard(self._tid_order.popleft())
                return tid
            value += 1

    @staticmethod
    def cid(key: str) -> str:
        digest = hashlib.sha256(key.encode()).digest()
        return "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")

    def did(self) -> str:
        return "did:plc:" + "".join(self.rng.choice(_DID_ALPHABET) for _ in range(24))

    def x_id(self, ms: int) -> str:
        """A snowflake: milliseconds since the X epoch, then worker and sequence bits."""
        return str(((ms - TWITTER_EPOCH_MS) << 22) | (self.seq() % (1 << 22)))

    def mastodon_id(self, ms: int) -> str:
        return str((ms << 16) | (self.seq() % (1 << 16)))

    def next(self, counter: str) -> int:
        """Advance one of the numeric counters above by a small random step."""
        value: int = getattr(self, counter) + self.rng.randint(1, 37)
        setattr(self, counter, value)
        return value


class Hours:
    """The brand's business hours: answers given outside them wait for the next opening."""

    def __init__(self, client: Client) -> None:
        self.zone = ZoneInfo(client.timezone)
        self.weekly = client.weekly_hours()
        self.holidays: set[date] = set(client.holidays)

    def next_open(self, ms: int) -> int:
        """``ms`` itself when the brand is at work then, else the next opening time."""
        if self.weekly is None and not self.holidays:
            return ms
        here = datetime.fromtimestamp(ms / 1000, self.zone)
        for ahead in range(15):
            day = here.date() + timedelta(days=ahead)
            if day in self.holidays:
                continue
            ranges = self.weekly.get(day.weekday(), ()) if self.weekly is not None else ((0, 24 * 60),)
            midnight = datetime.combine(day, time(0))
            for start, end in ranges:  # minutes after midnight; an end past 1440 runs into the next day
                opens = (midnight + timedelta(minutes=start)).replace(tzinfo=self.zone)
                closes = (midnight + timedelta(minutes=end)).replace(tzinfo=self.zone)
                if here < closes:
                    return int(max(opens, here).timestamp() * 1000)
        return ms


# --- people -------------------------------------------------------------------------

_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "ß": "ss", "æ": "ae"})


def ascii_fold(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.translate(_FOLD))
    return decomposed.encode("ascii", "ignore").decode()


def zipf_weights(n: int, skew: float) -> list[float]:
    """Activity weights: a few frequent people, a long tail of occasional ones."""
    return [1.0 / (rank + 1) ** skew for rank in range(n)]


def compose(parts: tuple[Part, ...], token: Callable[[Actor], str],
            tag_token: Callable[[Tag], str] = lambda t: ("#" if t.hashtag else "") + t.name,
            ) -> tuple[str, list[tuple[Actor | Tag, int, int]]]:
    """Plain text and the character spans of its mentions and tags."""
    text = ""
    spans: list[tuple[Actor | Tag, int, int]] = []
    for part in parts:
        if isinstance(part, str):
            text += part
            continue
        piece = token(part) if isinstance(part, Actor) else tag_token(part)
        spans.append((part, len(text), len(text) + len(piece)))
        text += piece
    return text, spans


def slugify(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", ascii_fold(text).lower())
    return "_".join(words[:8]) or "post"
