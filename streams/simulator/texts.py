"""The simulator's words: names of people and the texts brands and people write.

Templates: ``{m}`` a mention, ``{t}`` a listened tag or keyword, ``{n}`` an order number.
A few carry accents and emoji so that byte offsets (Bluesky facets) differ from
character offsets.
"""

from __future__ import annotations

import random
import re

from streams.simulator.world import Actor, Part, Tag

FIRST = (
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter",
    "Zoë", "José", "Åsa", "Łukasz", "Mei", "Yuki", "Aarav", "Fatima", "Chidi", "Ingrid",
    "Mateo", "Noor", "Sven", "Priya", "Kofi", "Lena", "Omar", "Hana", "Diego", "Freya", "Tomás",
)
LAST = (
    "Example", "Smith", "Müller", "García", "Rossi", "Nowak", "Kim", "Okafor", "Jensen",
    "Dubois", "Silva", "Tanaka", "Haddad", "Novák",
)

BRAND_POSTS = (
    ("en", "We just shipped dark mode. Tell us what you think!"),
    ("en", "Our winter sale starts today ❄️ 20% off everything"),
    ("en", "Scheduled maintenance tonight 22:00–23:00 UTC."),
    ("en", "New in the app: offline mode 📴"),
    ("en", "What should we build next? Reply with your ideas 👇"),
    ("en", "Meet the team behind the redesign"),
    ("fr", "Bonjour la France 🇫🇷 notre appli parle français !"),
    ("en", "Status update: all systems operational ✅"),
)
BRAND_TITLES = (
    "We just shipped dark mode, AMA",
    "Scheduled maintenance tonight 22:00-23:00 UTC",
    "Weekly feedback thread",
    "Release notes: version 4.3",
)
INBOUND = (
    ("en", "love it, but the sidebar is unreadable"),
    ("en", "is the API down? getting 502s since this morning"),
    ("en", "my order #{n} still hasn't shipped 😕 any news?"),
    ("en", "the new update broke login on Android"),
    ("en", "how do I export my data?"),
    ("en", "great job, the app feels much faster 🚀"),
    ("fr", "ça ne marche plus depuis la mise à jour… une idée ?"),
    ("de", "Die App stürzt beim Öffnen ab 😩"),
    ("es", "¿cuándo llega el modo oscuro a la versión web?"),
    ("en", "why was I charged twice this month?"),
    ("en", "any plans for a Linux version?"),
    ("en", "support hasn't answered my email in 3 days"),
)
MENTIONS = (
    ("en", "hey {m} is the API down?"),
    ("en", "{m} your checkout page keeps timing out"),
    ("en", "switched to {m} last week and honestly… impressed ✨"),
    ("en", "anyone else waiting on a refund from {m}?"),
    ("fr", "{m} où puis-je trouver la facture de ma commande #{n} ?"),
    ("de", "Grüße an {m} – der Kundendienst war super 👍"),
    ("en", "day 3 without a reply from {m} 🙃"),
    ("en", "what's the best plan for a small team, {m}?"),
)
ANSWERS = (
    ("en", "thanks, a fix is on its way"),
    ("en", "sorry about that! can you DM us your order number?"),
    ("en", "we're on it 🙏 should be resolved within the hour"),
    ("en", "good catch, passing it to the team"),
    ("en", "thanks for the kind words!"),
    ("en", "could you tell us which version you're on?"),
    ("en", "refund issued, it can take 3–5 days to show up"),
    ("fr", "merci ! on regarde ça tout de suite"),
)
FOLLOWUPS = (
    ("en", "thanks! still broken though"),
    ("en", "any ETA?"),
    ("en", "that worked, cheers 🙌"),
    ("en", "sent you a DM"),
    ("en", "order number is #{n}"),
    ("en", "version 4.2.1 on a Pixel 7"),
    ("en", "still waiting…"),
)
CHATTER = (
    ("en", "same here"),
    ("en", "+1, happened to me too"),
    ("en", "did you try clearing the cache?"),
    ("en", "works for me on iOS"),
    ("en", "lol same 😂"),
    ("en", "they fixed it for me after a day"),
    ("en", "you can export it from settings → account"),
    ("de", "bei mir genauso"),
)
CHIME_INS = (
    ("en", "hi! we'd love to help with that, what's going on?"),
    ("en", "thanks for the shout-out 💛"),
    ("en", "happy to answer any questions here"),
)
LISTEN_POSTS = (
    ("en", "best {t} spot in town?"),
    ("en", "my morning {t} ☕"),
    ("en", "thinking about trying {t}, any advice?"),
    ("en", "hot take: {t} is overrated"),
)
LISTEN_TITLES = (
    "Is anyone else having sync issues?",
    "Refund taking forever",
    "Tips for new users?",
    "Comparison with the alternatives",
    "Feature request: calendar view",
)

QUOTES = (
    ("en", "this is great, {m} 👏"),
    ("en", "finally!! {m}"),
    ("en", "hmm, not convinced {m}"),
    ("en", "{m} took you long enough"),
)

_SLOT = re.compile(r"(\{[mnt]\})")


def fill(template: str, rng: random.Random, mention: Actor | None = None,
         tag: Tag | None = None) -> tuple[Part, ...]:
    out: list[Part] = []
    for piece in _SLOT.split(template):
        if piece == "{m}":
            if mention is not None:
                out.append(mention)
        elif piece == "{t}":
            if tag is not None:
                out.append(tag)
        elif piece == "{n}":
            out.append(str(rng.randrange(10_000, 99_999)))
        elif piece:
            out.append(piece)
    return tuple(out)
