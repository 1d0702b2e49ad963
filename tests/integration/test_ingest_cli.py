"""`rapport ingest bluesky` as a process: it reads, reports, and on SIGTERM flushes and stops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.integration import fake_jetstream as jetstream
from tests.integration.ingest_support import eventually, raw_payloads
from tests.support.stack import REPO, Namespace

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
RUN_INGEST = "from streams.ingest.cli import ingest_app; ingest_app(prog_name='rapport ingest')"


def test_the_bluesky_command_publishes_reports_and_stops_cleanly(namespace: Namespace) -> None:
    ns = namespace
    events = [orjson.loads(line) for line in (FIXTURES / "bluesky_jetstream.jsonl").read_bytes().splitlines()]
    relevant = jetstream.relevant(events)
    status_file = ns.settings.data_dir / "agents" / "bluesky.json"

    def status() -> dict[str, object]:
        try:
            return orjson.loads(status_file.read_bytes())  # type: ignore[no-any-return]
        except (OSError, orjson.JSONDecodeError):
            return {}

    async def scenario() -> tuple[int, str]:
        async with jetstream.Jetstream(events) as server:
            env = {**os.environ, **ns.env(), "RAPPORT_BLUESKY_JETSTREAM_URL": server.url,
                   "RAPPORT_INGEST_STATUS_INTERVAL_S": "0.2", "RAPPORT_PUBLISH_LINGER_S": "0.05"}
            argv = [sys.executable, "-c", RUN_INGEST, "bluesky", "--data-dir", str(ns.settings.data_dir),
                    "--clients", str(ns.settings.clients)]
            proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                await eventually(lambda: status().get("published") == len(relevant) or proc.poll() is not None,
                                 timeout_s=30, what="published")
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                snap = status()
                assert snap["state"] == "connected" and snap["connected"] is True
                assert snap["received"] == len(events) and snap["lag_s"] is not None
                proc.send_signal(signal.SIGTERM)
                _, err = await asyncio.to_thread(proc.communicate, timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
            return proc.returncode, err.decode()

    code, err = asyncio.run(scenario())
    assert code == 0, err
    assert status()["state"] == "stopped"
    assert "bluesky: connected" in err and "Traceback" not in err
    published = raw_payloads(ns, "bluesky")
    assert sorted(orjson.dumps(p) for p, _ in published) == sorted(orjson.dumps(e) for e in relevant)
