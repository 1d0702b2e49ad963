"""`rapport replay` never dies on a line, reads gzip/zstd, refuses other compressions at start."""

from __future__ import annotations

import bz2
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from streams.contracts.topics import raw_topic
from streams.kafka_admin import high_watermarks
from streams.store.client import connect
from tests.integration.test_bad_input import nested_arrays, nested_objects
from tests.integration.test_batch_commit import comment, expected_keys, stored_keys
from tests.support.stack import REPO, Namespace

pytestmark = pytest.mark.integration


def replay(ns: Namespace, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(ns.env())
    return subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(path), "--platform", "reddit", *args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


BAD_LINES = [
    nested_objects(300), nested_objects(1000), nested_objects(100_000),
    nested_arrays(300), nested_arrays(1000), nested_arrays(100_000),
    comment(2000, body="x" * 2 * 1024 * 1024),  # over the record limit: refused, line named
    comment(2001, body="\u0000" * 262_144),  # 1.57 MB escaped: refused
    b'{"kind":"t1","data":{"id":"u8","body":"\xff\xfe"}}',
    b'{"kind":"t1","data":{"id":"trunc","name":"t1_tr',
]


def test_replay_of_every_bad_line_in_gzip_exits_0_and_counts_them(namespace: Namespace, tmp_path: Path) -> None:
    ns = namespace
    good = [comment(i) for i in range(40)]
    mixed = b"[" + comment(3000) + b",42," + b'{"kind":"t1"}' + b"]"
    lines = [*good[:20], *BAD_LINES, mixed, *good[20:]]
    path = tmp_path / "mixed.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    with ns.worker():
        done = replay(ns, path, "--drain")
    assert done.returncode == 0, done.stdout + done.stderr + ns.log_tail()
    refused_lines = [line for line in (done.stdout + done.stderr).splitlines() if "refused:" in line]
    assert [line.split(":")[0] for line in refused_lines] == ["line 27", "line 28"], done.stdout
    summary = done.stdout.strip().splitlines()[-1]
    assert "refused=2" in summary and f"published={len(lines)}" in summary, summary
    assert f"dead_lettered={len(BAD_LINES) + 2}" in summary, summary
    final, keys = stored_keys(ns)
    want = expected_keys(ns, [*good, comment(3000)])
    assert final == len(want) and keys == want


def test_zstd_is_read_and_other_compressions_refused_at_start(namespace: Namespace, tmp_path: Path) -> None:
    ns = namespace
    good = [comment(i) for i in range(10)]
    bz = tmp_path / "x.jsonl.bz2"
    bz.write_bytes(bz2.compress(b"\n".join(good)))
    refused = replay(ns, bz)
    assert refused.returncode != 0
    assert "bzip2-compressed" in refused.stdout + refused.stderr
    raw = ns.settings.topic(raw_topic("reddit"))
    assert sum(high_watermarks(ns.broker_url, [raw]).values()) == 0  # nothing published, no fragment
    zst = tmp_path / "x.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(good) + b"\n"))
    with ns.worker():
        done = replay(ns, zst, "--drain")
    assert done.returncode == 0, done.stdout + done.stderr
    final, _ = stored_keys(ns)
    assert final == len(expected_keys(ns, good))
    client = connect(ns.store_url, ns.settings)
    try:
        assert client.query("SELECT count() FROM raw_events FINAL WHERE outcome = 'dead'").result_rows[0][0] == 0
    finally:
        client.close()
