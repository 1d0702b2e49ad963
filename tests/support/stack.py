"""Test helpers: a per-test namespace (topic prefix, database, group) on shared servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from streams.clients import PLATFORMS
from streams.contracts.topics import INTERACTIONS, raw_topic
from streams.drain import wait_drained
from streams.embedded.lifecycle import die_with_parent
from streams.settings import Settings

REPO = Path(__file__).resolve().parent.parent.parent


@dataclass
class Namespace:
    settings: Settings
    broker_url: str
    store_url: str
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            "RAPPORT_BROKER_URL": self.broker_url,
            "RAPPORT_STORE_URL": self.store_url,
            "RAPPORT_DATA_DIR": str(s.data_dir),
            "RAPPORT_CLIENTS": str(s.clients),
            "RAPPORT_TOPIC_PREFIX": s.topic_prefix,
            "RAPPORT_STORE_DATABASE": s.store_database,
            "RAPPORT_APP_ID": s.app_id,
            "RAPPORT_PARTITIONS": str(s.partitions),
            "RAPPORT_BATCH_DELAY_S": str(s.batch_delay_s),
        }

    def start_worker(self, name: str = "worker", extra_env: dict[str, str] | None = None,
                     agents: str = "all") -> subprocess.Popen[bytes]:
        """`rapport worker --agents AGENTS` (all, normalize or detect) in this namespace."""
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        env = dict(os.environ)
        env.update(self.env())
        env.update(extra_env or {})
        env["RAPPORT_SUPERVISOR_PID"] = str(os.getpid())  # the worker's orphan watchdog: die with pytest
        return subprocess.Popen([sys.executable, "-m", "streams.cli", "worker", "--agents", agents],
                                stdout=log, stderr=log, env=env, cwd=REPO, start_new_session=True,
                                preexec_fn=die_with_parent)  # no orphan when pytest is killed

    @contextmanager
    def worker(self, extra_env: dict[str, str] | None = None,
               agents: str = "all") -> Iterator[subprocess.Popen[bytes]]:
        name = "worker" if agents == "all" else f"worker-{agents}"
        proc = self.start_worker(name, extra_env=extra_env, agents=agents)
        self.workers.append(proc)
        try:
            yield proc
        finally:
            stop_process(proc)
            self.workers.remove(proc)

    def drain(self, timeout_s: float = 120.0) -> None:
        """Wait until the group has processed everything; fail fast when a worker died."""
        stages = [[self.settings.topic(raw_topic(p)) for p in PLATFORMS],
                  [self.settings.topic(INTERACTIONS)]]

        def alive() -> bool:
            return all(p.poll() is None for p in self.workers)

        try:
            wait_drained(self.broker_url, self.settings.app_id, stages, timeout_s=timeout_s, alive=alive)
        except Exception as exc:
            raise AssertionError(f"{exc}\n--- logs ---\n{self.log_tail()}") from exc

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("*.log")))


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 15.0,
                 group: bool = False) -> None:
    """Send ``sig``; SIGKILL ``proc`` (its whole process group with ``group``) if it is still up later."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def wait_until(predicate, timeout_s: float = 60.0, interval_s: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError("condition not met in time")
