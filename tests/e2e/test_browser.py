"""A web page cannot use the store: real headless Chromium against the real store.

A page served from another loopback port tries what any page the user opens could: a
``no-cors`` POST of ``INSERT INTO FUNCTION file(...)`` with a text/plain body (no preflight)
and ``<img>`` GETs of ``file()`` / ``url()`` SELECTs. The page is even given valid credentials,
so only the browser check can stop it. Nothing may be written, nothing read, nothing run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from streams.embedded.store import StoreServer

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--virtual-time-budget=5000"]


class _Page(BaseHTTPRequestHandler):
    page = b""
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append(self.path)
        body = self.page if self.path.startswith("/page") else b"done"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def page_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; "
                    ".ci/run installs it when CI runs as root)")
def test_a_web_page_can_neither_write_nor_read_nor_run(tmp_path: Path, page_server: ThreadingHTTPServer) -> None:
    loot = tmp_path / "loot"
    loot.mkdir()
    os.chmod(loot, 0o777)
    with StoreServer(tmp_path / "store") as store:
        ran: list[str] = []
        real_handle, real_reader = store.engine.handle, store.engine.reader_handle

        def handle(*args: Any, **kwargs: Any) -> Any:
            ran.append("pipeline")
            return real_handle(*args, **kwargs)

        def reader_handle(*args: Any, **kwargs: Any) -> Any:
            ran.append("reader")
            return real_reader(*args, **kwargs)

        store.engine.handle = handle  # type: ignore[method-assign]
        store.engine.reader_handle = reader_handle  # type: ignore[method-assign]
        user = store.users.pipeline
        login = urlencode({"user": user.name, "password": user.password})
        insert = f"INSERT INTO FUNCTION file('{loot}/pwn', 'LineAsString') SELECT 'x'"
        selects = ["SELECT * FROM file('/etc/hostname', 'LineAsString')",
                   f"SELECT * FROM url('http://127.0.0.1:{page_server.server_port}/exfil', 'LineAsString')",
                   "SELECT 1"]
        imgs = "".join(f'<img src="{store.url}/?{login}&query={quote(sql)}">' for sql in selects)
        _Page.page = f"""<!doctype html><html><body>{imgs}
<script>
fetch("{store.url}/?{login}", {{method: "POST", mode: "no-cors", body: {insert!r},
                                headers: {{"Content-Type": "text/plain"}}}})
  .finally(() => fetch("/after-post"));
</script></body></html>""".encode()
        _Page.seen = []
        profile = tmp_path / "profile"
        proc = subprocess.Popen([CHROMIUM or "chromium", *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                                 f"http://127.0.0.1:{page_server.server_port}/page.html"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            dom, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        httpd = store._httpd
        assert httpd is not None
        assert b"<img" in dom and "/page.html" in _Page.seen, "the page did not load"
        assert "/after-post" in _Page.seen, "the page's POST was never attempted"
        assert httpd.refused_browser >= 4, f"only {httpd.refused_browser} requests refused"
        assert ran == [], f"SQL ran for a web page: {ran}"
        assert list(loot.iterdir()) == []
        assert "/exfil" not in _Page.seen, "the store fetched a URL for the page"
