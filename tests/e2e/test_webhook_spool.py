"""A webhook delivery answered 200 survives anything that happens before it is archived.

Real processes only: `rapport up` with its webhook receiver, signed deliveries over HTTP on
loopback. The workers are SIGSTOPped so that nothing answered can have been archived yet;
then the whole stack is SIGKILLed (or only its broker, which stops the stack loudly), and
`rapport up` is started again on the same data dir. Every delivery must then be in
``raw_events`` exactly once, and the spool must be empty again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import httpx
import orjson
import pytest

from streams.chaos.procs import alive, children, role_of
from streams.embedded.ports import free_port
from streams.ingest.publisher import payload_key
from streams.ingest.spool import decode
from streams.limits import payload_max_bytes
from streams.settings import Settings
from tests.e2e.test_cli import CLIENTS, query_json
from tests.support.procs import case_env, wait_for_stack
from tests.support.stack import REPO, stop_process

pytestmark = pytest.mark.e2e
SECRET = "spool-test-secret"


def delivery(i: int) -> bytes:
    return orjson.dumps({"object": "page", "entry": [{"id": "700001", "time": 1_790_000_000 + i, "changes": [
        {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": f"700001_c{i}",
                                    "post_id": "700001_p1", "parent_id": "700001_p1", "message": f"hello {i}",
                                    "from": {"id": f"u{i % 7}", "name": f"user {i % 7}"},
                                    "created_time": 1_790_000_000 + i}}]}]})


class Up:
    """`rapport up` with ingest on, and every child it ever had (Tansu leads its own session)."""

    def __init__(self, data: Path, log: Path, env: dict[str, str]) -> None:
        self.data, self.log, self.env = data, log, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.known: set[int] = set()

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--data-dir", str(self.data),
                                          "--clients", str(CLIENTS)], stdout=out, stderr=out, cwd=REPO,
                                         env=self.env, start_new_session=True)
        wait_for_stack(self.proc, self.data, self.log)

    def role(self, wanted: str) -> list[int]:
        assert self.proc is not None
        found = children(self.proc.pid)
        self.known |= set(found)
        return [pid for pid, cmd in found.items()
                if (role_of(cmd) or ("webhooks" if "ingest webhooks" in cmd else None)) == wanted]

    def kill(self) -> None:
        assert self.proc is not None
        self.role("worker")
        for pid in self.known:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 20
        while any(alive(p) for p in self.known) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            for pid in self.known:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            stop_process(self.proc, signal.SIGINT, 60, group=True)


def spooled(data: Path) -> int:
    return sum(len(decode(p.read_bytes())[0]) for p in (data / "spool" / "webhooks").glob("*.seg"))


def post_all(url: str, bodies: list[bytes]) -> list[int]:
    with httpx.Client(timeout=30) as http:
        return [http.post(url, content=b, headers={
            "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), b, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json"}).status_code for b in bodies]


def wait_listening(url: str, up: Up, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 403:  # the receiver answers (no verify token)
                return
        assert up.proc is not None and up.proc.poll() is None, up.log.read_text()[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"the webhook receiver did not listen:\n{up.log.read_text()[-3000:]}")


def archived(data: Path) -> dict[str, int]:
    rows = query_json("SELECT raw_key, count() AS n FROM raw_events FINAL WHERE platform = 'facebook' "
                      "GROUP BY raw_key", data)
    return {r["raw_key"]: int(r["n"]) for r in rows}


def wait_archived(data: Path, want: int, up: Up, timeout_s: float = 120) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    got: dict[str, int] = {}
    while time.monotonic() < deadline:
        got = archived(data)
        if len(got) >= want and spooled(data) == 0:
            return got
        time.sleep(1.0)
    raise AssertionError(f"{len(got)} of {want} archived, {spooled(data)} still spooled:\n"
                         f"{up.log.read_text()[-2000:]}\n"
                         f"{(data / 'logs' / 'ingest-webhooks.log').read_text()[-3000:]}")


def wait_written(data: Path, want: int, timeout_s: float = 120) -> int:
    """Facebook comments in ``interactions``, once they reach ``want`` or the deadline passes.

    The normalizer archives a raw record before it publishes its envelope, and the sink writes
    the envelope later still, so an archive that holds every delivery says nothing yet about
    the interactions table.
    """
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = len(query_json("SELECT event_id FROM interactions FINAL WHERE platform = 'facebook'", data))
        if count >= want:
            return count
        time.sleep(1.0)
    return count


@pytest.mark.parametrize("fault", ["stack", "broker"])
def test_answered_deliveries_survive_a_kill_before_archiving(tmp_path: Path, fault: str) -> None:
    data, log = tmp_path / "data", tmp_path / "up.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/meta"
    with case_env() as env:
        env.update({"RAPPORT_META_APP_SECRET": SECRET, "RAPPORT_WEBHOOK_PORT": str(port),
                    "RAPPORT_BLUESKY_JETSTREAM_URL": f"ws://127.0.0.1:{free_port()}/subscribe",
                    "RAPPORT_SPOOL_CONFIRM_S": "0.5"})
        up = Up(data, log, env)
        try:
            up.start()
            wait_listening(url, up)
            first = [delivery(i) for i in range(5)]
            assert post_all(url, first) == [200] * 5
            wait_archived(data, 5, up)  # the spool empties once the archive has them

            workers = up.role("worker")
            assert workers
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)  # nothing answered from here on can be archived
            second = [delivery(i) for i in range(5, 45)]
            assert post_all(url, second) == [200] * len(second)
            assert spooled(data) == len(second)  # acknowledged means on disk
            assert len(archived(data)) == 5
            if fault == "stack":
                up.kill()
            else:
                (broker,) = up.role("broker")
                os.kill(broker, signal.SIGKILL)
                assert up.proc is not None
                with suppress(subprocess.TimeoutExpired):
                    up.proc.wait(60)  # a dead broker stops the stack, loudly
                assert up.proc.poll() is not None, "the stack outlived its broker"
                up.kill()  # the stopped workers and whatever else is left
            up.start()
            got = wait_archived(data, 45, up)
            limit = payload_max_bytes(Settings())
            assert set(got) == {payload_key(b, limit) for b in first + second}  # each once, none lost
            assert "acknowledged webhook deliveries not yet archived" in log.read_text()
            assert wait_written(data, 45) == 45  # the sink writes after the archive: wait for it
        finally:
            up.stop()
