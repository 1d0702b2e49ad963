"""Simulator renderers for the open social streams: Bluesky Jetstream, Mastodon, X v2.

Payload shapes follow ``shared/fixtures`` (``bluesky_jetstream.jsonl``,
``mastodon_streaming.jsonl``, ``x_api_v2.jsonl``): Jetstream commit events with strong
refs and UTF-8 byte-range facets, Mastodon streaming events whose ``payload`` is a
JSON-encoded string (status ``content`` as HTML), X filtered-stream responses with
``includes.users`` and ``matching_rules``.
"""

from __future__ import annotations

import hashlib
from html import escape
from typing import Any

from streams.clients import Client, TrackedAccount
from streams.simulator.render import Renderer, dumps, lead_mentions
from streams.simulator.world import Account, Actor, Msg, Out, Tag, compose, iso_ms

POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
REPOST = "app.bsky.feed.repost"
FOLLOW = "app.bsky.graph.follow"


class Bluesky(Renderer):
    platform = "bluesky"
    likes = reposts = follows = deletes = extras = listens_tags = True
    reply_mention_prob = 0.3
    answer_mention_prob = 0.5

    def brand(self, client: Client, acc: TrackedAccount) -> Actor:
        actor = super().brand(client, acc)
        if "." not in actor.handle:
            actor = Actor(actor.id, f"{actor.handle}.bsky.social", actor.name, brand=True)
        return actor

    def person(self, first: str, last: str, brand: Actor) -> Actor:
        domain = self.rng.choice(("bsky.social", "bsky.social", "bsky.social", "example.net"))
        return Actor(self.ids.did(), f"{self.handle_for(first, last, '-')}.{domain}",
                     f"{first} {last}")

    def _created(self, t: int) -> int:
        # createdAt is the posting client's clock: a little behind, sometimes ahead.
        return t - self.rng.randint(-500, 2500)

    def _commit(self, did: str, t: int, collection: str, rkey: str,
                record: dict[str, Any] | None = None, cid: str = "") -> dict[str, Any]:
        commit: dict[str, Any] = {"rev": self.ids.tid(t * 1000),
                                  "operation": "create" if record is not None else "delete",
                                  "collection": collection, "rkey": rkey}
        if record is not None:
            commit["record"] = record
            commit["cid"] = cid
        return {"did": did, "time_us": t * 1000 + self.rng.randrange(1000), "kind": "commit",
                "commit": commit}

    @staticmethod
    def _ref(msg: Msg) -> dict[str, str]:
        return {"uri": msg.id, "cid": msg.extra["cid"]}

    def post(self, msg: Msg) -> list[Out]:
        created = self._created(msg.t)
        rkey = self.ids.tid(created * 1000)
        msg.id = f"at://{msg.author.id}/{POST}/{rkey}"
        msg.extra.update(cid=self.ids.cid(msg.id), rkey=rkey, mentioned=msg.mentions())
        text, spans = compose(msg.parts, lambda a: "@" + a.handle)
        msg.extra["text"] = text
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": iso_ms(created),
                                  "langs": [msg.lang]}
        root = msg.thread.root
        if msg.parent is not None and root is not None:
            record["reply"] = {"root": self._ref(root), "parent": self._ref(msg.parent)}
        facets = []
        for part, start, end in spans:
            byte_start = len(text[:start].encode())
            byte_end = byte_start + len(text[start:end].encode())
            if isinstance(part, Actor):
                feature = {"$type": "app.bsky.richtext.facet#mention", "did": part.id}
            elif part.hashtag:
                feature = {"$type": "app.bsky.richtext.facet#tag", "tag": part.name}
            else:
                continue
            facets.append({"index": {"byteStart": byte_start, "byteEnd": byte_end},
                           "features": [feature]})
        if facets:
            record["facets"] = facets
        payload = self._commit(msg.author.id, msg.t, POST, rkey, record, msg.extra["cid"])
        parent = msg.parent.id if msg.parent is not None else None
        return [self.out(payload, self.source(msg), msg.t, ref=msg.id, parent_ref=parent)]

    def _subject_record(self, actor: Actor, t: int, collection: str,
                        subject: Any) -> tuple[dict[str, Any], str]:
        created = self._created(t)
        rkey = self.ids.tid(created * 1000)
        uri = f"at://{actor.id}/{collection}/{rkey}"
        record = {"$type": collection, "subject": subject, "createdAt": iso_ms(created)}
        return self._commit(actor.id, t, collection, rkey, record, self.ids.cid(uri)), uri

    def like(self, account: Account, actor: Actor, target: Msg, t: int) -> list[Out]:
        payload, uri = self._subject_record(actor, t, LIKE, self._ref(target))
        return [self.out(payload, "stream", t, ref=uri)]

    def repost(self, account: Account, actor: Actor, target: Msg, t: int) -> list[Out]:
        payload, uri = self._subject_record(actor, t, REPOST, self._ref(target))
        return [self.out(payload, "stream", t, ref=uri)]

    def follow(self, account: Account, actor: Actor, t: int) -> list[Out]:
        payload, uri = self._subject_record(actor, t, FOLLOW, account.brand.id)
        return [self.out(payload, "stream", t, ref=uri)]

    def delete(self, msg: Msg, t: int) -> list[Out]:
        payload = self._commit(msg.author.id, t, POST, msg.extra["rkey"])
        return [self.out(payload, "stream", t)]

    def extra(self, account: Account, actor: Actor, t: int) -> list[Out]:
        kind = "identity" if self.rng.random() < 0.7 else "account"
        body: dict[str, Any] = {"did": actor.id, "seq": self.ids.next("jetstream_seq"),
                                "time": iso_ms(t)}
        if kind == "identity":
            body["handle"] = actor.handle
        else:
            body["active"] = True
        payload = {"did": actor.id, "time_us": t * 1000 + self.rng.randrange(1000),
                   "kind": kind, kind: body}
        return [self.out(payload, "stream", t)]


MASTODON_SERVERS = ("mastodon.social", "hachyderm.io", "fosstodon.org", "mstdn.example")


class Mastodon(Renderer):
    """Everything but hashtag posts reaches the account through its own user stream
    (its statuses as ``update``, the rest as notifications): ``via`` names it."""

    platform = "mastodon"
    likes = reposts = follows = deletes = edits = listens_tags = True
    reply_mentions_address = False

    def brand(self, client: Client, acc: TrackedAccount) -> Actor:
        username, _, domain = acc.handle.strip().lstrip("@").partition("@")
        username = username or client.id.lower()
        self._taken.add(username.lower())
        self._ids_taken.add(acc.account_id)
        return Actor(acc.account_id, username, client.name or username,
                     domain=domain or "social.example", brand=True)

    def person(self, first: str, last: str, brand: Actor) -> Actor:
        domain = self.rng.choice((*MASTODON_SERVERS, brand.domain))
        if self.rng.random() < 0.3:
            account_id = self.numeric_id(10_000, 999_999)  # an account from the early days
        else:
            account_id = self.numeric_id(109_000_000_000_000_000, 114_000_000_000_000_000)
        return Actor(account_id, self.handle_for(first, last), f"{first} {last}", domain=domain)

    @staticmethod
    def _acct(actor: Actor, home: str) -> str:
        return actor.handle if actor.domain == home else f"{actor.handle}@{actor.domain}"

    def _account(self, actor: Actor, home: str) -> dict[str, Any]:
        return {"id": actor.id, "username": actor.handle, "acct": self._acct(actor, home),
                "display_name": actor.name, "url": f"https://{actor.domain}/@{actor.handle}"}

    @staticmethod
    def _hcard(actor: Actor) -> str:
        return (f'<span class="h-card" translate="no"><a href="https://{actor.domain}/@'
                f'{actor.handle}" class="u-url mention">@<span>{escape(actor.handle)}</span>'
                "</a></span>")

    def _content(self, parts: tuple[Any, ...], lead: list[Actor], home: str) -> str:
        html = "".join(self._hcard(a) + " " for a in lead)
        for part in parts:
            if isinstance(part, str):
                html += escape(part, quote=False)
            elif isinstance(part, Actor):
                html += self._hcard(part)
            elif part.hashtag:
                html += (f'<a href="https://{home}/tags/{part.name}" class="mention hashtag" '
                         f'rel="tag">#<span>{escape(part.name)}</span></a>')
            else:
                html += escape(part.name, quote=False)
        return f"<p>{html}</p>"

    def _status(self, msg: Msg, home: str) -> dict[str, Any]:
        lead = lead_mentions(msg)
        mentioned = list(lead)
        for actor in msg.mentions():
            if all(actor.id != a.id for a in mentioned):
                mentioned.append(actor)
        msg.extra["mentioned"] = mentioned
        author = msg.author
        parent = msg.parent
        tags = [p for p in msg.parts if isinstance(p, Tag) and p.hashtag]
        return {
            "id": msg.id, "created_at": iso_ms(msg.t),
            "in_reply_to_id": parent.id if parent else None,
            "in_reply_to_account_id": parent.author.id if parent else None,
            "sensitive": False, "spoiler_text": "", "visibility": "public", "language": msg.lang,
            "uri": f"https://{author.domain}/users/{author.handle}/statuses/{msg.id}",
            "url": f"https://{author.domain}/@{author.handle}/{msg.id}",
            "replies_count": 0, "reblogs_count": 0, "favourites_count": 0, "edited_at": None,
            "content": self._content(msg.parts, lead, home), "reblog": None,
            "account": self._account(author, home),
            "mentions": [{"id": a.id, "username": a.handle, "acct": self._acct(a, home),
                          "url": f"https://{a.domain}/@{a.handle}"} for a in mentioned],
            "tags": [{"name": t.name, "url": f"https://{home}/tags/{t.name}"} for t in tags],
            "emojis": [],
        }

    def _notification(self, kind: str, actor: Actor, t: int, home: str,
                      status: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": str(self.ids.next("notification")), "type": kind,
                                "created_at": iso_ms(t), "account": self._account(actor, home)}
        if status is not None:
            body["status"] = status
        return {"event": "notification", "payload": dumps(body)}

    def post(self, msg: Msg) -> list[Out]:
        account = msg.thread.account
        home, brand = account.brand.domain, account.brand
        msg.id = self.ids.mastodon_id(msg.t)
        status = self._status(msg, home)
        msg.extra["status"] = status
        parent = msg.parent.id if msg.parent is not None else None
        if msg.author.brand:
            payload = {"event": "update", "payload": dumps(status)}
        elif any(a.id == brand.id for a in msg.extra["mentioned"]):
            payload = self._notification("mention", msg.author, msg.t, home, status)
        else:
            payload = {"event": "update", "payload": dumps(status)}
        source = self.source(msg)
        via = None if source.startswith("listen:") else brand.id
        return [self.out(payload, source, msg.t, via, msg.id, parent)]

    def like(self, account: Account, actor: Actor, target: Msg, t: int) -> list[Out]:
        payload = self._notification("favourite", actor, t, account.brand.domain,
                                     target.extra["status"])
        return [self.out(payload, "stream", t, account.brand.id)]

    def repost(self, account: Account, actor: Actor, target: Msg, t: int) -> list[Out]:
        payload = self._notification("reblog", actor, t, account.brand.domain,
                                     target.extra["status"])
        return [self.out(payload, "stream", t, account.brand.id)]

    def follow(self, account: Account, actor: Actor, t: int) -> list[Out]:
        payload = self._notification("follow", actor, t, account.brand.domain)
        return [self.out(payload, "stream", t, account.brand.id)]

    def delete(self, msg: Msg, t: int) -> list[Out]:
        return [self.out({"event": "delete", "payload": msg.id}, "stream", t,
                         msg.thread.account.brand.id)]

    def edit(self, msg: Msg, t: int) -> list[Out]:
        status = dict(msg.extra["status"])
        status["edited_at"] = iso_ms(t)
        status["content"] = status["content"].removesuffix("</p>") + " (edit: fixed a typo)</p>"
        return [self.out({"event": "status.update", "payload": dumps(status)}, "stream", t,
                         msg.thread.account.brand.id)]


class X(Renderer):
    platform = "x"
    reposts = quotes = listens_tags = True
    reply_mentions_address = False

    def brand(self, client: Client, acc: TrackedAccount) -> Actor:
        actor = super().brand(client, acc)
        return Actor(actor.id, actor.handle[:15], actor.name, brand=True)

    def person(self, first: str, last: str, brand: Actor) -> Actor:
        return Actor(self.numeric_id(10_000_000, 1_900_000_000_000_000_000),
                     self.handle_for(first, last, limit=15), f"{first} {last}")

    @staticmethod
    def _user(actor: Actor) -> dict[str, str]:
        return {"id": actor.id, "username": actor.handle, "name": actor.name}

    @staticmethod
    def _rule(account: Account, tag: str) -> dict[str, str]:
        digest = hashlib.sha256(f"{account.brand.id}:{tag}".encode()).digest()
        return {"id": str(int.from_bytes(digest[:7], "big")), "tag": tag}

    def post(self, msg: Msg) -> list[Out]:
        account = msg.thread.account
        msg.id = self.ids.x_id(msg.t)
        lead = lead_mentions(msg)
        text, spans = compose((*[p for a in lead for p in (a, " ")], *msg.parts),
                              lambda a: "@" + a.handle)
        msg.extra["text"] = text
        msg.extra["mentioned"] = [p for p, _, _ in spans if isinstance(p, Actor)]
        root = msg.thread.root
        data: dict[str, Any] = {
            "id": msg.id, "text": text, "author_id": msg.author.id,
            "conversation_id": root.id if root is not None else msg.id,
            "created_at": iso_ms(msg.t), "lang": msg.lang, "edit_history_tweet_ids": [msg.id],
        }
        refs = []
        if msg.parent is not None:
            data["in_reply_to_user_id"] = msg.parent.author.id
            refs.append({"type": "replied_to", "id": msg.parent.id})
        includes: dict[str, Any] = {"users": [self._user(msg.author)]}
        if msg.quoted is not None:
            refs.append({"type": "quoted", "id": msg.quoted.id})
            includes["tweets"] = [self._tweet(msg.quoted)]
        if refs:
            data["referenced_tweets"] = refs
        entities: dict[str, Any] = {}
        for part, start, end in spans:
            if isinstance(part, Actor):
                entities.setdefault("mentions", []).append(
                    {"start": start, "end": end, "username": part.handle, "id": part.id})
            elif part.hashtag:
                entities.setdefault("hashtags", []).append(
                    {"start": start, "end": end, "tag": part.name})
        if entities:
            data["entities"] = entities
        source = self.source(msg)
        rule = source.removeprefix("listen:") if source.startswith("listen:") else (
            account.brand.handle)
        payload = {"data": data, "includes": includes,
                   "matching_rules": [self._rule(account, rule)]}
        parent = msg.parent.id if msg.parent is not None else None
        return [self.out(payload, source, msg.t, ref=msg.id, parent_ref=parent)]

    @staticmethod
    def _tweet(msg: Msg) -> dict[str, str]:
        return {"id": msg.id, "text": msg.extra["text"], "author_id": msg.author.id}

    def repost(self, account: Account, actor: Actor, target: Msg, t: int) -> list[Out]:
        tweet_id = self.ids.x_id(t)
        brand = target.author
        prefix = f"RT @{brand.handle}: "
        data = {
            "id": tweet_id, "text": prefix + target.extra["text"][:120],
            "author_id": actor.id, "conversation_id": tweet_id, "created_at": iso_ms(t),
            "edit_history_tweet_ids": [tweet_id],
            "referenced_tweets": [{"type": "retweeted", "id": target.id}],
            "entities": {"mentions": [{"start": 3, "end": 4 + len(brand.handle),
                                       "username": brand.handle, "id": brand.id}]},
        }
        payload = {"data": data,
                   "includes": {"users": [self._user(actor)], "tweets": [self._tweet(target)]},
                   "matching_rules": [self._rule(account, account.brand.handle)]}
        return [self.out(payload, "stream", t, ref=tweet_id)]
