"""`rapport up`: start, watch and stop the embedded stack for one data dir.

Order matters: the store first (durability lives there), migrations, then the broker and
its topics, then re-publishing from the archive what the store has not processed (the
broker starts empty every time), then the workers and ingest agents. Workers come in slots:
``--workers N`` is N ``normalize`` and N ``detect`` processes by default (the two cores of the
pipeline, each role its own consumer group), or N ``all`` processes with ``--no-split`` /
``RAPPORT_WORKER_SPLIT=false``. ``stack.json`` is
written last, once every worker and agent has said it started (its ready pipe) and the
stack's lines are printed, so a script that waits for the file finds a started stack. A
worker that dies is restarted; the broker or the store dying stops the stack, loudly.
SIGINT, SIGTERM and SIGHUP stop it cleanly (streams/embedded/lifecycle.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from streams.clients import load_clients
from streams.contracts.groups import SPLIT_ROLES, WorkerRole
from streams.contracts.topics import full_names
from streams.embedded.broker import Broker
from streams.embedded.children import Child, first_line, spawn, stop, wait_ready
from streams.embedded.lifecycle import ignoring_signals, signals_deferred, stop_on_signals
from streams.embedded.republish import republish_unprocessed
from streams.embedded.stackfile import StackInfo, clear_stack, read_stack, write_stack
from streams.errors import ConfigError, StackError
from streams.ingest.plan import AgentSpec, planned_agents
from streams.ingest.publisher import Publisher
from streams.ingest.spool_keeper import replay_spools
from streams.kafka_admin import ensure_topics
from streams.settings import Settings
from streams.store.client import connect
from streams.store.migrations import migrate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """One worker process the stack keeps running: its role and its number within the role."""

    role: WorkerRole
    index: int

    @property
    def name(self) -> str:
        return f"worker-{self.index}" if self.role is WorkerRole.all else f"worker-{self.role.value}-{self.index}"

    @property
    def argv(self) -> list[str]:
        return ["worker", "--agents", self.role.value]


def worker_slots(count: int, split: bool, first: int = 0) -> list[WorkerSlot]:
    """``count`` workers of each split role, or ``count`` workers of role ``all``."""
    roles = SPLIT_ROLES if split else (WorkerRole.all,)
    return [WorkerSlot(role, i) for i in range(first, first + count) for role in roles]


class Stack:
    """The embedded stack of one data dir: store child, Tansu child, worker children."""

    def __init__(self, settings: Settings, workers: int = 1, broker_port: int = 0, store_port: int = 0,
                 ingest: bool = False, split: bool | None = None) -> None:
        if settings.clients is None:
            raise ConfigError("no clients file: pass --clients FILE or set RAPPORT_CLIENTS")
        self.clients = load_clients(settings.clients)  # refuse a bad file before starting anything
        self.settings = settings
        self.data_dir = Path(settings.data_dir).resolve()
        self.split = settings.worker_split if split is None else split
        self.workers_wanted = workers  # per role when split
        self.slots: list[WorkerSlot] = []  # self.workers[i] runs self.slots[i]
        self.broker = Broker(port=broker_port, log_path=self.data_dir / "logs" / "broker.log")
        self.store_port = store_port
        self.store_proc: subprocess.Popen[bytes] | None = None
        self.workers: list[Child] = []
        # Ingest agents: off for demo, replay --drain, bench and tests (they bring their own
        # traffic); `rapport up` turns them on.
        self.ingest = ingest
        self.agents: dict[str, tuple[AgentSpec, Child]] = {}
        self.agent_notes: list[str] = []
        self.store_url = ""
        self.republished = 0
        self.unspooled = 0
        self._signals = ExitStack()

    @property
    def broker_url(self) -> str:
        return self.broker.url

    def start(self, announce: Callable[[str], None] | None = None) -> None:
        """Start every piece; ``announce`` gets :meth:`lines` before ``stack.json`` is written.

        From here until :meth:`stop`, SIGTERM and SIGHUP interrupt like Ctrl-C, so whoever
        runs the stack reaches its ``finally``/``with`` exit and stops it.
        """
        running = read_stack(self.data_dir)
        if running is not None and running.pid != os.getpid():
            raise StackError(f"a stack already runs for {self.data_dir} (pid {running.pid}); "
                             "stop it first or use another --data-dir")
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._signals.enter_context(stop_on_signals())
        try:
            self._start_store()
            migrate(self.store_url, self.settings)
            self.broker.start()
            ensure_topics(self.broker.url, full_names(self.settings), self.settings.partitions,
                          self.settings.replication_factor)
            self._republish()
            for slot in worker_slots(self.workers_wanted, self.split):
                with signals_deferred():
                    self.workers.append(self._spawn_worker(slot, ready=True))
                    self.slots.append(slot)
            if self.ingest:
                self._start_agents()
            self._wait_started()
            if announce is not None:
                for line in self.lines():
                    announce(line)
            write_stack(self.data_dir, StackInfo(self.broker.url, self.store_url, os.getpid()))
        except BaseException:
            self.stop()
            raise

    def _wait_started(self) -> None:
        """Every worker and agent has said it started; a worker that did not stops the start."""
        logs = self.data_dir / "logs"
        children = {slot.name: (proc, logs / f"{slot.name}.log")
                    for slot, proc in zip(self.slots, self.workers, strict=True)}
        children.update({f"ingest agent {name}": (proc, logs / f"ingest-{name}.log")
                         for name, (_, proc) in self.agents.items()})
        failed = wait_ready(children)
        for name, reason in failed.items():
            if name.startswith("worker"):
                raise StackError(reason)
        for name, (_, proc) in list(self.agents.items()):
            if f"ingest agent {name}" not in failed:
                continue
            self.agent_notes.append(f"{name}: did not start (exit {proc.poll()}); see {logs / f'ingest-{name}.log'}")
            if proc.poll() == 2:  # missing configuration: restarting would only loop
                del self.agents[name]

    def lines(self) -> list[str]:
        """What a user is told about the started stack (`rapport up` prints these)."""
        out = [f"store   {self.store_url}  (data: {self.data_dir / 'store'})",
               f"broker  {self.broker_url}  (topics prefix {self.settings.topic_prefix}.)",
               f"workers {self._workers_line()}  (logs: {self.data_dir / 'logs'})"]
        out += [f"ingest  {note}" for note in self.agent_notes]
        out += [f"ingest  {name} agent running (status: {self.data_dir / 'agents' / (name + '.json')})"
                for name in self.agents]
        if self.republished:
            out.append(f"re-published {self.republished} archived payloads not yet processed")
        if self.unspooled:
            out.append(f"re-published {self.unspooled} acknowledged webhook deliveries not yet archived (spool)")
        return out

    def _workers_line(self) -> str:
        if not self.split:
            return str(len(self.workers))
        per_role = {role: sum(1 for s in self.slots if s.role is role) for role in SPLIT_ROLES}
        return f"{len(self.workers)}: " + ", ".join(f"{n} {role.value}" for role, n in per_role.items())

    def _start_store(self) -> None:
        log_path = self.data_dir / "logs" / "store.log"
        with signals_deferred():
            self.store_proc = spawn(["store", "--data-dir", str(self.data_dir), "--port", str(self.store_port)],
                                    log_path, capture_first_line=True, own_session=True)
        self.store_url = first_line(self.store_proc, "the store", log_path)

    def _republish(self) -> None:
        client = connect(self.store_url, self.settings)
        publisher = Publisher(self.settings, self.broker.url)
        try:
            self.republished = republish_unprocessed(client, publisher, self.settings.republish_chunk)
            self.unspooled = replay_spools(self.data_dir, client, publisher)
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
            with signals_deferred():
                self.agents[spec.name] = (spec, self._spawn_agent(spec, ready=True))

    def _spawn_agent(self, spec: AgentSpec, ready: bool = False) -> Child:
        return spawn(spec.argv, self.data_dir / "logs" / f"ingest-{spec.name}.log", env=self._env(), ready=ready)

    def add_worker(self) -> None:
        """Start one more worker slot: a normalize and a detect process when split, else one
        process of every agent (each joins its role's consumer group)."""
        taken = sum(1 for s in self.slots if s.role is self.slots[0].role) if self.slots else 0
        for slot in worker_slots(1, self.split, first=taken):
            with signals_deferred():
                self.workers.append(self._spawn_worker(slot))
                self.slots.append(slot)

    def _spawn_worker(self, slot: WorkerSlot, ready: bool = False) -> Child:
        return spawn(slot.argv, self.data_dir / "logs" / f"{slot.name}.log", env=self._env(), ready=ready)

    def check(self) -> None:
        """Restart dead workers; raise if the broker or the store died."""
        if self.store_proc is not None and self.store_proc.poll() is not None:
            raise StackError(f"the store exited ({self.store_proc.returncode}); see {self.data_dir}/logs/store.log")
        if not self.broker.alive():
            raise StackError(f"the broker exited; see {self.data_dir}/logs/broker.log")
        for i, (slot, proc) in enumerate(zip(self.slots, self.workers, strict=True)):
            if proc.poll() is not None:
                log.warning("%s exited with %s; restarting it", slot.name, proc.returncode)
                with signals_deferred():
                    self.workers[i] = self._spawn_worker(slot)
        for name, (spec, proc) in list(self.agents.items()):
            code = proc.poll()
            if code is None:
                continue
            if code == 2:  # missing configuration: restarting would only loop
                log.error("ingest agent %s stopped: its configuration is incomplete (see its log)", name)
                del self.agents[name]
                continue
            log.warning("ingest agent %s exited with %s; restarting it", name, code)
            with signals_deferred():
                self.agents[name] = (spec, self._spawn_agent(spec))

    def alive(self) -> bool:
        try:
            self.check()
        except StackError:
            return False
        return True

    def stop(self) -> None:
        """Stop everything, agents and workers first (in parallel), then the broker and the store.

        Stop signals are ignored meanwhile: a second Ctrl-C or SIGTERM cannot abandon a
        half-stopped stack (each child's wait is bounded, then it is killed).
        """
        with ignoring_signals():
            children = [proc for _, proc in self.agents.values()] + self.workers
            for proc in children:
                if proc.poll() is None:
                    proc.terminate()
            for proc in children:
                stop(proc)
            self.agents = {}
            self.workers = []
            self.slots = []
            self.broker.stop()
            stop(self.store_proc)
            self.store_proc = None
            info = read_stack(self.data_dir)
            if info is None or info.pid == os.getpid():
                clear_stack(self.data_dir)
        self._signals.close()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_up(settings: Settings, workers: int, announce: Callable[[str], None] = print, store_port: int = 0,
           broker_port: int = 0, ingest: bool = True, split: bool | None = None) -> int:
    """Foreground supervisor loop of `rapport up`; Ctrl-C, SIGTERM or SIGHUP stops everything cleanly."""
    stack = Stack(settings, workers=workers, store_port=store_port, broker_port=broker_port, ingest=ingest,
                  split=split)
    stack.start(announce=announce)
    try:
        while True:
            stack.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        announce("stopping")
        return 0
    finally:
        stack.stop()
