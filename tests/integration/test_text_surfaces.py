"""Emoji, accents, CJK and right-to-left text through a real worker and store, shown on every
surface that shows message text: the terminal board's "last events", Grafana's unanswered
queue and the unanswered-mention alert rule (queries sent the way Grafana's datasource sends
them). Each must show valid text, cut by code points exactly as :func:`streams.text.one_line`
cuts it. (`rapport report` shows figures only, no message text.)

The texts put multi-byte characters across the byte positions a byte cut would split
(60 and 280), so a ``substring``/``left`` by bytes returns invalid UTF-8 and fails here.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from rich.console import Console

from streams.board.queries import read_board
from streams.board.render import render
from streams.clients import PLATFORMS, load_clients
from streams.grafana import sql
from streams.grafana.macros import TimeContext, expand
from streams.ingest.publisher import Publisher
from streams.store.client import connect
from streams.text import BOARD_TEXT_CHARS, PANEL_TEXT_CHARS, one_line, one_line_sql
from tests.support.grafana_client import GrafanaClickHouse
from tests.support.stack import Namespace

pytestmark = pytest.mark.integration
SUB = "acme"  # acme_official listens to r/acme (clients.example.toml)
T0 = datetime(2026, 9, 15, 14, 0, tzinfo=UTC).timestamp()  # a Tuesday, 10:00 in New York

TEXTS = {
    "c_release": "Release notes: version 4.3 is out, with the new offline mode and many fixes 📴 " * 5,
    "c_family": ("Family plan? " + "👨‍👩‍👧‍👦" * 8 + " and flags " + "🇫🇷🇯🇵🇧🇷" * 30) * 2,
    "c_accents": ("Cafe\u0301 cre\u0300me bru\u0302le\u0301e, n\u0303 — " * 12) + "fin",
    "c_cjk": "你好，我的订单还没到。\n\n请帮忙查一下？" * 15,
    "c_rtl": ("שלום, ההזמנה שלי לא הגיעה\tمرحبا، طلبي لم يصل \u2028 " * 10),
    "c_spaces": "  \u00a0 leading\u3000ideographic\u00a0nbsp\r\n\x1b[31mescape\x1b[0m  " + "é" * 400,
}


def _payloads() -> list[dict[str, Any]]:
    """The brand's post, one reply per text (each addresses the brand: it is the parent's
    author), a person's submission whose title is text too, and a post two days later so
    the event-time watermark passes every deadline (alerts open)."""
    out: list[dict[str, Any]] = [{"kind": "t3", "data": {
        "id": "brand1", "name": "t3_brand1", "author": "acme_official", "title": "Ask us anything",
        "selftext": "", "subreddit": SUB, "created_utc": T0, "permalink": f"/r/{SUB}/comments/brand1/x/"}}]
    for i, (cid, body) in enumerate(TEXTS.items()):
        out.append({"kind": "t1", "data": {
            "id": cid, "name": f"t1_{cid}", "author": f"person_{i}", "body": body, "parent_id": "t3_brand1",
            "link_id": "t3_brand1", "subreddit": SUB, "created_utc": T0 + 60 * (i + 1),
            "permalink": f"/r/{SUB}/comments/brand1/x/{cid}/"}})
    out.append({"kind": "t3", "data": {
        "id": "title1", "name": "t3_title1", "author": "person_t", "title": "Ça marche pas 😤 u/acme_official",
        "selftext": "Commande n° 42 — livrée ? 🇨🇦 " * 20, "subreddit": SUB, "created_utc": T0 + 3600,
        "permalink": f"/r/{SUB}/comments/title1/x/"}})
    out.append({"kind": "t3", "data": {
        "id": "later1", "name": "t3_later1", "author": "acme_official", "title": "Weekly thread",
        "selftext": "", "subreddit": SUB, "created_utc": T0 + 2 * 86400, "permalink": f"/r/{SUB}/comments/later1/x/"}})
    return out


def test_one_line_sql_cuts_as_python_does(namespace: Namespace) -> None:
    """The SQL and the Python one-line cut agree on every text, character for character."""
    client = connect(namespace.store_url, namespace.settings)
    try:
        samples = [*TEXTS.values(), "", " ", "\n\n", "a\u200db", "x\u0085y\u2029z", "\x00\x7f\x9f"]
        for text in samples:
            for limit in (1, 7, 60, 280):
                literal = f"unhex('{text.encode().hex()}')"
                got = client.query(f"SELECT {one_line_sql(literal, limit)}")
                assert got.result_rows[0][0] == one_line(text, limit), (text[:20], limit)
    finally:
        client.close()


def test_text_survives_every_surface(namespace: Namespace) -> None:
    ns = namespace
    pub = Publisher(ns.settings, ns.broker_url)
    for payload in _payloads():
        pub.add("reddit", orjson.dumps(payload), "replay")
    pub.close()
    with ns.worker():
        ns.drain()
    stored: dict[str, str] = {}
    client = connect(ns.store_url, ns.settings)
    grafana = GrafanaClickHouse(ns.store_url, ns.settings.store_database)
    grafana.connect()
    try:
        for event_id, text in client.query("SELECT event_id, text FROM interactions FINAL").result_rows:
            stored[event_id] = text
        assert stored[f"t1_{'c_family'}"] == TEXTS["c_family"]  # the store keeps text whole
        title = stored["t3_title1"]
        assert title.startswith("Ça marche pas 😤")

        # the terminal board: rows and the rendered screen
        data = read_board(client, last_events=20)
        shown = {ev["text"] for ev in data.last_events}
        for text in (*TEXTS.values(), title):
            assert one_line(text, BOARD_TEXT_CHARS) in shown, text[:30]
        for ev in data.last_events:
            assert "\ufffd" not in ev["text"] and "\n" not in ev["text"]
        screen = Console(file=io.StringIO(), width=400, color_system=None)
        screen.print(render(data, load_clients(ns.settings.clients), 1.0))
        assert one_line(TEXTS["c_cjk"], 20) in screen.file.getvalue()  # type: ignore[attr-defined]

        # Grafana: the unanswered queue and the alert rule, as the datasource sends them
        ctx = TimeContext(datetime.fromtimestamp(T0, UTC) - timedelta(days=1),
                          datetime.now(UTC) + timedelta(days=1), 3600)
        variables = {"client": ["acme"], "account": ["acme_official"], "platform": list(PLATFORMS)}
        queue = grafana.query(expand(sql.UNANSWERED_QUEUE.sql, variables, ctx)).dicts()
        alerts = grafana.query(expand(sql.ALERT_UNANSWERED.sql, variables, ctx)).dicts()
        want = {one_line(t, PANEL_TEXT_CHARS) for t in (*TEXTS.values(), title)}
        assert {r["what"] for r in queue} == want, ns.log_tail()
        assert {r["status"] for r in queue} == {"breached"}
        summaries = [r[0] for r in client.query("SELECT text FROM alerts FINAL").result_rows]
        assert len(summaries) == len(want)
        assert sorted(r["message"] for r in alerts) == sorted(one_line(t, PANEL_TEXT_CHARS) for t in summaries)
    finally:
        client.close()
