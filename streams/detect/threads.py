"""Thread stitching for one tracked account: posts in any order become threads.

A thread is identified by ``(platform, root_id)``. The root comes from the payload where
the platform says it (Bluesky ``reply.root``, X ``conversation_id``, Reddit ``link_id``,
Facebook ``post_id``, Instagram media id, the DM conversation id); a message without a
parent is its own root. Mastodon names no root: a reply there joins the thread of its
parent, and while the parent is unknown it is filed *provisionally* under the missing
parent's id, the highest ancestor that can be named. When that parent arrives and turns
out to have a parent of its own, the provisional thread is folded into the larger one and
its id is reported as *retracted*, so its row can be superseded. Every post therefore ends
up in the thread of "the top of its chain through known posts", whatever the arrival
order; a post whose parent never arrives still counts in the thread it names.

Depth follows README "thread": the root is at 0, a direct reply at 1; a post whose parent
is missing (and is not the root) sits at 2, as if the parent hung directly under the
root; a message without a parent that is not the root (a DM in a conversation) sits at 1.
When a missing parent arrives, the thread's depths are recomputed (a provisional thread
folded under its newly arrived top post is shifted instead, costing only the moved
posts). Posts that never arrived are not counted as posts or participants. Reply cycles
cannot happen on the platforms; in bad data they are cut so that work stays finite, but
the result may then depend on arrival order.

Memory: a thread keeps, per post, one slotted :class:`Post` (id, parent, author, handle,
time, depth, thread, declared root and two addressing facts owned by the caller). Author
ids and roots are interned, a known parent's id is shared with the parent. Orphans wait in
one index keyed by the missing parent id. Idle threads can be evicted; because adding is
idempotent and order-independent, a woken thread is restored by adding its stored
interactions again (see :meth:`ThreadBook.evict_idle`). The ids of evicted threads are
remembered for one more horizon and at most ``max_evicted`` of them; past that a platform
is marked *forgotten* and every thread not in memory counts as possibly evicted (the
caller asks the store), so the bookkeeping stays bounded and the results stay exact.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from streams.detect.addressing import parent_of
from streams.detect.identity import canonical_id, is_person
from streams.interaction import SIGNAL_KINDS, Interaction

ThreadId = tuple[str, str]
"""``(platform, root_id)``."""

_SMALL_AUTHORS = 8  # beyond this many participants a thread switches from a tuple to a set
_SMALL_POSTS = 8  # beyond this many posts a thread switches from a tuple to a list


def declared_root(msg: Interaction, account: str) -> str | None:
    """The root the payload decides for ``msg``, or ``None`` when it must be found by climbing.

    ``account`` is the tracked account's canonical id (a DM without a conversation id
    falls back to the pair account-person, written ``dm:<person>``).
    """
    if msg.root_id:
        return msg.root_id
    if msg.kind == "dm":
        author = canonical_id(msg.platform, msg.author_id)
        person = canonical_id(msg.platform, msg.recipient_id) if author == account else author
        return f"dm:{person}"
    if parent_of(msg) is None:
        return msg.event_id
    return None


class Post:
    """One known post of a thread, kept as small as the metrics allow."""

    __slots__ = (
        "id",
        "parent",
        "author",
        "handle",
        "at",
        "depth",
        "thread",
        "root",
        "named",
        "parent_author",
    )

    def __init__(
        self,
        id: str,
        parent: str | None,
        author: str,
        handle: str,
        at: int,
        root: str | None,
        named: tuple[str, ...],
        parent_author: str | None,
    ) -> None:
        self.id = id
        self.parent = parent
        self.author = author  # canonical; "" when unknown
        self.handle = handle
        self.at = at
        self.depth = 0
        self.thread: Thread
        self.root = root  # declared root, None when derived from the parent chain
        self.named = named  # caller-owned addressing facts (see streams.detect.addressing)
        self.parent_author = parent_author

    @property
    def platform(self) -> str:
        return self.thread.platform

    @property
    def tid(self) -> ThreadId:
        return self.thread.tid


@dataclass(frozen=True, slots=True)
class ThreadStats:
    """The metrics of one thread (README "thread")."""

    platform: str
    root_id: str
    posts: int
    depth: int
    participants: int
    account_posts: int
    first_at: int
    last_at: int


class Thread:
    """The known posts of one thread and their running statistics."""

    __slots__ = (
        "platform",
        "root",
        "posts",
        "depth",
        "account_posts",
        "first_at",
        "last_at",
        "_authors",
        "ext",
    )

    def __init__(self, platform: str, root: str) -> None:
        self.platform = platform
        self.root = root
        self.posts: tuple[Post, ...] | list[Post] = ()
        """A tuple while the thread is small (most are: no list object, no over-allocation),
        a list past ``_SMALL_POSTS`` so that a long thread appends in constant time."""
        self.depth = 0
        self.account_posts = 0
        self.first_at = 0
        self.last_at = 0
        self._authors: tuple[str, ...] | set[str] = ()
        self.ext: Any = None
        """Caller-owned data that lives and dies with the thread (the facade's exchanges)."""

    @property
    def tid(self) -> ThreadId:
        return (self.platform, self.root)

    @property
    def participants(self) -> int:
        return len(self._authors)

    def attach(self, post: Post, account: str) -> None:
        """Count ``post`` in this thread (depth is the book's business)."""
        if not self.posts:
            self.first_at = self.last_at = post.at
        else:
            self.first_at = min(self.first_at, post.at)
            self.last_at = max(self.last_at, post.at)
        if isinstance(self.posts, list):
            self.posts.append(post)
        elif len(self.posts) < _SMALL_POSTS:
            self.posts = (*self.posts, post)
        else:
            self.posts = [*self.posts, post]
        post.thread = self
        if post.author == account:
            self.account_posts += 1
        author = post.author
        if is_person(author) and author not in self._authors:
            if isinstance(self._authors, set):
                self._authors.add(author)
            elif len(self._authors) < _SMALL_AUTHORS:
                self._authors = (*self._authors, author)
            else:
                self._authors = {*self._authors, author}

    def reset(self, posts: list[Post], account: str) -> None:
        """Recount from scratch over ``posts`` (after some were moved to another thread)."""
        self.posts, self.account_posts, self._authors = (), 0, ()
        for post in posts:
            self.attach(post, account)

    def stats(self) -> ThreadStats:
        return ThreadStats(
            platform=self.platform,
            root_id=self.root,
            posts=len(self.posts),
            depth=self.depth,
            participants=self.participants,
            account_posts=self.account_posts,
            first_at=self.first_at,
            last_at=self.last_at,
        )


@dataclass(frozen=True, slots=True)
class Merge:
    """A provisional thread folded into a larger one."""

    src: Thread
    """The provisional thread (its ``tid`` is the retracted id when ``complete``)."""
    dst: Thread
    complete: bool
    """All of ``src``'s posts moved (the usual case); else some stayed in ``src``."""


@dataclass(frozen=True, slots=True)
class Added:
    """What adding one post changed."""

    post: Post
    adopted: tuple[Post, ...]
    """Posts that were waiting for this one as their parent (their parent is now known)."""
    merged: tuple[Merge, ...]
    changed: tuple[ThreadId, ...]
    retracted: tuple[ThreadId, ...]


class ThreadBook:
    """All threads of one tracked account, stitched incrementally.

    :meth:`add` accepts messages (not signals) in any order and any number of times; the
    resulting state is the same for every arrival order, and equals :meth:`rebuild` over
    the same messages.
    """

    def __init__(self, account_id: str, max_evicted: int = 100_000) -> None:
        self.account_id = account_id
        self.max_evicted = max_evicted
        self._accounts: dict[str, str] = {}
        self._threads: dict[str, dict[str, Thread]] = {}  # platform -> root -> thread
        self._posts: dict[str, dict[str, Post]] = {}
        self._waiting: dict[str, dict[str, list[Post]]] = {}
        self.evicted: dict[ThreadId, int] = {}
        """Evicted thread ids -> their last activity, oldest eviction first (bounded)."""
        self.forgotten: set[str] = set()
        """Platforms where evicted ids were dropped: any thread not in memory may be evicted."""
        self.duplicates = 0
        self.retractions = 0
        self.evictions = 0

    @classmethod
    def rebuild(cls, account_id: str, interactions: Iterable[Interaction]) -> ThreadBook:
        """The book as it is after adding ``interactions``: how a restart recovers state."""
        book = cls(account_id)
        for msg in sorted(interactions, key=lambda m: (m.created_at, m.event_id)):
            if msg.kind not in SIGNAL_KINDS:
                book.add(msg)
        return book

    # -- look-ups ---------------------------------------------------------------------

    def account(self, platform: str) -> str:
        """The tracked account's canonical id on ``platform``."""
        found = self._accounts.get(platform)
        if found is None:
            found = self._accounts[platform] = canonical_id(platform, self.account_id)
        return found

    def post(self, platform: str, event_id: str) -> Post | None:
        return self._posts.get(platform, {}).get(event_id)

    def thread(self, tid: ThreadId) -> Thread | None:
        return self._threads.get(tid[0], {}).get(tid[1])

    def threads(self) -> Iterator[Thread]:
        for by_root in self._threads.values():
            yield from by_root.values()

    def __len__(self) -> int:
        return sum(len(by_root) for by_root in self._threads.values())

    def root_for(self, msg: Interaction) -> ThreadId:
        """The thread ``msg`` belongs to as far as the book knows now (it may be evicted)."""
        platform = msg.platform
        root = declared_root(msg, self.account(platform))
        if root is None:
            parent_id = parent_of(msg)
            assert parent_id is not None
            parent = self.post(platform, parent_id)
            root = parent.thread.root if parent is not None else parent_id
        return (platform, root)

    def maybe_evicted(self, tid: ThreadId) -> bool:
        """``tid`` may have been evicted: remembered as such, or not in memory on a
        platform whose evicted ids were forgotten (the store then decides)."""
        if tid in self.evicted:
            return True
        return tid[0] in self.forgotten and self.thread(tid) is None

    def needs_restore(self, msg: Interaction) -> tuple[ThreadId, ...]:
        """The evicted threads ``msg`` would wake up, so the caller can restore them first.

        That is the thread it joins and, where roots are derived (Mastodon), an evicted
        provisional thread named after ``msg`` itself (its orphans were waiting for it).
        On a forgotten platform these are candidates: the store holds nothing for a new one.
        """
        wanted = (self.root_for(msg), (msg.platform, msg.event_id))
        return tuple(dict.fromkeys(t for t in wanted if self.maybe_evicted(t)))

    def snapshot(self) -> dict[ThreadId, ThreadStats]:
        return {t.tid: t.stats() for t in self.threads()}

    # -- adding -----------------------------------------------------------------------

    def add(
        self,
        msg: Interaction,
        named: tuple[str, ...] = (),
        parent_author: str | None = None,
    ) -> Added | None:
        """File one message; ``None`` when its event id is already known (a duplicate).

        ``named`` and ``parent_author`` are stored on the post for the caller (addressing).
        """
        platform = msg.platform
        account = self.account(platform)
        index = self._posts.setdefault(platform, {})
        if msg.event_id in index:
            self.duplicates += 1
            return None
        parent_id = parent_of(msg)
        parent = index.get(parent_id) if parent_id is not None else None
        declared = declared_root(msg, account)
        if declared is not None:
            declared = sys.intern(declared)
            root = declared
        elif parent is not None:
            root = parent.thread.root
        else:
            assert parent_id is not None
            root = sys.intern(parent_id)
        post = Post(
            id=declared if declared == msg.event_id else msg.event_id,
            parent=parent.id if parent is not None else parent_id,
            author=canonical_id(platform, msg.author_id),
            handle=sys.intern(msg.author_handle) if msg.author_handle else "",
            at=msg.created_at,
            root=declared,
            named=named,
            parent_author=parent_author,
        )
        index[post.id] = post
        self.evicted.pop((platform, root), None)
        threads = self._threads.setdefault(platform, {})
        thread = threads.get(root)
        if thread is None:
            thread = threads[root] = Thread(platform, root)
        thread.attach(post, account)
        if parent_id is not None and parent is None:
            self._waiting.setdefault(platform, {}).setdefault(parent_id, []).append(post)

        children = self._waiting.get(platform, {}).pop(post.id, None)
        post.depth = self._depth_of(post, thread, index)
        thread.depth = max(thread.depth, post.depth)
        if not children:
            return Added(post, (), (), (thread.tid,), ())
        for child in children:
            child.parent = post.id
        changed: dict[ThreadId, None] = {thread.tid: None}
        merged: list[Merge] = []
        retracted: list[ThreadId] = []
        depth_done = False
        provisional = threads.get(post.id)
        if provisional is thread:
            provisional = None  # this post is the root its orphans were waiting for
        moving = [p for p in provisional.posts if p.root is None] if provisional else []
        if provisional is not None and moving:
            staying = [p for p in provisional.posts if p.root is not None]
            for p in moving:
                thread.attach(p, account)
            merged.append(Merge(provisional, thread, complete=not staying))
            if staying:
                provisional.reset(staying, account)
                self._recompute_depth(provisional)
                changed[provisional.tid] = None
            else:
                del threads[provisional.root]
                retracted.append(provisional.tid)
                self.retractions += 1
                if all(c.root is None for c in children):
                    # Every moved post hangs below this one and had its depth counted
                    # from this post as the root: shifting by this post's depth is exact
                    # and costs the moved posts only, not a pass over the whole thread.
                    for p in moving:
                        p.depth += post.depth
                    thread.depth = max(thread.depth, provisional.depth + post.depth)
                    depth_done = True
        if not depth_done:
            self._recompute_depth(thread)
        return Added(post, tuple(children), tuple(merged), tuple(changed), tuple(retracted))

    # -- depth ------------------------------------------------------------------------

    @staticmethod
    def _parent_in(post: Post, thread: Thread, index: dict[str, Post]) -> Post | None:
        """The post's parent when it is a known non-root post of the same thread."""
        if post.id == thread.root or post.parent is None or post.parent == thread.root:
            return None
        parent = index.get(post.parent)
        return parent if parent is not None and parent.thread is thread else None

    @staticmethod
    def _base_depth(post: Post, thread: Thread) -> int:
        """Depth of a post whose parent is not a known post of the thread."""
        if post.id == thread.root:
            return 0
        if post.parent is None or post.parent == thread.root:
            return 1
        return 2  # missing parent: one level under the root

    def _depth_of(self, post: Post, thread: Thread, index: dict[str, Post]) -> int:
        parent = self._parent_in(post, thread, index)
        return parent.depth + 1 if parent is not None else self._base_depth(post, thread)

    def _recompute_depth(self, thread: Thread) -> None:
        """Depth of every post from scratch: needed when a missing parent arrives."""
        index = self._posts[thread.platform]
        memo: dict[str, int] = {}
        for post in thread.posts:
            chain: list[Post] = []
            on_chain: set[str] = set()
            cur = post
            while cur.id not in memo:
                parent = self._parent_in(cur, thread, index)
                if parent is None:
                    memo[cur.id] = self._base_depth(cur, thread)
                elif parent.id in on_chain:
                    memo[cur.id] = 2  # a cycle in bad data: cut it as a missing parent
                else:
                    chain.append(cur)
                    on_chain.add(cur.id)
                    cur = parent
            depth = memo[cur.id]
            for link in reversed(chain):
                depth += 1
                memo[link.id] = depth
        thread.depth = 0
        for post in thread.posts:
            post.depth = memo[post.id]
            thread.depth = max(thread.depth, post.depth)

    # -- eviction ---------------------------------------------------------------------

    def evict_idle(
        self,
        now_ms: int,
        horizon_ms: int,
        keep: Callable[[ThreadId], bool] | None = None,
        on_evict: Callable[[Thread], None] | None = None,
    ) -> list[ThreadId]:
        """Drop threads whose last activity is older than ``now_ms - horizon_ms``.

        ``keep`` may veto a thread (the facade keeps threads with open responses);
        ``on_evict`` sees each thread before it goes (to drop what hangs on it). The
        evicted ids are returned and remembered in :attr:`evicted`: when a message for
        one of them arrives (:meth:`needs_restore`), the caller adds the thread's stored
        interactions again before the new one, which restores it exactly. Limitation:
        a Mastodon reply to an evicted post can not be traced to its thread from here
        (the chain is gone with the thread); the caller resolves its parent through the
        store.
        """
        cutoff = now_ms - horizon_ms
        out: list[ThreadId] = []
        for thread in list(self.threads()):
            tid = thread.tid
            if thread.last_at >= cutoff or (keep is not None and keep(tid)):
                continue
            if on_evict is not None:
                on_evict(thread)
            index = self._posts[thread.platform]
            waiting = self._waiting.get(thread.platform, {})
            for post in thread.posts:
                del index[post.id]
                if post.parent is not None and post.parent in waiting:
                    rest = [p for p in waiting[post.parent] if p is not post]
                    if rest:
                        waiting[post.parent] = rest
                    else:
                        del waiting[post.parent]
            del self._threads[thread.platform][thread.root]
            # A thread and its posts point at each other (``post.thread``, and the exchanges
            # on ``ext`` hold posts too): left so, an evicted thread is cyclic garbage that
            # only a full collection frees, and the worker's collector thresholds
            # (streams/worker.py) make those rare, so memory grew with every thread evicted
            # (the soak, bench/README.md). Cutting the thread's side frees it by reference
            # counting now; a post still referenced elsewhere keeps a valid ``thread``.
            thread.posts = ()
            thread.ext = None
            self.evicted.pop(tid, None)
            self.evicted[tid] = thread.last_at
            out.append(tid)
        self.evictions += len(out)
        self._forget_evicted(cutoff - horizon_ms)
        return out

    def _forget_evicted(self, before_ms: int) -> None:
        """Drop evicted ids idle since before ``before_ms`` and any beyond ``max_evicted``.

        Their platform becomes *forgotten*: from then on :meth:`needs_restore` names every
        thread a message joins that is not in memory, and the store says whether it existed.
        """
        drop = [t for t, last in self.evicted.items() if last < before_ms]
        excess = len(self.evicted) - len(drop) - self.max_evicted
        if excess > 0:
            kept = (t for t, last in self.evicted.items() if last >= before_ms)
            drop.extend(t for _, t in zip(range(excess), kept, strict=False))
        for tid in drop:
            del self.evicted[tid]
            self.forgotten.add(tid[0])
