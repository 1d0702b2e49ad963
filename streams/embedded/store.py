"""The embedded store: one chDB engine served over the ClickHouse HTTP interface.

Every Rapport process (workers, the board, ``rapport query``) and Grafana talk to the store
exactly as to a ClickHouse server, through the unmodified ``clickhouse-connect`` HTTP client,
so swapping the embedded store for a real ClickHouse is a URL change. chDB runs in-process and
allows one process per data path, hence one server process that owns the engine: this module
starts and stops it (``StoreServer``) and runs it as ``rapport store`` (``run_store``). The
protocol is in ``store_http``, the engine and its handles in ``engine``.

Bounds, because chDB runs queries in parallel threads outside the GIL (a busy prototype grew
to ~130 threads / ~350 MB): at most ``workers`` statements in chDB at once, each with at most
``max_threads`` engine threads, and at most ``max_connections`` connection threads.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from streams.embedded.credentials import StoreUsers, User
from streams.embedded.datalock import DataPathLock
from streams.embedded.engine import Engine
from streams.embedded.lifecycle import die_with_parent, orphaned
from streams.embedded.reader import ReaderCaps
from streams.embedded.store_http import StoreHTTPServer
from streams.errors import ConfigError
from streams.settings import Settings

log = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool, settings: Settings) -> None:
    """Loopback unless asked twice: an explicit flag and passwords the user set (a generated
    one is fine on a laptop, where only the file's owner reads it, not for a network)."""
    if _is_loopback(host):
        return
    if not allow_remote:
        raise ConfigError(f"refusing to serve the store on {host}, beyond loopback: pass "
                          "--allow-remote and set RAPPORT_STORE_PASSWORD and "
                          "RAPPORT_STORE_READER_PASSWORD")
    missing = [name for name, secret in (("RAPPORT_STORE_PASSWORD", settings.store_password),
                                         ("RAPPORT_STORE_READER_PASSWORD",
                                          settings.store_reader_password))
               if not secret.get_secret_value()]
    if missing:
        raise ConfigError(f"serving the store on {host} needs {' and '.join(missing)} set "
                          "explicitly (not a generated password)")


class StoreServer:
    """chDB on ``data_path`` behind the ClickHouse HTTP interface on ``host:port``.

    ``start()`` claims the data path, opens the engine, binds and serves in a background
    thread; ``serve_forever()`` then blocks until ``stop()``. As a context manager it starts
    and stops. ``port=0`` lets the OS pick a port; ``url`` tells which.
    """

    def __init__(self, data_path: Path, host: str = "127.0.0.1", port: int = 0,
                 max_threads: int = 2, workers: int = 8, *, max_connections: int = 64,
                 idle_timeout_s: float = 30.0, compress_responses: bool | None = None,
                 users: StoreUsers | None = None, reader_caps: ReaderCaps | None = None,
                 reserved_for_pipeline: int = 2, head_timeout_s: float = 10.0,
                 max_inflated_bytes: int = 1 << 30,
                 allowed_origins: frozenset[str] | list[str] = frozenset()) -> None:
        self.data_path = Path(data_path)
        # Web pages are refused unless their origin is listed (store_http.browser_refusal).
        self.allowed_origins = frozenset(allowed_origins)
        self.head_timeout_s = head_timeout_s  # the whole request head must arrive within it
        self.max_inflated_bytes = max_inflated_bytes  # a compressed body inflating past it: 413
        # Without users given (tests, tools), a fresh random pair: nobody can log in by guessing.
        self.users = users or StoreUsers(User("rapport", secrets.token_urlsafe(24), "pipeline"),
                                         User("rapport_reader", secrets.token_urlsafe(24), "reader"))
        self.host = host
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        # Default: compress answers (when asked) only for clients off this machine.
        self.compress_responses = (not _is_loopback(host) if compress_responses is None
                                   else compress_responses)
        self.max_connections = max_connections
        self.engine = Engine(self.data_path, max_threads=max_threads, workers=workers,
                             reader_caps=reader_caps, reserved_for_pipeline=reserved_for_pipeline)
        self._lock = DataPathLock(self.data_path)
        self._httpd: StoreHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the store is not started")
        host, port = self._httpd.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Claim the data path (``StoreLockedError`` if taken), open chDB, bind and serve."""
        self._lock.acquire()
        try:
            self.engine.open()
            self._httpd = StoreHTTPServer((self.host, self.port), self, self.max_connections)
        except BaseException:
            self.engine.close(timeout_s=0)
            self._lock.release()
            raise
        self._lock.note(self.url)
        self._stopped.clear()
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.2,),
                                        name="store-http", daemon=True)
        self._thread.start()
        log.info("store on %s serving %s", self.data_path, self.url)

    def serve_forever(self) -> None:
        """Serve (starting first if need be) until :meth:`stop`, from a signal handler or
        another thread."""
        if self._httpd is None and not self._stopped.is_set():
            self.start()
        while not self._stopped.wait(0.5):
            pass

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop accepting, cut idle connections, let statements finish, close chDB."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.stopping = True
            httpd.shutdown()
            httpd.wake_connections()
            httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout_s)
            self.engine.close(timeout_s)
        self._lock.release()
        self._stopped.set()

    def __enter__(self) -> StoreServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_store(data_path: Path, host: str = "127.0.0.1", port: int = 0,
              ready_line: Callable[[str], None] = print, *, max_threads: int = 2,
              workers: int = 8, users: StoreUsers | None = None,
              allowed_origins: list[str] | None = None) -> None:
    """``rapport store``: serve until SIGINT/SIGTERM or the parent dies; the URL goes first
    to ``ready_line``. ``StoreLockedError`` when another process holds ``data_path``."""
    parent = os.getppid()
    die_with_parent()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
                } if in_main else {}
    try:
        server = StoreServer(data_path, host, port, max_threads=max_threads, workers=workers,
                             users=users, allowed_origins=allowed_origins or [])
        server.start()
        try:
            ready_line(server.url)
            while not stop.wait(0.5):
                if orphaned(parent):
                    log.warning("the store's parent process is gone; stopping")
                    break
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
