"""Session fixtures: ONE Tansu broker and ONE chDB store per test session.

Each test gets its own namespace on them (topic prefix, database, consumer group), so the
suite stays fast on 2 cores while every integration test talks to the real programs.

Every process the run starts carries the run's token (tests/support/procs.py); at the end
of the run, one still alive fails the run by name (and is killed), so a leak cannot hide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.contracts.topics import full_names
from streams.embedded.broker import Broker
from streams.kafka_admin import ensure_topics
from streams.settings import Settings
from streams.store.migrations import migrate
from tests.support.procs import RUN_VAR, kill_all, wait_gone
from tests.support.stack import REPO, Namespace, stop_process, unique_name

EXAMPLE_CLIENTS = REPO / "clients.example.toml"
os.environ[RUN_VAR] = uuid.uuid4().hex  # inherited by every process this run spawns


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a process it started is still alive once every fixture has ended."""
    left = wait_gone(RUN_VAR, os.environ[RUN_VAR], timeout_s=20.0)
    if not left:
        return
    kill_all(left)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} process(es) started by this test run outlived it (now killed):"]
    lines += [f"  pid {pid}: {cmd}" for pid, cmd in sorted(left.items())]
    if reporter is not None:
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print("\n".join(lines), file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rapport-session")


@pytest.fixture(scope="session")
def broker(session_dir: Path) -> Iterator[Broker]:
    b = Broker(log_path=session_dir / "broker.log")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def store_url(session_dir: Path) -> Iterator[str]:
    """A real `rapport store` child serving chDB over HTTP, as a URL carrying the pipeline's
    credentials, read from the data dir's store-credentials.json the way a user does."""
    from streams.embedded.children import first_line
    from streams.embedded.credentials import read_users, with_credentials
    from streams.embedded.lifecycle import die_with_parent

    log_path = session_dir / "store.log"
    log = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "store", "--data-dir", str(session_dir)],
                            stdout=subprocess.PIPE, stderr=log, cwd=REPO, start_new_session=True,
                            preexec_fn=die_with_parent)
    try:
        url = first_line(proc, "the store", log_path)
        users = read_users(session_dir)
        assert users is not None, "the store wrote no store-credentials.json"
        yield with_credentials(url, users.pipeline.name, users.pipeline.password)
    finally:
        stop_process(proc)


@pytest.fixture
def namespace(broker: Broker, store_url: str, tmp_path: Path) -> Namespace:
    """A fresh topic prefix, database and consumer group on the session's servers."""
    name = unique_name("t")
    clients = tmp_path / "clients.toml"
    shutil.copy(EXAMPLE_CLIENTS, clients)
    settings = Settings(data_dir=tmp_path / "data", clients=clients, topic_prefix=name,
                        store_database=name, app_id=name, partitions=2, batch_delay_s=0.2,
                        broker_url=broker.url, store_url=store_url)
    migrate(store_url, settings)
    ensure_topics(broker.url, full_names(settings), settings.partitions)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    return Namespace(settings, broker.url, store_url, log_dir)
