"""Simulator renderers for the owned-page platforms: Reddit, Facebook, Instagram.

Shapes follow ``shared/fixtures`` (``reddit.jsonl``, ``facebook_webhooks.jsonl``,
``instagram_webhooks.jsonl``). Reddit things reach an account through a listened
subreddit (listing comments with ``link_id`` and ``permalink``), its inbox (comments with
``context`` instead of ``link_id``) or its own overview (``stream``). Facebook Page and
Instagram webhooks are deliveries of the account's own object (``entry.id``), with
second-resolution times, and nest comments two levels deep.
"""

from __future__ import annotations

from typing import Any

from streams.clients import Client, TrackedAccount
from streams.simulator.render import Renderer
from streams.simulator.world import Account, Actor, Msg, Out, base36, compose, slugify

SITE = "https://www.reddit.com"
GONE = Actor(id="[deleted]", handle="[deleted]", name="", gone=True)


class Reddit(Renderer):
    platform = "reddit"
    reply_mention_prob = 0.05
    answer_mention_prob = 0.1

    def brand(self, client: Client, acc: TrackedAccount) -> Actor:
        handle = acc.handle.strip().lstrip("@").removeprefix("/").removeprefix("u/")
        name = handle if acc.account_id.startswith("t2_") and handle else (
            acc.account_id.removeprefix("/").removeprefix("u/"))
        self._taken.add(name.lower())
        fullname = acc.account_id if acc.account_id.startswith("t2_") else self._t2()
        return Actor(name, name, client.name or name, brand=True, fullname=fullname)

    def _t2(self) -> str:
        return "t2_" + base36(self.rng.randrange(36**7, 36**8))

    def person(self, first: str, last: str, brand: Actor) -> Actor:
        if self.rng.random() < 0.15:
            name = self.handle_for("throwaway", str(self.rng.randrange(1000, 9999)))
        else:
            name = self.handle_for(first, last)
        if self.rng.random() < 0.3:
            name = name.capitalize()
        return Actor(name, name, name, fullname=self._t2())

    def source(self, msg: Msg) -> str:
        th = msg.thread
        if th.listen:
            return f"listen:{th.listen}"
        return "stream" if msg.author.brand else "inbox"

    def post(self, msg: Msg) -> list[Out]:
        th = msg.thread
        sub = th.venue
        text, _ = compose(msg.parts, lambda a: "u/" + a.handle)
        author = msg.author
        data: dict[str, Any]
        created = msg.t // 1000
        source = self.source(msg)
        via = None if source.startswith("listen:") else th.account.acc.account_id
        if msg.parent is None:
            id36 = base36(self.ids.next("reddit_link"))
            msg.id = f"t3_{id36}"
            th.slug = slugify(msg.title)
            permalink = f"/r/{sub}/comments/{id36}/{th.slug}/"
            prefixed = f"u/{sub[2:]}" if sub.startswith("u_") else f"r/{sub}"
            data = {"id": id36, "name": msg.id, "author": author.handle,
                    "author_fullname": author.fullname, "title": msg.title, "selftext": text,
                    "subreddit": sub, "subreddit_name_prefixed": prefixed,
                    "created_utc": float(created), "permalink": permalink,
                    "url": SITE + permalink, "num_comments": 0, "score": 1, "is_self": True}
            return [self.out({"kind": "t3", "data": data}, source, created * 1000, via, msg.id)]
        root = th.root
        assert root is not None
        id36 = base36(self.ids.next("reddit_comment"))
        msg.id = f"t1_{id36}"
        path = f"/r/{sub}/comments/{root.id[3:]}/{th.slug}/{id36}/"
        data = {"id": id36, "name": msg.id, "author": author.handle,
                "body": "[deleted]" if author.gone else text, "parent_id": msg.parent.id,
                "subreddit": sub, "created_utc": float(created), "score": 1}
        if not author.gone:
            data["author_fullname"] = author.fullname
        if source == "inbox":
            parent_by_brand = msg.parent.author.brand
            kind = ("post_reply" if msg.parent is root else "comment_reply") if (
                parent_by_brand) else "username_mention"
            data.update(context=f"{path}?context=3", link_title=root.title, type=kind,
                        was_comment=True, new=True, dest=th.account.brand.handle)
        else:
            data.update(link_id=root.id, permalink=path, replies="")
        return [self.out({"kind": "t1", "data": data}, source, created * 1000, via, msg.id,
                         msg.parent.id)]


class Facebook(Renderer):
    platform = "facebook"
    likes = deletes = flat = True
    text_mentions = False
    mention_starts_thread = False

    def brand(self, client: Client, acc: TrackedAccount) -> Actor:
        self._ids_taken.add(acc.account_id)
        name = client.name or acc.handle or client.id
        return Actor(acc.account_id, acc.handle or name, name, brand=True)

    def person(self, first: str, last: str, brand: Actor) -> Actor:
        return Actor(self.numeric_id(10**15, 10**16), f"{first} {last}", f"{first} {last}")

    def _delivery(self, account: Account, sec: int, value: dict[str, Any]) -> dict[str, Any]:
        # The webhook is delivered a moment after the change it reports.
        entry = {"id": account.brand.id, "time": sec + self.rng.randint(0, 2),
                 "changes": [{"field": "feed", "value": value}]}
        return {"object": "page", "entry": [entry]}

    @staticmethod
    def _from(actor: Actor) -> dict[str, str]:
        return {"id": actor.id, "name": actor.name}

    def post(self, msg: Msg) -> list[Out]:
        account = msg.thread.account
        sec = msg.t // 1000
        text, _ = compose(msg.parts, lambda a: a.name)
        value: dict[str, Any]
        parent_ref = None
        if msg.parent is None:
            local = self.ids.next("fb_post")
            msg.id = f"{account.brand.id}_{local}"
            msg.extra["local"] = local
            value = {"item": "status", "verb": "add", "post_id": msg.id, "message": text,
                     "from": self._from(msg.author), "created_time": sec, "published": 1}
        else:
            root = msg.thread.root
            shown = msg.shown_parent(True)
            assert root is not None and shown is not None
            msg.id = f"{root.extra['local']}_{self.ids.next('fb_comment')}"
            parent_ref = shown.id
            value = {"item": "comment", "verb": "add", "comment_id": msg.id, "post_id": root.id,
                     "parent_id": shown.id, "from": self._from(msg.author), "message": text,
                     "created_time": sec}
        msg.extra["value"] = value
        return [self.out(self._delivery(account, sec, value), "webhook", sec * 1000,
                         account.brand.id, msg.id, parent_ref)]

    def like(self, account: Account, actor: Actor, target: Msg, t: int) -> list[Out]:
        sec = t // 1000
        root = target.thread.root
        assert root is not None
        value: dict[str, Any] = {
            "item": "reaction", "verb": "add",
            "reaction_type": self.rng.choice(("like", "like", "like", "love", "wow", "care")),
            "post_id": root.id, "parent_id": target.id, "from": self._from(actor),
            "created_time": sec}
        if target is not root:
            value["comment_id"] = target.id
        return [self.out(self._delivery(account, sec, value), "webhook", sec * 1000,
                         account.brand.id)]

    def delete(self, msg: Msg, t: int) -> list[Out]:
        sec = t // 1000
        account = msg.thread.account
        value = {key: msg.extra["value"][key]
                 for key in ("item", "comment_id", "post_id", "parent_id")}
        value.update(verb="remove", **{"from": self._from(msg.author)}, created_time=sec)
        return [self.out(self._delivery(account, sec, value), "webhook", sec * 1000,
                         account.brand.id)]


class Instagram(Renderer):
    platform = "instagram"
    flat = True
    roots_emitted = False
    mention_starts_thread = False
    reply_mention_prob = 0.15
    answer_mention_prob = 1.0  # brands answer "@alice in our web shop, link in bio"
    mention_elsewhere_rate = 0.25

    def person(self, first: str, last: str, brand: Actor) -> Actor:
        return Actor(self.numeric_id(17_841_400_000_000_000, 17_841_499_999_999_999),
                     self.handle_for(first, last, "."), f"{first} {last}")

    def _delivery(self, account: Account, sec: int, field: str,
                  value: dict[str, Any]) -> dict[str, Any]:
        entry = {"id": account.brand.id, "time": sec,
                 "changes": [{"field": field, "value": value}]}
        return {"object": "instagram", "entry": [entry]}

    def post(self, msg: Msg) -> list[Out]:
        if msg.parent is None:
            # The brand's media: a thread's root that no webhook ever delivers.
            msg.id = str(self.ids.next("ig_media"))
            return []
        account = msg.thread.account
        root = msg.thread.root
        shown = msg.shown_parent(True)
        assert root is not None and shown is not None
        msg.id = str(self.ids.next("ig_comment"))
        text, _ = compose(msg.parts, lambda a: "@" + a.handle)
        value: dict[str, Any] = {"id": msg.id, "text": text,
                                 "from": {"id": msg.author.id, "username": msg.author.handle},
                                 "media": {"id": root.id, "media_product_type": "FEED"}}
        parent_ref = None
        if shown is not root:
            value["parent_id"] = parent_ref = shown.id
        sec = msg.t // 1000
        return [self.out(self._delivery(account, sec, "comments", value), "webhook", sec * 1000,
                         account.brand.id, msg.id, parent_ref)]

    def mention_elsewhere(self, account: Account, actor: Actor, t: int) -> list[Out]:
        sec = t // 1000
        value = {"media_id": str(self.ids.next("ig_media")),
                 "comment_id": str(self.ids.next("ig_comment"))}
        return [self.out(self._delivery(account, sec, "mentions", value), "webhook", sec * 1000,
                         account.brand.id, value["comment_id"])]
