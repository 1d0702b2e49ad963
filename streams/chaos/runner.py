"""`rapport chaos`: traffic through a real `rapport up --workers 2`, faults at seeded moments.

The traffic is one JSONL file per platform (simulated payloads, hostile lines mixed into
the busiest one), each fed by a `rapport replay --drain` process against the running stack,
all at once, each paced to last the run's span; a replay reconnects through stack.json when the stack is restarted and
publishes again whatever the archive lacks. Faults (streams/chaos/plan.py) land at seeded
moments while the stack is healthy; after the last one and a final drain, the store is
compared with the truth (streams/chaos/truth.py, streams/chaos/check.py). Progress goes to
stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from rich.console import Console

from streams.chaos.check import dead_letter_count, stored_keys, table_diff
from streams.chaos.edges import EDGE_PLATFORMS, Edges, edge_keys, wait_archived
from streams.chaos.plan import Fault, hostile_payloads, mixed, plan_faults
from streams.chaos.procs import UpProcess, child_env, rapport, signal_pid
from streams.chaos.truth import Key, digest, expected_keys
from streams.clients import PLATFORMS, ClientsFile, load_clients
from streams.contracts.topics import INTERACTIONS, raw_topic
from streams.drain import wait_drained
from streams.embedded.lifecycle import signals_deferred, stop_on_signals
from streams.embedded.stackfile import read_stack
from streams.errors import ConfigError, StackError
from streams.limits import payload_max_bytes
from streams.normalize.base import AccountIndex
from streams.settings import Settings
from streams.store.client import connect

START_MS = 1_790_000_000_000  # simulated event time starts here: same seed, same payloads
FAULT_GAP_S = 15.0  # the traffic lasts at least this long per fault, so faults do not pile up
REPLAY_ATTEMPTS = 3
TRUTH_CHUNK = 2000  # lines normalized at once for the truth


@dataclass
class Traffic:
    files: dict[str, Path]
    lines: dict[str, int]
    events: int
    truth: set[bytes]  # digests (streams/chaos/truth.py ``digest``) of the interaction keys expected
    dead_letters: int  # hostile lines + any simulated payload the normalizers refuse
    edge_files: dict[str, Path] = field(default_factory=dict)  # --edges: fed by streams/chaos/edges.py


def prepare(clients: ClientsFile, events: int, seed: int, work: Path,
            edge_platforms: frozenset[str] = frozenset()) -> Traffic:
    """Write the traffic files and work out what the store must hold after them.

    The lines of ``edge_platforms`` go to ``edge_files`` (no replay, no hostile line: the
    edges send them) and their truth is made with the edges' headers.

    Streamed: each simulated line goes to its platform's file as it is made, and the truth
    keeps a 16-byte digest per expected interaction, so a million events cost files on disk
    and ~100 MB of digests, not the lines in memory.
    """
    from streams.simulator.traffic import Simulator

    index = AccountIndex.build(clients)
    hostile = [line for _, line in hostile_payloads()]
    truth: set[bytes] = set()
    dead = [len(hostile)]
    counts: Counter[str] = Counter()
    parts: dict[str, BinaryIO] = {}
    pending: dict[str, list[bytes]] = {}

    def flush(platform: str) -> None:
        keys = edge_keys if platform in edge_platforms else expected_keys
        for key in keys(platform, pending[platform], index, START_MS, dead.append):
            truth.add(digest(key))
        pending[platform] = []

    try:
        for ev in Simulator(clients, seed=seed, start_ms=START_MS).events(events):
            line = orjson.dumps(ev.payload)
            if ev.platform not in parts:
                parts[ev.platform] = open(work / f"{ev.platform}.jsonl.part", "wb")  # noqa: SIM115
                pending[ev.platform] = []
            parts[ev.platform].write(line + b"\n")
            counts[ev.platform] += 1
            pending[ev.platform].append(line)
            if len(pending[ev.platform]) >= TRUTH_CHUNK:
                flush(ev.platform)
        for platform in pending:
            flush(platform)
    finally:
        for part in parts.values():
            part.close()
    if not counts:
        raise ConfigError("the clients file tracks no account: nothing to simulate")
    replayed = [p for p in counts if p not in edge_platforms]
    if not replayed:
        raise ConfigError("--edges needs a tracked account on a replayed platform (reddit, mastodon or x) too")
    busiest = max(replayed, key=lambda p: counts[p])
    files: dict[str, Path] = {}
    edge_files: dict[str, Path] = {}
    for platform in sorted(counts, key=PLATFORMS.index):
        written = work / f"{platform}.jsonl.part"
        if platform in edge_platforms and platform != busiest:
            written.replace(edge_files.setdefault(platform, work / f"{platform}.edge.jsonl"))
            continue
        files[platform] = work / f"{platform}.jsonl"
        if platform != busiest:
            written.replace(files[platform])
            continue
        with open(written, "rb") as src, open(files[platform], "wb") as dst:
            for line in mixed((raw.rstrip(b"\n") for raw in src), counts[platform], hostile, seed):
                dst.write(line + b"\n")
        written.unlink()
    return Traffic(files, dict(counts), events, truth, sum(dead), edge_files)


@dataclass
class Run:
    settings: Settings
    clients_path: Path
    console: Console
    up: UpProcess
    work: Path
    injected: list[str] = field(default_factory=list)
    restarts: int = 0  # times the stack was started again

    def say(self, text: str) -> None:
        self.console.print(f"[bold]chaos[/bold] {text}")

    def inject(self, fault: Fault) -> None:
        kind = fault.kind
        if kind in ("worker_kill", "worker_term"):
            workers = self.up.pids("worker")
            pid = workers[fault.target % len(workers)]
            sig = signal.SIGKILL if kind == "worker_kill" else signal.SIGTERM
            self.say(f"{kind}: {signal.Signals(sig).name} worker {pid}")
            signal_pid(pid, sig)
        elif kind == "store_stop":
            (pid,) = self.up.pids("store")
            self.say(f"store_stop: SIGSTOP store {pid} for {fault.pause_s:.1f}s")
            signal_pid(pid, signal.SIGSTOP)
            try:
                time.sleep(fault.pause_s)
            finally:
                signal_pid(pid, signal.SIGCONT)
        elif kind == "broker_kill":
            (pid,) = self.up.pids("broker")
            self.say(f"broker_kill: SIGKILL broker {pid}; rapport up must stop loudly")
            signal_pid(pid, signal.SIGKILL)
            if self.up.wait_exit(90.0):
                self.say(f"rapport up stopped ({self.up.proc.returncode if self.up.proc else '?'})")
                self.up.reap_children()
            else:
                self.say("[red]rapport up did not stop 90 s after its broker died; killing it[/red]")
                self.up.kill()
            self.restart()
        elif kind == "stack_kill":
            self.say("stack_kill: SIGKILL rapport up and every child")
            self.up.kill()
            self.restart()
        else:  # pragma: no cover - plan_faults draws from FAULT_KINDS only
            raise ValueError(kind)
        self.injected.append(kind)

    def restart(self) -> None:
        self.restarts += 1
        time.sleep(1.0)
        self.up.start()
        self.say("rapport up started again on the same data dir")

    def final_drain(self) -> str:
        info = read_stack(self.settings.data_dir)
        if info is None:
            raise StackError("no stack runs for the final drain")
        stages = [[self.settings.topic(raw_topic(p)) for p in PLATFORMS], [self.settings.topic(INTERACTIONS)]]
        wait_drained(info.broker_url, self.settings.app_id, stages, timeout_s=1800.0, alive=self.up.running)
        return info.store_url


def feed(run: Run, traffic: Traffic, schedule: list[Fault], span_s: float,
         edges_done: Callable[[], bool] = lambda: True) -> None:
    """Replay every file (all at once, each paced to last ``span_s``) while the faults land;
    returns once every replay has drained, every fault is injected and ``edges_done``."""
    queue = list(traffic.files.items())
    pending = list(schedule)
    attempts: Counter[str] = Counter()  # failures in a row with no stack restart to excuse them
    launched: dict[str, int] = {}  # the stack restarts counted when each replay started
    replays: dict[str, subprocess.Popen[bytes]] = {}
    t0 = time.monotonic()
    try:
        while queue or replays or pending or not edges_done():
            while queue:
                platform, path = queue.pop(0)
                attempts[platform] += 1
                launched[platform] = run.restarts
                lines = max(1, traffic.lines[platform])
                run.say(f"replaying {path.name} ({lines} lines, attempt {attempts[platform]})")
                with signals_deferred():  # recorded before a stop signal can interrupt
                    replays[platform] = rapport(
                        ["replay", str(path), "--platform", platform, "--drain", "--rate", f"{lines / span_s:.2f}",
                         "--data-dir", str(run.settings.data_dir), "--clients", str(run.clients_path)],
                        run.work / f"replay-{platform}.log")
            for platform, replay in list(replays.items()):
                if replay.poll() is None:
                    continue
                del replays[platform]
                if replay.returncode == 0:
                    run.say(f"replay of {platform} drained")
                    continue
                if run.restarts > launched[platform]:
                    attempts[platform] = 0  # its stack went away meanwhile: a replay may exit then
                elif attempts[platform] >= REPLAY_ATTEMPTS:
                    raise StackError(f"replay of {platform} exited {replay.returncode} {attempts[platform]} "
                                     f"times; see {run.work}/replay-{platform}.log")
                run.say(f"[red]replay of {platform} exited {replay.returncode}; starting it again[/red]")
                queue.append((platform, traffic.files[platform]))
            if (pending and time.monotonic() - t0 >= pending[0].at_s and run.up.healthy()
                    and all(attached(r.pid) for r in replays.values() if r.poll() is None)):
                run.inject(pending.pop(0))
            elif not run.up.running():
                code = run.up.proc.returncode if run.up.proc else None
                run.say(f"[red]rapport up stopped without a fault of ours (exit {code}); starting it again[/red]")
                run.up.reap_children()
                run.restart()
            time.sleep(0.2)
    finally:
        for replay in replays.values():
            if replay.poll() is None:
                with_group_kill(replay)


def attached(pid: int) -> bool:
    """Whether a replay has connected (it holds a socket): it has found the stack by then.

    A replay that reads stack.json while the stack is down starts a stack of its own on the
    same data dir (`rapport replay --drain` with no stack running), which then holds the
    store's path when the harness starts `rapport up` again. On a loaded machine a replay can
    take longer to start than the first fault takes to come, so faults wait for the replays.
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True  # gone: nothing to wait for
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                return True
        except OSError:
            continue
    return False


def with_group_kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def verdict(run: Run, clients: ClientsFile, traffic: Traffic, store_url: str) -> dict[str, Any]:
    """Compare the store with the truth, one account at a time (bounded memory)."""
    client = connect(store_url, run.settings)
    seen: set[bytes] = set()
    rows = repeated = 0
    unexpected: list[tuple[str, str, str, str]] = []
    unexpected_n = 0
    try:
        for page in stored_keys(client):
            for key in page:
                rows += 1
                d = digest(key)
                if d in seen:
                    repeated += 1
                    continue
                seen.add(d)
                if d not in traffic.truth:
                    unexpected_n += 1
                    if len(unexpected) < 5:
                        unexpected.append(key)
        tables = table_diff(clients, client)
        dead = dead_letter_count(client)
    finally:
        client.close()
    lost = traffic.truth - seen
    del seen
    duplicated = repeated + unexpected_n
    if lost:
        run.say(f"[red]{len(lost)} lost interactions[/red], e.g. {lost_examples(traffic, clients, lost)}")
    if unexpected_n:
        run.say(f"[red]{unexpected_n} unexpected interactions[/red], e.g. {unexpected}")
    if repeated:
        run.say(f"[red]interactions FINAL has {repeated} rows beyond its distinct keys ({rows} rows)[/red]")
    if tables:
        run.say(f"[red]detection tables differ from the batch recomputation:[/red]\n{tables}")
    if dead != traffic.dead_letters:
        run.say(f"[red]{dead} dead letters in the archive, {traffic.dead_letters} expected[/red]")
    return {"lost": len(lost), "duplicated": duplicated, "tables_equal": not tables,
            "dead_letters": dead, "dead_letters_expected": traffic.dead_letters}


def edge_verdict(run: Run, edge: Edges, store_url: str) -> dict[str, Any]:
    """Each acknowledged delivery and each served event the agent publishes, in
    ``raw_events FINAL`` once; nothing else on the edges' platforms."""
    found = wait_archived(lambda: connect(store_url, run.settings), edge.checks, 300.0, run.up.running)
    out = edge.summary(found)
    for c in found:
        run.say(f"edge {c.name}: {c.want} sent, {c.lost} not archived, {c.unexpected} unexpected, "
                f"{c.repeated} repeated" + (f", e.g. {c.examples}" if c.lost else ""))
    out["_lost"] = sum(c.lost for c in found)
    out["_duplicated"] = sum(c.unexpected + c.repeated for c in found)
    return out


def lost_examples(traffic: Traffic, clients: ClientsFile, lost: set[bytes], limit: int = 5) -> list[Key]:
    """Readable keys of a few lost digests: the traffic files normalized once more."""
    index = AccountIndex.build(clients)
    found: list[Key] = []
    sources = [(p, f, expected_keys) for p, f in traffic.files.items()]
    sources += [(p, f, edge_keys) for p, f in traffic.edge_files.items()]
    for platform, path, keys_of in sources:
        with open(path, "rb") as lines:
            for key in keys_of(platform, (raw.rstrip(b"\n") for raw in lines), index, START_MS, lambda _: None):
                if digest(key) in lost and key not in found:
                    found.append(key)
                    if len(found) >= limit:
                        return found
    return found


def run_chaos(settings: Settings, *, events: int, faults: int, seed: int, rate: float, console: Console,
              workers: int = 2, edges: bool = False) -> int:
    if events < 1 or faults < 0 or rate <= 0:
        raise ConfigError("--events must be positive, --faults non-negative, --rate positive")
    if settings.clients is None:
        raise ConfigError("no clients file: pass --clients FILE or set RAPPORT_CLIENTS")
    data = Path(settings.data_dir)
    if read_stack(data) is not None:
        raise ConfigError(f"a stack already runs on {data}: chaos needs a data dir of its own")
    started = time.monotonic()
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the drain's admin clients chat at INFO
    clients_path = Path(settings.clients).resolve()
    clients = load_clients(clients_path)
    work = data / "chaos"
    work.mkdir(parents=True, exist_ok=True)
    traffic = prepare(clients, events, seed, work, frozenset(EDGE_PLATFORMS) if edges else frozenset())
    span = max(events / rate, faults * FAULT_GAP_S)
    schedule = plan_faults(faults, seed, span)
    edge = Edges(traffic.edge_files, clients, span, payload_max_bytes(settings)) if traffic.edge_files else None
    env = edge.env.env(child_env()) if edge is not None else None
    up = UpProcess(data, clients_path, workers, work / "up.log", env, split=settings.worker_split)
    run = Run(settings, clients_path, console, up, work)
    run.say(f"{events} events over {len(traffic.files)} replayed platform(s), {len(traffic.truth)} interactions "
            f"expected, {faults} faults over ~{span:.0f}s: {', '.join(f'{f.kind}@{f.at_s:.0f}s' for f in schedule)}")
    if edge is not None:
        run.say(f"edges: {edge.describe()}")
    edge_result: dict[str, Any] = {}
    with stop_on_signals():  # SIGTERM/SIGHUP stop like Ctrl-C: the finally below kills what we started
        try:
            if edge is not None:
                edge.start()  # listening before the Bluesky agent first connects
            run.up.start()
            run.say(f"rapport up --workers {workers} ({up.worker_processes()} worker processes, "
                    f"{'split' if up.split else 'not split'}) runs on {data}")
            if edge is not None:
                edge.begin()
            feed(run, traffic, schedule, span, edge.done if edge is not None else (lambda: True))
            run.say("traffic and faults done; final drain")
            store_url = run.final_drain()
            if edge is not None:
                edge_result = edge_verdict(run, edge, store_url)
                store_url = run.final_drain()  # what the edges published last, through the workers
            result = verdict(run, clients, traffic, store_url)
        finally:
            if edge is not None:
                edge.close()
            run.up.stop()
    if edge_result:
        result["lost"] += edge_result.pop("_lost")
        result["duplicated"] += edge_result.pop("_duplicated")
        result["edges"] = edge_result
    out = {"events": events, "faults": len(run.injected), "fault_kinds": dict(Counter(run.injected)), **result,
           "seconds": round(time.monotonic() - started, 1)}
    print(json.dumps(out), flush=True)
    ok = (result["lost"] == 0 and result["duplicated"] == 0 and result["tables_equal"]
          and result["dead_letters"] == result["dead_letters_expected"])
    return 0 if ok else 1
