"""The processes `rapport chaos` starts and hurts: `rapport up`, its children, replays.

Children are found in ``/proc`` (parent pid and command line), never by name across the
machine, so only the stack this harness started is ever signalled. Tansu runs in a session
of its own: killing `up`'s process group misses it, so a stack kill signals every child
found beforehand too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from streams.embedded.datalock import DataPathLock
from streams.embedded.lifecycle import die_with_parent, signals_deferred
from streams.embedded.stackfile import read_stack
from streams.errors import StackError, StoreLockedError

REPO = Path(__file__).resolve().parent.parent.parent


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def children(pid: int) -> dict[int, str]:
    """Live direct children of ``pid``: pid -> command line."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _stat(int(entry.name))
        if st is None or st[1] != pid or st[0] in ("Z", "X"):
            continue
        try:
            out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return out


def role_of(cmdline: str) -> str | None:
    if "streams.cli worker" in cmdline:
        return "worker"
    if "streams.cli store" in cmdline:
        return "store"
    if "tansu" in cmdline:
        return "broker"
    if "streams.cli ingest" in cmdline:
        return "agent"  # `rapport chaos --edges`: the webhook receiver and the Bluesky agent
    return None


def signal_pid(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)


def child_env() -> dict[str, str]:
    """Our environment, plus the watchdog variable: a child that outlives us stops itself."""
    env = dict(os.environ)
    env["RAPPORT_SUPERVISOR_PID"] = str(os.getpid())
    return env


def rapport(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``python -m streams.cli ARGS`` in a session of its own, dying with us (PDEATHSIG).

    Call it inside :func:`signals_deferred` together with recording the result, so a stop
    signal cannot land between the two."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "streams.cli", *args], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, cwd=REPO, env=env or child_env(),
                                start_new_session=True, preexec_fn=die_with_parent)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise StackError(f"{what}: not after {timeout_s:.0f}s")
        time.sleep(interval_s)


class UpProcess:
    """One `rapport up --workers W --no-ingest` on a data dir, and the signals sent to it
    (with ``env``, a whole environment from :func:`child_env`, e.g. `rapport chaos --edges`:
    ingest on, in that environment). ``split``: W normalize + W detect processes (`--split`),
    else W processes running every agent; both kinds are role "worker"."""

    def __init__(self, data_dir: Path, clients: Path, workers: int, log: Path,
                 env: dict[str, str] | None = None, split: bool = True) -> None:
        self.data_dir, self.clients, self.workers, self.log = data_dir, clients, workers, log
        self.env = env
        self.split = split
        self.proc: subprocess.Popen[bytes] | None = None
        self.known: set[int] = set()  # every child ever seen (Tansu is not in up's group)

    def wait_store_free(self, timeout_s: float = 180.0) -> None:
        """Wait until no process holds the store's data path: a SIGKILLed store on a loaded
        machine may take a while to exit and free it, and `rapport up` refuses a taken path."""
        lock = DataPathLock(self.data_dir / "store")

        def free() -> bool:
            try:
                lock.acquire()
            except StoreLockedError:
                return False
            lock.release()
            return True

        wait_until(free, timeout_s, f"the store data path {self.data_dir / 'store'} stayed in use", 0.5)

    def start(self, timeout_s: float = 300.0) -> None:
        self.wait_store_free()
        with signals_deferred():  # recorded before a stop signal can interrupt
            ingest = [] if self.env is not None else ["--no-ingest"]
            mode = "--split" if self.split else "--no-split"
            self.proc = rapport(["up", "--workers", str(self.workers), mode, *ingest, "--data-dir",
                                 str(self.data_dir), "--clients", str(self.clients)], self.log,
                                self.env)
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise StackError(f"rapport up exited {proc.returncode} while starting; see {self.log}")
            info = read_stack(self.data_dir)
            return info is not None and info.pid == proc.pid

        wait_until(ready, timeout_s, "rapport up did not write stack.json")
        self.roles()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def roles(self) -> dict[int, str]:
        """Live children of `up` by role (worker, store, broker)."""
        if self.proc is None:
            return {}
        found = {pid: role for pid, cmd in children(self.proc.pid).items() if (role := role_of(cmd))}
        self.known |= set(found)
        return found

    def pids(self, role: str) -> list[int]:
        return sorted(pid for pid, r in self.roles().items() if r == role)

    def worker_processes(self) -> int:
        """How many worker processes `up` keeps running: two per slot when split."""
        return self.workers * (2 if self.split else 1)

    def healthy(self) -> bool:
        """Running, stack.json ours, and every worker back."""
        if not self.running() or self.proc is None:
            return False
        info = read_stack(self.data_dir)
        return (info is not None and info.pid == self.proc.pid
                and len(self.pids("worker")) >= self.worker_processes())

    def wait_exit(self, timeout_s: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL `up` first (so it starts nothing more), then its process group and every
        child it had (Tansu included)."""
        if self.proc is None:
            return
        self.roles()
        signal_pid(self.proc.pid, signal.SIGKILL)
        for pid in self.known | set(children(self.proc.pid)):
            signal_pid(pid, signal.SIGCONT)  # a stopped store must be able to die
            signal_pid(pid, signal.SIGKILL)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reap_children()

    def reap_children(self, timeout_s: float = 30.0) -> None:
        """Wait until every child ever seen has exited; SIGKILL the stragglers."""
        deadline = time.monotonic() + timeout_s
        while any(alive(p) for p in self.known) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.known:
            if alive(pid):
                signal_pid(pid, signal.SIGKILL)
        self.known = {p for p in self.known if alive(p)}

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ctrl-C `up` (it stops its children in order); SIGKILL everything if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for pid in self.pids("store"):
                signal_pid(pid, signal.SIGCONT)
            self.proc.send_signal(signal.SIGINT)
            if not self.wait_exit(timeout_s):
                self.kill()
                return
        self.reap_children()
