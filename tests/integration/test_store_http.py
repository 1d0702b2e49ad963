"""The embedded store as clickhouse-connect sees it: real chDB, real HTTP, no mocks.

One StoreServer per module, in this process (so its PID is ours); every test works in a
database of its own. The second-process cases run real subprocesses, since chDB allows one
engine per process.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, StreamFailureError

from streams.embedded.datalock import LOCK_FILE
from streams.embedded.store import StoreServer
from streams.errors import StoreLockedError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROWS = 100_000

Connect = Callable[..., Client]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreServer]:
    # compress_responses=True: compress=True clients then really get lz4 answers.
    with StoreServer(tmp_path_factory.mktemp("store") / "data", compress_responses=True) as server:
        yield server


@pytest.fixture
def connect(store: StoreServer) -> Iterator[Connect]:
    port = int(store.url.rsplit(":", 1)[1])
    opened: list[Client] = []

    login = store.users.pipeline

    def _connect(**kwargs: Any) -> Client:
        kwargs.setdefault("username", login.name)
        kwargs.setdefault("password", login.password)
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port, **kwargs)
        opened.append(client)
        return client

    yield _connect
    for client in opened:
        client.close()


@pytest.fixture
def db(connect: Connect) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    connect().command(f"CREATE DATABASE {name}")
    return name


INTERACTIONS_DDL = """
CREATE TABLE {db}.interactions (
    client_id LowCardinality(String), account_id String, platform LowCardinality(String),
    event_id String, kind LowCardinality(String), author_id String,
    parent_id Nullable(String), text String, lang LowCardinality(String),
    created_at DateTime64(3, 'UTC'), n UInt32, version UInt64
) ENGINE = {engine} ORDER BY (client_id, account_id, event_id)
"""
COLUMNS = ["client_id", "account_id", "platform", "event_id", "kind", "author_id", "parent_id",
           "text", "lang", "created_at", "n", "version"]


def _interactions(count: int, version: int = 1) -> list[list[object]]:
    """Column-oriented rows shaped like Rapport's interactions."""
    start = datetime(2024, 5, 1, tzinfo=UTC)
    ids = range(count)
    return [["acme"] * count, [f"acct{i % 7}" for i in ids], ["bluesky"] * count,
            [f"at://did:plc:{i}/app.bsky.feed.post/{i}" for i in ids], ["reply"] * count,
            [f"did:plc:{i % 1000}" for i in ids], [None if i % 3 else f"p{i}" for i in ids],
            [f"hello number {i}" for i in ids], ["en"] * count,
            [start + timedelta(milliseconds=i) for i in ids], list(ids), [version] * count]


@pytest.mark.parametrize("compress", [False, True])
def test_insert_and_read_back_100k_rows(connect: Connect, db: str, compress: bool) -> None:
    client = connect(compress=compress)
    client.command(INTERACTIONS_DDL.format(db=db, engine="MergeTree"))
    summary = client.insert(f"{db}.interactions", _interactions(ROWS), column_names=COLUMNS,
                            column_oriented=True)
    assert summary.written_rows == ROWS
    count, total = client.query(f"SELECT count(), sum(n) FROM {db}.interactions").result_rows[0]
    assert (count, total) == (ROWS, ROWS * (ROWS - 1) // 2)
    by_account = client.query(f"SELECT account_id, count() FROM {db}.interactions "
                              "GROUP BY account_id ORDER BY account_id").result_rows
    assert sum(c for _, c in by_account) == ROWS and len(by_account) == 7


@pytest.mark.parametrize("compress", ["zstd", "gzip"])
def test_other_body_encodings(connect: Connect, db: str, compress: str) -> None:
    client = connect(compress=compress)
    client.command(f"CREATE TABLE {db}.t (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    client.insert(f"{db}.t", [[i, "x" * (i % 50)] for i in range(20_000)], column_names=["a", "s"])
    assert client.command(f"SELECT count() FROM {db}.t") == 20_000


def test_query_parameters_command_and_dataframes(connect: Connect) -> None:
    client = connect()
    assert client.query("SELECT {x:UInt32} + 1", parameters={"x": 1}).result_rows == [(2,)]
    tricky = "tab\there 'quoted' back\\slash\nnew line"
    assert client.query("SELECT {s:String}", parameters={"s": tricky}).result_rows == [(tricky,)]
    assert client.query("SELECT {a:Array(UInt8)}", parameters={"a": [1, 2]}).result_rows == [
        ([1, 2],)]
    assert client.command("SELECT 1, 'two'") == ["1", "two"]
    assert client.command("SELECT count() FROM numbers(5)") == 5
    frame = client.query_df("SELECT number AS n FROM numbers(4)")
    assert list(frame["n"]) == [0, 1, 2, 3]
    table = client.query_arrow("SELECT toString(number) AS s FROM numbers(3)")
    assert table.column("s").to_pylist() == ["0", "1", "2"]


def test_bad_sql_is_a_database_error_with_the_clickhouse_code(connect: Connect) -> None:
    client = connect()
    with pytest.raises(DatabaseError) as syntax:
        client.query("SELEC 1")
    assert syntax.value.code == 62 and "Code: 62" in str(syntax.value)
    with pytest.raises(DatabaseError) as missing:
        client.command("SELECT * FROM no_such_db.no_such_table")
    assert missing.value.code in (60, 81) and "DB::Exception" in str(missing.value)
    assert client.command("SELECT 1") == 1  # the session is fine afterwards


def test_errors_while_reading_rows_are_never_silent(connect: Connect) -> None:
    client = connect()
    with pytest.raises(DatabaseError) as held:  # small answers are held: a proper error
        client.query("SELECT throwIf(number = 5) FROM numbers(10)")
    assert held.value.code == 395
    with pytest.raises(StreamFailureError):  # a streamed answer is cut short
        with client.query_row_block_stream(
                "SELECT number, throwIf(number = 1500000) FROM numbers(2000000)") as stream:
            for _ in stream:
                pass
    assert client.command("SELECT 1") == 1


def test_aware_datetimes_round_trip_exactly(connect: Connect, db: str) -> None:
    client = connect()
    client.command(f"CREATE TABLE {db}.times (id UInt8, at DateTime64(3, 'UTC')) "
                   "ENGINE = MergeTree ORDER BY id")
    sent = [datetime(2024, 3, 10, 6, 59, 59, 999_000, tzinfo=UTC),
            datetime(2024, 3, 10, 3, 30, 0, 123_000, tzinfo=ZoneInfo("America/New_York")),
            datetime(2024, 11, 3, 1, 30, 0, 1_000, tzinfo=ZoneInfo("Europe/Paris"))]
    client.insert(f"{db}.times", [[i, at] for i, at in enumerate(sent)], column_names=["id", "at"])
    select = f"SELECT at FROM {db}.times ORDER BY id"
    got = [row[0] for row in connect(tz_mode="aware").query(select).result_rows]
    assert got == sent  # the same instants, to the millisecond
    assert all(at.utcoffset() == timedelta(0) for at in got)
    # clickhouse-connect's default tz_mode ("naive_utc") answers naive datetimes in UTC.
    naive = [row[0] for row in client.query(select).result_rows]
    assert naive == [at.astimezone(UTC).replace(tzinfo=None) for at in sent]
    assert client.command("SELECT timezone()") == "UTC"


def test_replacing_merge_tree_final_hides_a_reinserted_batch(connect: Connect, db: str) -> None:
    client = connect()
    client.command(INTERACTIONS_DDL.format(db=db, engine="ReplacingMergeTree(version)"))
    batch = _interactions(1000)
    for _ in range(2):
        client.insert(f"{db}.interactions", batch, column_names=COLUMNS, column_oriented=True)
    client.insert(f"{db}.interactions", _interactions(10, version=2), column_names=COLUMNS,
                  column_oriented=True)
    table = f"{db}.interactions"
    assert client.command(f"SELECT count() FROM {table}") == 2010
    assert client.command(f"SELECT count() FROM {table} FINAL") == 1000
    assert client.command(f"SELECT countIf(version = 2) FROM {table} FINAL") == 10


def test_raw_inserts_and_streamed_answers(connect: Connect, db: str) -> None:
    client = connect(compress=True)
    client.command(f"CREATE TABLE {db}.t (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    rows = b"".join(b'{"a": %d, "s": "r%d"}\n' % (i, i) for i in range(5000))
    client.raw_insert(f"{db}.t", insert_block=rows, fmt="JSONEachRow")
    client.command(f"INSERT INTO {db}.t VALUES (100000, 'semi;colon'), (100001, 'x')")
    assert client.command(f"SELECT count() FROM {db}.t") == 5002
    with client.query_row_block_stream(f"SELECT a FROM {db}.t AS t, numbers(60) AS n") as stream:
        assert sum(len(block) for block in stream) == 5002 * 60
    assert b'"a":100000' in client.raw_query(f"SELECT a FROM {db}.t WHERE a = 100000",
                                             fmt="JSONEachRow")
    with pytest.raises(DatabaseError) as err:
        client.query_row_block_stream(f"SELECT nope FROM {db}.t")
    assert err.value.code == 47


def test_settings_last_one_request_and_max_threads_is_capped(connect: Connect) -> None:
    for client in (connect(), connect(autogenerate_session_id=False)):
        probe = "SELECT getSetting('max_block_size'), getSetting('max_threads')"
        assert client.query(probe, settings={"max_block_size": 1234, "max_threads": 64}
                            ).result_rows == [(1234, 2)]
        assert client.query(probe).result_rows == [(65409, 2)]


def test_sessions_keep_set_and_use_and_sessionless_requests_do_not(connect: Connect,
                                                                  db: str) -> None:
    probe = "SELECT getSetting('max_block_size'), currentDatabase()"
    session = connect()
    session.command("SET max_block_size = 777")
    session.command(f"USE {db}")
    assert session.query(probe).result_rows == [(777, db)]
    shared = connect(autogenerate_session_id=False)
    shared.command("SET max_block_size = 777")
    shared.command(f"USE {db}")
    assert shared.query(probe).result_rows == [(65409, "default")]
    in_db = connect(database=db, autogenerate_session_id=False)
    assert in_db.command("SELECT currentDatabase()") == db
    assert shared.command("SELECT currentDatabase()") == "default"


def _authed(store: StoreServer, target: str, data: bytes | None = None) -> urllib.request.Request:
    login = store.users.pipeline
    return urllib.request.Request(store.url + target, data=data, headers={
        "X-ClickHouse-User": login.name, "X-ClickHouse-Key": login.password})


def test_http_details(store: StoreServer) -> None:
    with urllib.request.urlopen(store.url + "/ping") as ping:
        assert ping.read() == b"Ok.\n"
    with urllib.request.urlopen(_authed(store, "/?query=" + quote("SELECT 1 FORMAT JSONEachRow"))) as r:
        assert r.read() == b'{"1":1}\n'
        assert r.headers["X-ClickHouse-Format"] == "JSONEachRow"
        assert r.headers["X-ClickHouse-Timezone"] == "UTC"
        assert r.headers["X-ClickHouse-Query-Id"] and r.headers["X-ClickHouse-Summary"]
    with urllib.request.urlopen(_authed(store, "/?default_format=CSV&query=SELECT%20'a'")) as r:
        assert (r.read(), r.headers["X-ClickHouse-Format"]) == (b'"a"\n', "CSV")
    create = quote("CREATE TABLE x (a UInt8) ENGINE = Memory")
    with pytest.raises(urllib.error.HTTPError) as readonly:
        urllib.request.urlopen(_authed(store, "/?query=" + create))
    assert readonly.value.code == 403
    assert readonly.value.headers["X-ClickHouse-Exception-Code"] == "164"
    request = _authed(store, "/?query=SELECT%201;%20SELECT%202", data=b"")
    with pytest.raises(urllib.error.HTTPError) as multi:
        urllib.request.urlopen(request)
    assert multi.value.read().startswith(b"Code: 62. DB::Exception: Multi-statements")


def test_concurrent_writers_and_a_reader(connect: Connect, db: str) -> None:
    connect().command(f"CREATE TABLE {db}.t (w UInt8, i UInt32) ENGINE = MergeTree ORDER BY i")
    seen: list[int] = []
    done = threading.Event()

    def write(w: int) -> None:
        client = connect()
        for batch in range(5):
            client.insert(f"{db}.t", [[w, batch * 20_000 + i] for i in range(20_000)],
                          column_names=["w", "i"])

    def read() -> None:
        client = connect()
        while not done.is_set():
            seen.append(int(str(client.command(f"SELECT count() FROM {db}.t"))))

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    reader.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    reader.join()
    assert connect().command(f"SELECT count() FROM {db}.t") == 200_000
    assert seen == sorted(seen)  # counts never go backwards


def test_a_second_server_on_the_data_path_names_the_holder(store: StoreServer) -> None:
    with pytest.raises(StoreLockedError, match=f"process {os.getpid()}"):
        StoreServer(store.data_path).start()
    code = ("from pathlib import Path; from streams.embedded.store import StoreServer; "
            f"StoreServer(Path({str(store.data_path)!r})).start()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode != 0
    assert "StoreLockedError" in proc.stderr
    assert f"in use by process {os.getpid()} (serving {store.url})" in proc.stderr
    assert "Code: 36" not in proc.stderr and "Cannot lock file" not in proc.stderr


PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE)
print(child.pid, flush=True)
print(child.stdout.readline().decode().strip(), flush=True)
time.sleep(120)
"""


def _lock_is_free(data_path: Path) -> bool:
    fd = os.open(data_path / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_run_store_prints_its_url_first_and_dies_with_its_parent(tmp_path: Path) -> None:
    data = tmp_path / "child-store"
    child = ("from pathlib import Path; from streams.embedded.store import run_store; "
             f"run_store(Path({str(data)!r}), '127.0.0.1', 0, lambda u: print(u, flush=True))")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, child], stdout=subprocess.PIPE,
                              cwd=REPO, start_new_session=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        url = parent.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/ping") as ping:
            assert ping.read() == b"Ok.\n"
        parent.send_signal(signal.SIGKILL)  # no chance to clean up: the kernel tells the child
        assert _gone(child_pid), "the store outlived its parent"
        assert _lock_is_free(data)
    finally:
        parent.kill()
        parent.wait()
