"""No secret is ever printed or exposed: `rapport up` with every secret set to a marker.

Every ``SecretStr`` setting gets a unique marker; the stack runs with all its ingest agents
pointed at dead loopback ports (they fail and log it), traffic and errors are driven (queries,
a failing query, wrong passwords, a wrong-shape secret, a bad clients file, the store down),
and then every log, status file, stack.json, every command's output and every process's
``/proc/<pid>/cmdline`` is searched for the markers. Only ``store-credentials.json`` (0600) may
hold the store's own passwords.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.embedded.ports import free_port
from streams.embedded.stackfile import read_stack
from streams.settings import Settings
from tests.support.stack import REPO, stop_process, wait_until

pytestmark = pytest.mark.e2e

DEAD = "127.0.0.1:9"  # discard port: nothing listens, nothing leaves the machine


def _secret_fields() -> dict[str, str]:
    """Env var -> value for every secret setting, each holding its own marker."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        kind = str(field.annotation)
        if "SecretStr" not in kind:
            continue
        marker = f"MARK{name.upper().replace('_', '')}X"
        if typing.get_origin(field.annotation) is dict:
            env[f"RAPPORT_{name.upper()}"] = json.dumps({"acct1": marker})
        else:
            env[f"RAPPORT_{name.upper()}"] = marker
    return env


SECRETS = _secret_fields()
WRONG = "MARKWRONGPASSWORDX"  # a password given in a URL, never the right one
MARKERS = [v if not v.startswith("{") else json.loads(v)["acct1"] for v in SECRETS.values()] + [WRONG]


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env.update(SECRETS)
    env.update({
        "RAPPORT_BLUESKY_JETSTREAM_URL": f"ws://{DEAD}/subscribe",
        "RAPPORT_BLUESKY_APPVIEW_URL": f"http://{DEAD}",
        "RAPPORT_MASTODON_URL": f"http://{DEAD}",
        "RAPPORT_X_API_URL": f"http://{DEAD}",
        "RAPPORT_REDDIT_AUTH_URL": f"http://{DEAD}",
        "RAPPORT_REDDIT_API_URL": f"http://{DEAD}",
        "RAPPORT_REDDIT_CLIENT_ID": "client-id",
        "RAPPORT_REDDIT_USERNAME": "someone",
        "RAPPORT_INSTAGRAM_GRAPH_URL": f"http://{DEAD}",
        "RAPPORT_WEBHOOK_PORT": str(free_port()),
        "RAPPORT_INGEST_BACKOFF_INITIAL_S": "0.2",
        "RAPPORT_INGEST_STATUS_INTERVAL_S": "0.5",
        "RAPPORT_LOG_LEVEL": "DEBUG",
    })
    return env


def _run(args: list[str], env: dict[str, str], out: list[str],
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout, check=False)
    out.append(f"$ {args}\n{done.stdout}\n{done.stderr}")
    return done


def _cmdlines() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    "utf-8", "replace")
            except OSError:
                continue
    return found


def _leaks(text: str) -> list[str]:
    return [m for m in MARKERS if m in text]


def test_no_secret_in_logs_status_files_output_or_argv(tmp_path: Path) -> None:
    assert len(MARKERS) >= 10, MARKERS  # every secret setting is covered
    data = tmp_path / "data"
    clients = tmp_path / "clients.toml"
    clients.write_text((REPO / "clients.example.toml").read_text())
    env = {**_base_env(tmp_path), "RAPPORT_DATA_DIR": str(data), "RAPPORT_CLIENTS": str(clients)}
    outputs: list[str] = []
    console = tmp_path / "up.console"
    with open(console, "wb") as sink:
        up = subprocess.Popen([sys.executable, "-m", "streams.cli", "up"], stdout=sink, stderr=sink,
                              cwd=REPO, env=env, start_new_session=True)
    try:
        info = wait_until(lambda: read_stack(data), timeout_s=120)
        assert stat.S_IMODE((data / "stack.json").stat().st_mode) == 0o600
        time.sleep(3)  # the agents start, fail against dead ports, retry, write status files
        query_env = {k: v for k, v in env.items() if k not in ("RAPPORT_STORE_URL",)}
        assert _run(["query", "SELECT 1 AS one", "--format", "csv"], query_env, outputs).returncode == 0
        assert _run(["query", "SELECT no_such_column"], query_env, outputs).returncode == 2
        assert _run(["query", "SELECT file('/etc/hostname')"], query_env, outputs).returncode == 2
        wrong = {**query_env, "RAPPORT_STORE_URL": info.store_url.replace(
            "http://", f"http://rapport:{WRONG}@")}
        assert _run(["query", "SELECT 1"], wrong, outputs).returncode == 2
        down = {**query_env, "RAPPORT_STORE_URL": f"http://rapport:{WRONG}@{DEAD}"}
        assert _run(["query", "SELECT 1"], down, outputs).returncode == 2
        shape = {**query_env, "RAPPORT_MASTODON_ACCESS_TOKENS": json.dumps([MARKERS[1]])}
        assert _run(["query", "SELECT 1"], shape, outputs).returncode == 2
        bad_clients = tmp_path / "bad.toml"
        bad_clients.write_text("[[clients]]\nid = 3\n")
        assert _run(["up", "--clients", str(bad_clients), "--data-dir", str(tmp_path / "other")],
                    env, outputs).returncode == 2
        assert _run(["grafana", "provision", "--out", str(tmp_path / "grafana")], query_env,
                    outputs).returncode == 0
        argv_leaks = {pid: line for pid, line in _cmdlines().items() if _leaks(line)}
        assert not argv_leaks, f"secrets in process arguments: {argv_leaks}"
    finally:
        stop_process(up, signal.SIGINT, 60, group=True)
    assert wait_until(lambda: read_stack(data) is None, timeout_s=30)
    leaks: dict[str, list[str]] = {}
    files = [p for p in data.rglob("*") if p.is_file() and "store" not in p.relative_to(data).parts[:1]
             and p.name != "store-credentials.json"]
    files.append(console)
    assert any(p.name.startswith("ingest-") for p in files), [str(p) for p in files]
    for path in files:
        found = _leaks(path.read_text(errors="replace"))
        if found:
            leaks[str(path)] = found
    for text in outputs:
        if found := _leaks(text):
            leaks[text[:200]] = found
    assert not leaks, f"secrets printed: {leaks}"
    provisioned = tmp_path / "grafana" / "provisioning" / "datasources" / "rapport.yaml"
    assert stat.S_IMODE(provisioned.stat().st_mode) == 0o600
    assert isinstance(Settings.model_fields["store_password"].default, SecretStr)
