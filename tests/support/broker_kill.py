"""A broker, a worker and one ingest agent as real processes, SIGKILLed together.

What `rapport up` does when its embedded broker dies: everything in flight in the broker
is gone, and the agent and the worker start again. The resume tests
(tests/e2e/test_resume_gapless*.py) kill these pieces at random moments and check that the
agent's contiguous watermark (streams/ingest/watermark.py) makes it fetch again whatever
was lost, and nothing twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from streams.contracts.topics import full_names
from streams.embedded.broker import Broker
from streams.kafka_admin import ensure_topics
from streams.settings import Settings
from tests.support.stack import REPO

# Short waits everywhere, so a restart resumes within a second or two.
FAST_ENV = {"RAPPORT_BATCH_DELAY_S": "0.2", "RAPPORT_SPOOL_CONFIRM_S": "0.3", "RAPPORT_INGEST_REWIND_S": "0.5",
            "RAPPORT_INGEST_BACKOFF_INITIAL_S": "0.1", "RAPPORT_INGEST_BACKOFF_MAX_S": "1",
            "RAPPORT_PUBLISH_LINGER_S": "0.05"}


class Pieces:
    """The broker, the worker and the agent ``agent``; killed together, started together.

    ``agent_env`` points the agent at a loopback fake of its platform (URLs, credentials).
    """

    def __init__(self, tmp: Path, settings: Settings, agent: str, agent_env: dict[str, str]) -> None:
        self.tmp, self.settings, self.agent, self.agent_env = tmp, settings, agent, agent_env
        self.broker: Broker | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.starts = 0

    def env(self) -> dict[str, str]:
        s = self.settings
        assert self.broker is not None
        env = dict(os.environ)
        env.update({"RAPPORT_BROKER_URL": self.broker.url, "RAPPORT_STORE_URL": str(s.store_url),
                    "RAPPORT_DATA_DIR": str(s.data_dir), "RAPPORT_CLIENTS": str(s.clients),
                    "RAPPORT_TOPIC_PREFIX": s.topic_prefix, "RAPPORT_STORE_DATABASE": s.store_database,
                    "RAPPORT_APP_ID": s.app_id, "RAPPORT_PARTITIONS": str(s.partitions),
                    "RAPPORT_SUPERVISOR_PID": str(os.getpid()), **FAST_ENV, **self.agent_env})
        return env

    def _spawn(self, args: list[str], name: str) -> None:
        with open(self.tmp / f"{name}.log", "ab") as out:
            self.procs.append(subprocess.Popen([sys.executable, "-m", "streams.cli", *args], stdout=out,
                                               stderr=out, stdin=subprocess.DEVNULL, cwd=REPO, env=self.env(),
                                               start_new_session=True))

    def start(self) -> None:
        self.starts += 1
        self.broker = Broker(log_path=self.tmp / "broker.log")
        self.broker.start()
        ensure_topics(self.broker.url, full_names(self.settings), self.settings.partitions)
        self._spawn(["worker"], "worker")
        self._spawn(["ingest", self.agent, "--data-dir", str(self.settings.data_dir),
                     "--clients", str(self.settings.clients)], "agent")

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def kill(self) -> None:
        if self.broker is not None and self.broker.proc is not None:
            self.broker.proc.send_signal(signal.SIGKILL)
            self.broker.proc.wait()
            self.broker.proc = None
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.procs = []

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2500:] for p in sorted(self.tmp.glob("*.log")))
