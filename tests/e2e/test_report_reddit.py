"""A Reddit thread export through `rapport replay --drain`, then `rapport report`.

The export is generated here, deterministically, in the shape of shared/fixtures/
reddit.jsonl: submissions (t3) and thousands of comments (t1) nested by ``parent_id``,
with ``link_id``, ``created_utc`` and authors, some of them the client's accounts, some
``[deleted]``; a share of the comments is written before its parent (as a listing crawl
yields them). The figures of the detection tables and of the report must be those of the
batch recomputation over what the store holds.
"""

from __future__ import annotations

import io
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from streams.board.queries import read_board
from streams.board.render import render, summary_lines
from streams.chaos.check import diff, expected_rows, rollup_rows, rollup_truth, stored_rows
from streams.clients import load_clients
from streams.embedded.credentials import load_or_create
from streams.embedded.store import StoreServer
from streams.settings import Settings
from streams.store.client import connect
from tests.support.stack import REPO

pytestmark = pytest.mark.e2e
SUB = "acmecoffee"
TRACKED = ("Acme_Support", "acme_barista")
CLIENTS_TOML = f"""
[[clients]]
id = "acmeco"
name = "Acme Coffee Co"
timezone = "America/New_York"
sla_minutes = 45
[clients.hours]
mon = "09:00-17:00"
tue = "09:00-17:00"
wed = "09:00-17:00"
thu = "09:00-17:00"
fri = "09:00-16:00"
[[clients.accounts]]
platform = "reddit"
account_id = "acme_support"
handle = "Acme_Support"
listen = ["r/{SUB}"]
[[clients.accounts]]
platform = "reddit"
account_id = "acme_barista"
handle = "acme_barista"
listen = ["r/{SUB}"]
"""


def reddit_export(comments: int = 3000, seed: int = 3) -> list[dict[str, Any]]:
    """Submissions and nested comments of one subreddit, as a listing crawl writes them."""
    rng = random.Random(seed)
    people = [f"user_{i:03d}" for i in range(120)]
    weights = [1 / (i + 1) for i in range(len(people))]  # a few regulars talk a lot
    t0 = 1_717_400_000.0  # June 2024: history, so deadlines follow event time
    things: list[dict[str, Any]] = []
    posts: list[tuple[str, str, str, float]] = []  # (fullname, author, link_id, created)
    for s in range(5):
        sid = f"1s{s:04d}"
        author = TRACKED[0] if s % 2 == 0 else rng.choices(people, weights)[0]
        created = t0 + s * 86_400 * 2
        things.append({"kind": "t3", "data": {
            "id": sid, "name": f"t3_{sid}", "author": author, "title": f"Thread {s}: new roast",
            "selftext": "Tell us what you think!", "subreddit": SUB, "created_utc": created,
            "permalink": f"/r/{SUB}/comments/{sid}/thread_{s}/", "num_comments": 0}})
        posts.append((f"t3_{sid}", author, f"t3_{sid}", created))
    for c in range(comments):
        parent, parent_author, link, parent_at = rng.choice(posts[-400:]) if rng.random() < 0.8 else rng.choice(posts)
        answering = parent_author in TRACKED and rng.random() < 0.7
        if parent_author not in TRACKED and parent_author != "[deleted]" and rng.random() < 0.25:
            author = rng.choice(TRACKED)  # the brand answers a person
        else:
            author = "[deleted]" if rng.random() < 0.03 else rng.choices(people, weights)[0]
        body = rng.choice(["Love it", "Too bitter for me", "When is it back in stock?", "Same here", "+1"])
        if author not in TRACKED and not answering and rng.random() < 0.08:
            body += f" cc u/{rng.choice(TRACKED)}"  # a mention standing as a word
        if author == "[deleted]":
            body = "[deleted]"
        created = parent_at + rng.expovariate(1 / 5400) + 1
        cid = f"c{c:05d}"
        things.append({"kind": "t1", "data": {
            "id": cid, "name": f"t1_{cid}", "author": author, "body": body, "parent_id": parent,
            "link_id": link, "subreddit": SUB, "created_utc": round(created, 3),
            "permalink": f"/r/{SUB}/comments/{link[3:]}/x/{cid}/"}})
        posts.append((f"t1_{cid}", author, link, created))
    things.sort(key=lambda t: t["data"]["created_utc"])
    for i in range(len(things) - 1):  # about 10 % written before their parent
        if rng.random() < 0.1:
            things[i], things[i + 1] = things[i + 1], things[i]
    return things


def rapport_cmd() -> list[str]:
    """`rapport`, run from this checkout's interpreter."""
    return [sys.executable, "-m", "streams.cli"]


def run(args: list[str], data: Path, clients: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*rapport_cmd(), *args, "--data-dir", str(data), "--clients", str(clients)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def inclusive_quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(sorted(values), n=100, method="inclusive")
    return cuts[int(q * 100) - 1]


def test_reddit_export_replay_gives_the_batch_figures(tmp_path: Path) -> None:
    export = tmp_path / "reddit_export.jsonl"
    export.write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in reddit_export()))
    clients_path = tmp_path / "clients.toml"
    clients_path.write_text(CLIENTS_TOML)
    data = tmp_path / "data"
    proc = run(["replay", str(export), "--platform", "reddit", "--drain"], data, clients_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("published="), proc.stdout

    clients = load_clients(clients_path)
    settings = Settings(data_dir=data)  # the data dir's credentials, as `rapport report` finds them
    server = StoreServer(data / "store", users=load_or_create(data, settings))
    server.start()
    try:
        client = connect(server.url, settings)
        want = expected_rows(clients, client)
        got = stored_rows(client)
        assert rollup_rows(client) == rollup_truth(client)
        data_board = read_board(client)
        board = summary_lines(data_board, clients)
        screen = Console(file=io.StringIO(), width=220)
        screen.print(render(data_board, clients, 1.0))
        assert "connections (detected" in screen.file.getvalue()  # type: ignore[attr-defined]
        client.close()
    finally:
        server.stop()
    problems = diff(want, got)
    assert not problems, problems
    assert len(want["threads"]) == 10  # five submissions, seen by both listening accounts
    assert sum(r[6] for r in want["conversations"]) > 200  # turns

    proc = run(["report", "--format", "json"], data, clients_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert [c["client_id"] for c in report] == ["acmeco"]
    accounts = {a["account_id"]: a for a in report[0]["accounts"]}
    assert set(accounts) == {"acme_support", "acme_barista"}
    for account_id, fig in accounts.items():
        threads = [r for r in want["threads"] if r[1] == account_id]
        convs = [r for r in want["conversations"] if r[1] == account_id]
        resp = [r for r in want["responses"] if r[1] == account_id]
        answered = [r for r in resp if r[10] == "answered"]
        alerts = [r for r in want["alerts"] if r[1] == account_id]
        conns = [r for r in want["connections"] if r[1] == account_id]
        assert fig["threads"] == len(threads)
        assert fig["conversations"] == len(convs) > 0
        assert fig["turns"] == sum(r[6] for r in convs)
        assert fig["returning_people"] == sum(1 for r in conns if r[9])
        assert fig["inbound"] == len(resp) > 0
        assert fig["answered"] == len(answered) > 0
        assert fig["alerts_open"] == sum(1 for r in alerts if r[7] == "breached")
        assert fig["alerts_breached"] == len(alerts)
        for field, col, q in (("first_response_median_s", 8, 0.5), ("first_response_p90_s", 8, 0.9),
                              ("first_response_business_median_s", 9, 0.5),
                              ("first_response_business_p90_s", 9, 0.9)):
            value = inclusive_quantile([r[col] for r in answered], q)
            assert fig[field] == pytest.approx(value, abs=0.001), field
    totals = report[0]
    assert totals["inbound"] == sum(a["inbound"] for a in accounts.values())
    assert totals["threads"] == len(want["threads"])
    # the demo's board shows the report's figures
    line = next(line for line in board if line.startswith("client=acmeco threads="))
    for key in ("threads", "conversations", "turns", "returning_people", "inbound", "answered", "alerts_open",
                "alerts_breached"):
        assert f" {key}={totals[key]}" in f" {line.split(' ', 1)[1]}", (key, line)
