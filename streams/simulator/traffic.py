"""`rapport simulate`'s generator: realistic, deterministic traffic for a clients file.

Pure: no I/O, no Kafka, no wall clock once the start time is fixed. It yields payloads in
each platform's native shape (the ones the ingest agents receive, see
``shared/fixtures``), labelled with the source the real agent would give them, so the
real normalizers parse them. Same clients file + same seed + same start = same stream.

The traffic model, per tracked account (knobs in :class:`TrafficModel`):

- the brand posts now and then; each post draws replies from people, and likes, reposts
  and quotes where the platform delivers them (vanity signals outnumber replies);
- people mention the brand out of the blue, post in its listened sources (subreddits,
  hashtags), follow it; each platform's pool of people has a few frequent members
  (Zipf weights), so the same person starts conversations in several threads;
- the brand answers an inbound message with probability ``answer_rate`` after a delay
  from seconds to a day (a mixture of bands), pushed past closed business hours, so some
  answers miss the SLA; people follow up on answers (nested chains that die out), talk
  among themselves in the brand's threads, delete a message now and then;
- events are generated in event-time order and then emitted through a reorder window:
  about ``reorder_rate`` of the replies are emitted before their parent (about
  ``reorder_window`` events early at most), as a polling agent or a relay delivers them.
  Only a reply whose parent is still in the window can overtake it, which caps the rate
  reached (near 15% with the default knobs).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from streams.clients import Client, ClientsFile, TrackedAccount
from streams.simulator import texts
from streams.simulator.pages import GONE, Facebook, Instagram, Reddit
from streams.simulator.render import Renderer
from streams.simulator.social import Bluesky, Mastodon, X
from streams.simulator.texts import fill
from streams.simulator.world import (
    MINUTE,
    Account,
    Actor,
    Hours,
    Ids,
    Msg,
    Out,
    Part,
    Tag,
    Thread,
    TrafficModel,
    zipf_weights,
)

__all__ = ["SimEvent", "Simulator", "TrafficModel", "payloads_by_platform"]

RENDERERS: dict[str, type[Renderer]] = {
    "bluesky": Bluesky, "mastodon": Mastodon, "x": X,
    "reddit": Reddit, "facebook": Facebook, "instagram": Instagram,
}
# Events one spontaneous action brings on average (its cascade included): the base of
# the pacing controller that holds the mean gap between events near ``mean_gap_ms``.
_CASCADE = 6.0
_CREDIT_CAP = 2.0  # reorder credit that may pile up while no reply can overtake its parent


@dataclass(frozen=True)
class SimEvent:
    """One simulated delivery, exactly as the platform's agent would publish it."""

    platform: str  # bluesky | reddit | mastodon | x | facebook | instagram
    payload: dict[str, Any]  # the native payload (JSON-serialisable)
    source: str  # stream | webhook | inbox | listen:<source>
    event_ms: int  # the event time the payload carries (for pacing)
    # The tracked account whose own source delivered it (user stream, inbox, Page
    # webhook): what the agent puts in ``Arrival.via_account``; None for shared streams.
    via_account: str | None = None


class Simulator:
    """Deterministic traffic for every tracked account of ``clients``."""

    def __init__(self, clients: ClientsFile, seed: int = 0, start_ms: int | None = None,
                 answer_rate: float = 0.6, reorder_rate: float = 0.05,
                 people_per_account: int = 40, *, mean_gap_ms: int = 2000,
                 reorder_window: int = 32, model: TrafficModel | None = None) -> None:
        if not 0.0 <= answer_rate <= 1.0 or not 0.0 <= reorder_rate <= 1.0:
            raise ValueError("answer_rate and reorder_rate are probabilities (0..1)")
        if people_per_account < 2:
            raise ValueError("people_per_account must be at least 2 (people talk to each other)")
        if mean_gap_ms < 1 or reorder_window < 1:
            raise ValueError("mean_gap_ms and reorder_window must be positive")
        self.clients = clients
        self.seed = seed
        self.start_ms = int(time.time() * 1000) if start_ms is None else start_ms
        self.answer_rate = answer_rate
        self.reorder_rate = reorder_rate
        self.people_per_account = people_per_account
        self.mean_gap_ms = mean_gap_ms
        self.reorder_window = reorder_window
        self.model = model or TrafficModel()

    def events(self, count: int | None = None) -> Iterator[SimEvent]:
        """The stream in emission order from the start; infinite when ``count`` is None.
        Every call starts afresh, so a shorter stream is a prefix of a longer one."""
        stream = _Run(self).events()
        return stream if count is None else itertools.islice(stream, count)


def payloads_by_platform(events: Iterable[SimEvent]) -> dict[str, list[dict[str, Any]]]:
    """Payloads grouped per platform in emission order (one JSONL replay file each)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        out.setdefault(event.platform, []).append(event.payload)
    return out


class _Run:
    """One pass of the simulation: a heap of timed actions, then the reorder window."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.m = sim.model
        self.rng = random.Random(sim.seed)
        self.ids = Ids(self.rng)
        self.renderers: dict[str, Renderer] = {}
        self.accounts = [self._account(c, a) for c, a in sim.clients.accounts()]
        self.heap: list[tuple[int, int, Callable[..., list[Out]], tuple[Any, ...]]] = []
        self.seq = 0
        self.now = sim.start_ms
        self.made = 0
        self.credit = 0.0
        self._push(sim.start_ms, self._spontaneous)

    # --- set-up and plumbing ------------------------------------------------------------
    def _account(self, client: Client, acc: TrackedAccount) -> Account:
        if acc.platform not in self.renderers:
            self.renderers[acc.platform] = RENDERERS[acc.platform](self.ids, self.rng)
        r = self.renderers[acc.platform]
        brand = r.brand(client, acc)
        n = self.sim.people_per_account
        people = [r.person(self.rng.choice(texts.FIRST), self.rng.choice(texts.LAST), brand)
                  for _ in range(n)]
        subs: list[str] = []
        tags: list[tuple[str, Tag]] = []
        for src in (s.strip() for s in acc.listen):
            if acc.platform == "reddit":
                subs.append(src.removeprefix("/").removeprefix("r/"))
            elif r.listens_tags and src.lstrip("#"):
                tags.append((src, Tag(src.lstrip("#"), src.startswith("#"))))
        return Account(client, acc, r, brand, people, zipf_weights(n, self.m.frequent_skew),
                       Hours(client), subs, tags)

    def _push(self, t: int, fn: Callable[..., list[Out]], *args: Any) -> None:
        heapq.heappush(self.heap, (t, self.seq, fn, args))
        self.seq += 1

    def _after(self, delay_ms: float) -> int:
        return self.now + max(1, int(self.rng.expovariate(1.0 / delay_ms)))

    def _poisson(self, lam: float) -> int:
        limit, k, p = math.exp(-lam), 0, self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    def _pick(self, account: Account, exclude: Actor | None = None) -> Actor:
        while True:
            person = self.rng.choices(account.people, account.weights)[0]
            if exclude is None or person.id != exclude.id:
                return person

    def events(self) -> Iterator[SimEvent]:
        buf: list[Out] = []
        while True:
            t, _, fn, args = heapq.heappop(self.heap)
            self.now = t
            for out in fn(*args):
                self.made += 1
                self._enqueue(buf, out)
            while len(buf) > self.sim.reorder_window:
                out = buf.pop(0)
                yield SimEvent(out.platform, out.payload, out.source, out.event_ms, out.via)

    def _enqueue(self, buf: list[Out], out: Out) -> None:
        """Let a reply overtake its parent while the parent is still in the window."""
        if out.parent_ref is not None and self.sim.reorder_rate > 0:
            self.credit = min(self.credit + self.sim.reorder_rate, _CREDIT_CAP)
            at = next((i for i, o in enumerate(buf) if o.ref == out.parent_ref), None)
            if at is not None and self.rng.random() < self.credit:
                self.credit -= 1.0
                buf.insert(self.rng.randint(0, at), out)
                return
        buf.append(out)

    # --- spontaneous actions ------------------------------------------------------------
    def _spontaneous(self) -> list[Out]:
        account = self.rng.choice(self.accounts)
        r = account.renderer
        able = {"post": True, "mention": True, "follow": r.follows,
                "listen": bool(account.subs or account.tags), "extra": r.extras}
        kinds = [(k, w) for k, w in self.m.actions if able.get(k) and w > 0]
        outs: list[Out] = []
        if kinds:
            kind = self.rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
            outs = getattr(self, f"_s_{kind}")(account)
        # Pacing: behind the target count of events, act sooner; ahead, later.
        behind = (self.now - self.sim.start_ms) / self.sim.mean_gap_ms - self.made
        factor = 2.0 ** max(-4.0, min(4.0, -behind / 25.0))
        self._push(self._after(self.sim.mean_gap_ms * _CASCADE * factor), self._spontaneous)
        return outs

    def _brand_thread(self, account: Account) -> Thread:
        if account.renderer.platform != "reddit":
            return Thread(account)
        if account.subs:
            sub = self.rng.choice(account.subs)
            return Thread(account, listen=f"r/{sub}", venue=sub)
        # No listened subreddit: the brand posts on its profile, people reach it by inbox
        # only, so their talk among themselves is never seen.
        return Thread(account, venue=f"u_{account.brand.handle}", chatter=False)

    def _s_post(self, account: Account) -> list[Out]:
        r, m, t = account.renderer, self.m, self.now
        th = self._brand_thread(account)
        lang, template = self.rng.choice(texts.BRAND_POSTS)
        root = Msg(th, account.brand, None, fill(template, self.rng), t, "root", lang,
                   title=self.rng.choice(texts.BRAND_TITLES))
        th.root = root
        outs = r.post(root)
        account.recent.append(root)
        for _ in range(self._poisson(m.replies_per_post)):
            self._push(self._after(m.reply_delay_ms), self._reply, root, self._pick(account))
        if r.likes:
            fans = {p.id: p for p in (self._pick(account)
                                      for _ in range(self._poisson(m.likes_per_post)))}
            for fan in fans.values():
                self._push(self._after(m.signal_delay_ms), self._signal, "like", account, fan,
                           root)
        if r.reposts:
            for _ in range(self._poisson(m.reposts_per_post)):
                self._push(self._after(m.signal_delay_ms), self._signal, "repost", account,
                           self._pick(account), root)
        if r.quotes and self.rng.random() < m.quote_rate:
            self._push(self._after(m.reply_delay_ms), self._quote, account, self._pick(account),
                       root)
        return outs

    def _s_mention(self, account: Account) -> list[Out]:
        r = account.renderer
        person = self._pick(account)
        if r.mention_elsewhere_rate and self.rng.random() < r.mention_elsewhere_rate:
            return r.mention_elsewhere(account, person, self.now)
        lang, template = self.rng.choice(texts.MENTIONS)
        parts = fill(template, self.rng, mention=account.brand)
        if r.platform == "reddit":
            if account.subs:  # a submission in a listened subreddit naming u/brand
                sub = self.rng.choice(account.subs)
                th = Thread(account, listen=f"r/{sub}", venue=sub)
                return self._root(th, person, parts, "mention", lang,
                                  self.rng.choice(texts.LISTEN_TITLES))
        elif r.mention_starts_thread:
            return self._root(Thread(account), person, parts, "mention", lang)
        if not account.recent:
            return self._s_post(account)
        return self._reply(self.rng.choice(account.recent), person, mention=r.text_mentions)

    def _s_listen(self, account: Account) -> list[Out]:
        person = self._pick(account)
        if account.subs:
            sub = self.rng.choice(account.subs)
            th = Thread(account, listen=f"r/{sub}", venue=sub)
            lang, template = self.rng.choice(texts.INBOUND)
            outs = self._root(th, person, fill(template, self.rng), "listen", lang,
                              self.rng.choice(texts.LISTEN_TITLES))
            assert th.root is not None
            for _ in range(self._poisson(self.m.listen_replies)):
                self._push(self._after(self.m.chatter_delay_ms), self._reply, th.root,
                           self._pick(account, exclude=person))
        else:
            src, tag = self.rng.choice(account.tags)
            th = Thread(account, listen=src, chatter=False)
            lang, template = self.rng.choice(texts.LISTEN_POSTS)
            outs = self._root(th, person, fill(template, self.rng, tag=tag), "listen", lang)
        if th.root is not None and self.rng.random() < self.m.chime_in_rate:
            self._push(self._answer_time(account), self._answer, th.root, "chime")
        return outs

    def _s_follow(self, account: Account) -> list[Out]:
        for _ in range(5):
            person = self._pick(account)
            if person.id not in account.followers:
                account.followers[person.id] = True
                return account.renderer.follow(account, person, self.now)
        return []

    def _s_extra(self, account: Account) -> list[Out]:
        return account.renderer.extra(account, self._pick(account), self.now)

    # --- scheduled actions --------------------------------------------------------------
    def _root(self, th: Thread, author: Actor, parts: tuple[Part, ...], role: str, lang: str,
              title: str = "", quoted: Msg | None = None) -> list[Out]:
        msg = Msg(th, author, None, parts, self.now, role, lang, title=title, quoted=quoted)
        th.root = msg
        outs = th.account.renderer.post(msg)
        self._follow_up(msg)
        return outs

    def _quote(self, account: Account, person: Actor, target: Msg) -> list[Out]:
        lang, template = self.rng.choice(texts.QUOTES)
        return self._root(Thread(account), person, fill(template, self.rng, account.brand),
                          "mention", lang, quoted=target)

    def _reply(self, parent: Msg, author: Actor, mention: bool = False) -> list[Out]:
        if parent.deleted:
            return []
        th = parent.thread
        account, r = th.account, th.account.renderer
        to_brand = parent.author.brand
        table = (texts.INBOUND if parent.role == "root"
                 else texts.FOLLOWUPS if to_brand else texts.CHATTER)
        if mention:
            table = texts.MENTIONS
        lang, template = self.rng.choice(table)
        parts = fill(template, self.rng, mention=account.brand)
        if not mention and r.text_mentions:
            if to_brand and self.rng.random() < r.reply_mention_prob:
                parts = (account.brand, " ", *parts)
            elif not to_brand and self.rng.random() < self.m.chatter_mention_rate:
                parts = (*parts, " cc ", account.brand)
        elif not r.text_mentions:
            parts = tuple(p for p in parts if not isinstance(p, Actor))
        if r.platform == "reddit" and not to_brand and self.rng.random() < self.m.gone_author_rate:
            author = GONE
        role = "inbound" if to_brand else "chatter"
        msg = Msg(th, author, parent, parts, self.now, role, lang, turn=parent.turn)
        outs = r.post(msg)
        self._follow_up(msg)
        return outs

    def _answer(self, msg: Msg, role: str = "answer") -> list[Out]:
        if msg.deleted:
            return []
        account, r = msg.thread.account, msg.thread.account.renderer
        lang, template = self.rng.choice(texts.CHIME_INS if role == "chime" else texts.ANSWERS)
        parts = fill(template, self.rng)
        if r.text_mentions and self.rng.random() < r.answer_mention_prob:
            parts = (msg.author, " ", *parts)
        answer = Msg(msg.thread, account.brand, msg, parts, self.now, role, lang,
                     turn=msg.turn + 1)
        outs = r.post(answer)
        self._follow_up(answer)
        return outs

    def _signal(self, kind: str, account: Account, actor: Actor, target: Msg) -> list[Out]:
        if target.deleted:
            return []
        r = account.renderer
        return (r.like if kind == "like" else r.repost)(account, actor, target, self.now)

    def _delete(self, msg: Msg) -> list[Out]:
        if msg.deleted:
            return []
        msg.deleted = True
        return msg.thread.account.renderer.delete(msg, self.now)

    def _edit(self, msg: Msg) -> list[Out]:
        return [] if msg.deleted else msg.thread.account.renderer.edit(msg, self.now)

    # --- what a message brings on -------------------------------------------------------
    def _addresses_brand(self, msg: Msg) -> bool:
        """Per the addressing rules of the design notes, as the brand's team sees it."""
        if msg.author.brand or msg.author.gone:
            return False
        if msg.parent is not None and msg.parent.author.brand:
            return True
        if msg.quoted is not None and msg.quoted.author.brand:
            return True
        named = any(a.brand for a in msg.mentions())
        return named and (msg.parent is None or msg.thread.account.renderer.reply_mentions_address)

    def _answer_time(self, account: Account) -> int:
        bands = self.m.answer_delays
        _, low, high = self.rng.choices(bands, [b[0] for b in bands])[0]
        t = self.now + int(math.exp(self.rng.uniform(math.log(low), math.log(high))))
        opened = account.hours.next_open(t)
        if opened != t:
            t = opened + int(self.rng.expovariate(1.0 / self.m.after_hours_ms))
        return t

    def _follow_up(self, msg: Msg) -> None:
        """Schedule what ``msg`` brings on: an answer, a follow-up, chatter, a delete."""
        account, r, m, rng = msg.thread.account, msg.thread.account.renderer, self.m, self.rng
        if msg.author.brand:
            person = msg.parent.author if msg.parent is not None else None
            if person is not None and not person.brand and not person.gone:
                if rng.random() < m.followup_rate * m.followup_decay ** max(0, msg.turn - 1):
                    self._push(self._after(m.followup_delay_ms), self._reply, msg, person)
                if r.likes and rng.random() < m.thank_like_rate:
                    self._push(self._after(m.followup_delay_ms), self._signal, "like", account,
                               person, msg)
            if r.edits and rng.random() < m.edit_rate:
                self._push(self._after(10 * MINUTE), self._edit, msg)
            return
        if msg.author.gone:
            return
        if self._addresses_brand(msg) and rng.random() < self.sim.answer_rate:
            self._push(self._answer_time(account), self._answer, msg)
        depth = msg.depth
        if (msg.thread.chatter and depth < m.max_depth
                and rng.random() < m.chatter_rate * m.chatter_decay ** max(0, depth - 1)):
            parent = msg.parent
            if (parent is not None and not parent.author.brand and not parent.author.gone
                    and parent.author.id != msg.author.id and rng.random() < 0.5):
                other = parent.author  # the person answered answers back
            else:
                other = self._pick(account, exclude=msg.author)
            self._push(self._after(m.chatter_delay_ms), self._reply, msg, other)
        if r.deletes and rng.random() < m.delete_rate:
            self._push(self._after(m.delete_delay_ms), self._delete, msg)
