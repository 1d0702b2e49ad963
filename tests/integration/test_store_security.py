"""The store refuses what a laptop must not allow: no login, no way out of the store from SQL.

One real `rapport store` child per module (its own data dir), reached the way users reach it:
credentials read from ``store-credentials.json``, curl-like raw HTTP and clickhouse-connect.
"""

from __future__ import annotations

import base64
import http.client
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from streams.embedded.children import first_line
from streams.embedded.credentials import StoreUsers, User, credentials_path, read_users
from streams.settings import Settings
from streams.store.client import connect
from tests.support.stack import REPO, stop_process

pytestmark = pytest.mark.integration


@dataclass
class Served:
    url: str
    data_dir: Path
    users: StoreUsers

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("secure-store")
    log_path = data_dir / "store.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_STORE_")}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "store", "--data-dir", str(data_dir)],
                                stdout=subprocess.PIPE, stderr=log, cwd=REPO, env=env)
    try:
        url = first_line(proc, "the store", log_path)
        users = read_users(data_dir)
        assert users is not None
        yield Served(url, data_dir, users)
    finally:
        stop_process(proc)


def raw(served: Served, method: str, target: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def basic(user: User) -> dict[str, str]:
    token = base64.b64encode(f"{user.name}:{user.password}".encode()).decode()
    return {"Authorization": "Basic " + token}


def _query(sql: str) -> str:
    return "/?" + urlencode({"query": sql})


# --- 1. credentials, always -----------------------------------------------------------------

def test_the_credentials_file_is_the_users_alone(served: Served) -> None:
    mode = stat.S_IMODE(credentials_path(served.data_dir).stat().st_mode)
    assert mode == 0o600
    assert served.users.pipeline.password != served.users.reader.password
    assert len(served.users.pipeline.password) >= 24


@pytest.mark.parametrize("headers,target", [
    ({}, _query("SELECT 1")),
    ({"Authorization": "Basic " + base64.b64encode(b"x:bad").decode()}, _query("SELECT 1")),
    ({"X-ClickHouse-User": "rapport", "X-ClickHouse-Key": "wrong"}, _query("SELECT 1")),
    ({}, _query("SELECT 1") + "&user=rapport&password=wrong"),
    ({"Authorization": "Bearer abc"}, _query("SELECT 1")),
    ({"Authorization": "Basic !!!"}, _query("SELECT 1")),
])
def test_requests_without_valid_credentials_are_refused_516(served: Served, headers: dict[str, str],
                                                            target: str) -> None:
    status, answer, body = raw(served, "GET", target, headers=headers)
    assert status == 401 and answer["x-clickhouse-exception-code"] == "516", body
    assert b"AUTHENTICATION_FAILED" in body


def test_the_issues_curl_lines_are_refused(served: Served, tmp_path: Path) -> None:
    status, answer, body = raw(served, "GET", _query("SELECT * FROM file('/etc/hostname','LineAsString')"))
    assert status == 401 and answer["x-clickhouse-exception-code"] == "516"
    target = tmp_path / "pwn"
    status, answer, _ = raw(served, "POST", "/", headers={
        "Authorization": "Basic " + base64.b64encode(b"x:bad").decode()},
        body=f"INSERT INTO FUNCTION file('{target}','LineAsString') SELECT 'x'".encode())
    assert status == 401 and answer["x-clickhouse-exception-code"] == "516"
    assert not target.exists()


def test_every_clickhouse_way_of_sending_credentials_works(served: Served) -> None:
    user = served.users.pipeline
    ways = [
        ({**basic(user)}, _query("SELECT 1")),
        ({"X-ClickHouse-User": user.name, "X-ClickHouse-Key": user.password}, _query("SELECT 1")),
        ({}, _query("SELECT 1") + "&" + urlencode({"user": user.name, "password": user.password})),
    ]
    for headers, target in ways:
        status, _, body = raw(served, "GET", target, headers=headers)
        assert (status, body) == (200, b"1\n")


def test_ping_needs_no_credentials(served: Served) -> None:
    assert raw(served, "GET", "/ping")[::2] == (200, b"Ok.\n")


def test_rapport_commands_find_the_credentials_like_users(served: Served, tmp_path: Path) -> None:
    settings = Settings(data_dir=served.data_dir, store_url=served.url, store_database="default")
    client = connect(served.url, settings)
    try:
        assert client.command("SELECT currentDatabase()") == "default"
    finally:
        client.close()
    done = subprocess.run([sys.executable, "-m", "streams.cli", "query", "SELECT 40 + 2 AS answer",
                           "--format", "csv", "--data-dir", str(served.data_dir)],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "RAPPORT_STORE_URL": served.url,
                               "RAPPORT_STORE_DATABASE": "default"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["answer", "42"]


def test_credentials_inside_the_store_url_are_used_and_masked(served: Served, tmp_path: Path) -> None:
    user = served.users.pipeline
    parts = urlsplit(served.url)
    good = f"http://{quote(user.name)}:{quote(user.password)}@{parts.netloc}"
    settings = Settings(data_dir=tmp_path, store_database="default")  # no file there: the URL's
    client = connect(good, settings)
    try:
        assert client.command("SELECT 1") == 1
    finally:
        client.close()
    bad = f"http://{user.name}:not-the-SECRET-pw@{parts.netloc}"
    done = subprocess.run([sys.executable, "-m", "streams.cli", "query", "SELECT 1",
                           "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "RAPPORT_STORE_URL": bad, "RAPPORT_STORE_DATABASE": "default"})
    assert done.returncode == 2
    assert "516" in done.stderr or "AUTHENTICATION_FAILED" in done.stderr, done.stderr
    assert "not-the-SECRET-pw" not in done.stderr + done.stdout


def test_wrong_credentials_over_clickhouse_connect_are_a_database_error(served: Served) -> None:
    with pytest.raises(DatabaseError, match="516"):
        clickhouse_connect.get_client(host="127.0.0.1", port=served.port, username="rapport",
                                      password="nope")


# --- 2. nothing reaches outside the store ------------------------------------------------------

def _post(served: Served, sql: str, user: User | None = None, target: str = "/") -> tuple[int, dict[str, str], bytes]:
    return raw(served, "POST", target, body=sql.encode(), headers=basic(user or served.users.pipeline))


OUTWARD = [
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT file('/etc/hostname')",
    "SELECT length(file('/etc/hostname')) AS n",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV')",
    "SELECT * FROM hdfs('hdfs://127.0.0.1:9/x', 'CSV')",
    "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "SELECT * FROM remoteSecure('127.0.0.1:9', system.one)",
    "SELECT * FROM cluster('default', system.one)",
    "SELECT * FROM mysql('127.0.0.1:9', 'db', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:9', 'db', 't', 'u', 'p')",
    "SELECT * FROM sqlite('/etc/x.db', 't')",
    "SELECT * FROM executable('cat /etc/hostname', 'LineAsString', 'x String')",
    "SELECT * FROM input('x String')",
    "SELECT * FROM python(x)",
    "SELECT * FROM FILE('/etc/hostname', 'LineAsString')",
    "SELECT * FROM (SELECT * FROM numbers(1)) AS a, file('/etc/hostname', 'LineAsString') AS b",
    "WITH (SELECT * FROM file('/etc/hostname', 'LineAsString')) AS h SELECT h",
    "INSERT INTO FUNCTION file('{dir}/pwn', 'LineAsString') SELECT 'x'",
    "SELECT 1 INTO OUTFILE '{dir}/out.txt'",
    "INSERT INTO default.sink FROM INFILE '/etc/hostname' FORMAT LineAsString",
    "CREATE TABLE default.f (a String) ENGINE = File(LineAsString, '/etc/hostname')",
    "CREATE TABLE default.u (a String) ENGINE = URL('http://127.0.0.1:9/', LineAsString)",
    "CREATE TABLE default.x (a String) ENGINE = Executable('cat', LineAsString)",
    "CREATE TABLE default.d (a String) ENGINE = Distributed('default', system, one)",
    "CREATE DATABASE fs ENGINE = Filesystem('/')",
    "CREATE DATABASE my ENGINE = MySQL('127.0.0.1:9', 'db', 'u', 'p')",
    "CREATE VIEW default.v AS SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "CREATE FUNCTION rd AS (p) -> file(p)",
    "CREATE DICTIONARY default.dd (a String) PRIMARY KEY a "
    "SOURCE(FILE(path '/etc/hostname' format 'LineAsString')) LAYOUT(FLAT()) LIFETIME(0)",
    "SYSTEM SHUTDOWN",
    "SYSTEM KILL",
    "SYSTEM FLUSH LOGS",
    "system shutdown",
    "BACKUP TABLE default.sink TO File('{dir}/b')",
    "ATTACH TABLE default.att FROM '{dir}' (a UInt8) ENGINE = MergeTree ORDER BY a",
    "SET dialect = 'prql'",
    "SELECT 1 SETTINGS dialect = 'kusto'",
    "SELECT 1 # comment\n; SYSTEM SHUTDOWN",
    "SELECT $$ ' $$; SYSTEM SHUTDOWN; --'",
]


@pytest.fixture(scope="module")
def sink(served: Served) -> str:
    status, _, body = _post(served, "CREATE TABLE IF NOT EXISTS default.sink (s String) ENGINE = MergeTree ORDER BY s")
    assert status == 200, body
    return "default.sink"


@pytest.mark.parametrize("sql", OUTWARD)
def test_statements_reaching_outside_are_refused_for_the_pipeline(served: Served, sink: str, sql: str,
                                                                   tmp_path: Path) -> None:
    status, answer, body = _post(served, sql.format(dir=tmp_path))
    code = answer.get("x-clickhouse-exception-code")
    # 497: the guard's refusal; 62: ClickHouse's parser saw two statements (never run)
    assert status in (400, 403) and code in ("497", "62"), (status, body)
    if code == "497":
        assert b"refused by the Rapport store" in body
    assert b"\n" not in body.rstrip(b"\n") or b"Multi-statements" in body
    assert list(tmp_path.iterdir()) == []
    hostname = Path("/etc/hostname").read_text().strip().encode()
    assert not hostname or hostname not in body
    assert _post(served, "SELECT 1")[::2] == (200, b"1\n"), "the store stopped serving"


def test_query_parameters_are_checked_with_their_values(served: Served) -> None:
    target = "/?" + urlencode({"param_t": "one", "param_x": "') FROM file('/etc/hostname"})
    status, _, body = _post(served, "SELECT {x:String} AS v FROM system.{t:Identifier} FORMAT TSVRaw", target=target)
    assert (status, body) == (200, b"') FROM file('/etc/hostname\n")


def test_the_pipelines_own_statements_still_run(served: Served, sink: str) -> None:
    for sql in ["CREATE TABLE IF NOT EXISTS default.own (a UInt32, s String) ENGINE = ReplacingMergeTree ORDER BY a",
                "INSERT INTO default.own VALUES (1, 'file(x)'), (2, 'INTO OUTFILE')",
                "SELECT count() FROM default.own FINAL",
                "SELECT s FROM default.own WHERE s LIKE '%file%' ORDER BY a",
                "SELECT * FROM numbers(3) FORMAT JSONEachRow",
                "OPTIMIZE TABLE default.own FINAL", "ALTER TABLE default.own DELETE WHERE a = 2",
                "SHOW TABLES FROM default", "DESCRIBE TABLE default.own", "EXISTS TABLE default.own",
                "SELECT name FROM system.tables WHERE database = 'default'",
                "SET max_threads = 1", "TRUNCATE TABLE default.own", "DROP TABLE default.own"]:
        status, _, body = _post(served, sql)
        assert status == 200, (sql, body)


def test_the_store_leads_its_own_process_group(tmp_path: Path) -> None:
    from streams.embedded.children import spawn, stop

    proc = spawn(["store", "--data-dir", str(tmp_path)], tmp_path / "store.log",
                 capture_first_line=True, own_session=True)
    try:
        first_line(proc, "the store", tmp_path / "store.log")
        assert os.getpgid(proc.pid) == proc.pid and os.getsid(proc.pid) == proc.pid
        assert os.getpgid(proc.pid) != os.getpgid(0)
    finally:
        stop(proc)


# --- 3. loopback unless asked twice --------------------------------------------------------------

@pytest.mark.parametrize("args,env", [
    (["--host", "0.0.0.0"], {}),
    (["--host", "0.0.0.0", "--allow-remote"], {}),
    (["--host", "0.0.0.0", "--allow-remote"], {"RAPPORT_STORE_PASSWORD": "p1"}),
])
def test_a_non_loopback_bind_needs_the_flag_and_set_passwords(tmp_path: Path, args: list[str],
                                                              env: dict[str, str]) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_STORE_")}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "store", "--data-dir", str(tmp_path), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60, env={**clean, **env})
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 2 and "error:" in lines[0] and "0.0.0.0" in done.stderr  # rich may wrap
    assert not (tmp_path / "store").exists(), "nothing may start"


def test_a_non_loopback_bind_with_both_passwords_serves(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_STORE_")}
    env = {**clean, "RAPPORT_STORE_PASSWORD": "pipeline-pw", "RAPPORT_STORE_READER_PASSWORD": "reader-pw"}
    log_path = tmp_path / "store.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "store", "--data-dir", str(tmp_path),
                                 "--host", "0.0.0.0", "--allow-remote"],
                                stdout=subprocess.PIPE, stderr=log, cwd=REPO, env=env)
    try:
        url = first_line(proc, "the store", log_path)
        assert url.startswith("http://0.0.0.0:")
        port = int(url.rsplit(":", 1)[1])
        served = Served(f"http://127.0.0.1:{port}", tmp_path, read_users(tmp_path))  # type: ignore[arg-type]
        assert served.users.pipeline.password == "pipeline-pw"
        assert _post(served, "SELECT 1")[::2] == (200, b"1\n")
    finally:
        stop_process(proc)
