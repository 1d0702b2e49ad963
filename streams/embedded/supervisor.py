"""`rapport up`: start, watch and stop the embedded stack for one data dir.

Order matters: the store first (durability lives there), migrations, then the broker and
its topics, then re-publishing from the archive what the store has not processed (the
broker starts empty every time), then the workers. A worker that dies is restarted; the
broker or the store dying stops the stack, loudly.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from streams.clients import load_clients
from streams.embedded.broker import Broker
from streams.embedded.children import first_line, spawn, stop
from streams.embedded.republish import republish_unprocessed
from streams.embedded.stackfile import StackInfo, clear_stack, read_stack, write_stack
from streams.errors import ConfigError, StackError
from streams.ingest.plan import AgentSpec, planned_agents
from streams.ingest.publisher import Publisher
from streams.kafka_admin import ensure_topics
from streams.settings import Settings
from streams.store.client import connect
from streams.store.migrations import migrate
from streams.topics import full_names

log = logging.getLogger(__name__)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Stack:
    """The embedded stack of one data dir: store child, Tansu child, worker children."""

    def __init__(self, settings: Settings, workers: int = 1, broker_port: int = 0, store_port: int = 0,
                 ingest: bool = False) -> None:
        if settings.clients is None:
            raise ConfigError("no clients file: pass --clients FILE or set RAPPORT_CLIENTS")
        self.clients = load_clients(settings.clients)  # refuse a bad file before starting anything
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        self.workers_wanted = workers
        self.broker = Broker(port=broker_port, log_path=self.data_dir / "logs" / "broker.log")
        self.store_port = store_port
        self.store_proc: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        # Ingest agents: off for demo, replay --drain, bench and tests (they bring their own
        # traffic); `rapport up` turns them on.
        self.ingest = ingest
        self.agents: dict[str, tuple[AgentSpec, subprocess.Popen[bytes]]] = {}
        self.agent_notes: list[str] = []
        self.store_url = ""
        self.republished = 0

    @property
    def broker_url(self) -> str:
        return self.broker.url

    def start(self) -> None:
        running = read_stack(self.data_dir)
        if running is not None and running.pid != os.getpid():
            raise StackError(f"a stack already runs for {self.data_dir} (pid {running.pid}); "
                             "stop it first or use another --data-dir")
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            self._start_store()
            migrate(self.store_url, self.settings)
            self.broker.start()
            ensure_topics(self.broker.url, full_names(self.settings), self.settings.partitions,
                          self.settings.replication_factor)
            self._republish()
            for i in range(self.workers_wanted):
                self.workers.append(self._spawn_worker(i))
            if self.ingest:
                self._start_agents()
            write_stack(self.data_dir, StackInfo(self.broker.url, self.store_url, os.getpid()))
        except BaseException:
            self.stop()
            raise

    def _start_store(self) -> None:
        log_path = self.data_dir / "logs" / "store.log"
        self.store_proc = spawn(["store", "--data-dir", str(self.data_dir), "--port", str(self.store_port)],
                                log_path, capture_first_line=True, own_session=True)
        self.store_url = first_line(self.store_proc, "the store", log_path)

    def _republish(self) -> None:
        client = connect(self.store_url, self.settings)
        publisher = Publisher(self.settings, self.broker.url)
        try:
            self.republished = republish_unprocessed(client, publisher)
        finally:
            publisher.close()
            client.close()

    def _env(self) -> dict[str, str]:
        env = {
            "RAPPORT_BROKER_URL": self.broker.url,
            "RAPPORT_STORE_URL": self.store_url,
            "RAPPORT_DATA_DIR": str(self.data_dir),
            "RAPPORT_TOPIC_PREFIX": self.settings.topic_prefix,
            "RAPPORT_STORE_DATABASE": self.settings.store_database,
            "RAPPORT_APP_ID": self.settings.app_id,
            "RAPPORT_PARTITIONS": str(self.settings.partitions),
            "RAPPORT_BATCH_SIZE": str(self.settings.batch_size),
            "RAPPORT_BATCH_DELAY_S": str(self.settings.batch_delay_s),
        }
        assert self.settings.clients is not None
        env["RAPPORT_CLIENTS"] = str(Path(self.settings.clients).resolve())
        return env

    def _start_agents(self) -> None:
        specs, self.agent_notes = planned_agents(self.settings, self.clients)
        for spec in specs:
            self.agents[spec.name] = (spec, self._spawn_agent(spec))

    def _spawn_agent(self, spec: AgentSpec) -> subprocess.Popen[bytes]:
        return spawn(spec.argv, self.data_dir / "logs" / f"ingest-{spec.name}.log", env=self._env())

    def add_worker(self) -> None:
        """Start one more worker process (it joins the same consumer group)."""
        self.workers.append(self._spawn_worker(len(self.workers)))

    def _spawn_worker(self, i: int) -> subprocess.Popen[bytes]:
        return spawn(["worker"], self.data_dir / "logs" / f"worker-{i}.log", env=self._env())

    def check(self) -> None:
        """Restart dead workers; raise if the broker or the store died."""
        if self.store_proc is not None and self.store_proc.poll() is not None:
            raise StackError(f"the store exited ({self.store_proc.returncode}); see {self.data_dir}/logs/store.log")
        if not self.broker.alive():
            raise StackError(f"the broker exited; see {self.data_dir}/logs/broker.log")
        for i, proc in enumerate(self.workers):
            if proc.poll() is not None:
                log.warning("worker %d exited with %s; restarting it", i, proc.returncode)
                self.workers[i] = self._spawn_worker(i)
        for name, (spec, proc) in list(self.agents.items()):
            code = proc.poll()
            if code is None:
                continue
            if code == 2:  # missing configuration: restarting would only loop
                log.error("ingest agent %s stopped: its configuration is incomplete (see its log)", name)
                del self.agents[name]
                continue
            log.warning("ingest agent %s exited with %s; restarting it", name, code)
            self.agents[name] = (spec, self._spawn_agent(spec))

    def alive(self) -> bool:
        try:
            self.check()
        except StackError:
            return False
        return True

    def stop(self) -> None:
        for _, proc in self.agents.values():
            stop(proc)
        self.agents = {}
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            stop(proc)
        self.workers = []
        self.broker.stop()
        stop(self.store_proc)
        self.store_proc = None
        info = read_stack(self.data_dir)
        if info is None or info.pid == os.getpid():
            clear_stack(self.data_dir)

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_up(settings: Settings, workers: int, announce: object = print, store_port: int = 0,
           broker_port: int = 0, ingest: bool = True) -> int:
    """Foreground supervisor loop of `rapport up`; Ctrl-C or SIGTERM stops everything cleanly."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    stack = Stack(settings, workers=workers, store_port=store_port, broker_port=broker_port, ingest=ingest)
    stack.start()
    say = announce if callable(announce) else print
    say(f"store   {stack.store_url}  (data: {stack.data_dir / 'store'})")
    say(f"broker  {stack.broker_url}  (topics prefix {settings.topic_prefix}.)")
    say(f"workers {workers}  (logs: {stack.data_dir / 'logs'})")
    for note in stack.agent_notes:
        say(f"ingest  {note}")
    for name in stack.agents:
        say(f"ingest  {name} agent running (status: {stack.data_dir / 'agents' / (name + '.json')})")
    if stack.republished:
        say(f"re-published {stack.republished} archived payloads not yet processed")
    try:
        while True:
            stack.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        stack.stop()
