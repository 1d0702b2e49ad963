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
    "CREATE TABLE default.dk (a UInt8) ENGINE = MergeTree ORDER BY a "
    "SETTINGS disk = disk(type = local, path = '{dir}/disk/')",
    "SELECT 1 FORMAT Template SETTINGS format_template_row = '/etc/hostname'",
    "SELECT 1 SETTINGS output_format_schema = '{dir}/schema.capnp'",
    "SET format_schema = '/etc/hostname:M'",
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
    assert (status, code) in ((403, "497"), (400, "62")), (status, body)
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


def test_an_identifier_parameter_cannot_smuggle_a_table_function(served: Served) -> None:
    target = "/?" + urlencode({"param_t": "file('/etc/hostname', 'LineAsString')"})
    status, _, body = _post(served, "SELECT * FROM {t:Identifier}", target=target)
    assert status != 200
    assert Path("/etc/hostname").read_text().strip().encode() not in body


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


# --- 4. two roles -----------------------------------------------------------------------------

def _reader_post(served: Served, sql: str, target: str = "/") -> tuple[int, dict[str, str], bytes]:
    return _post(served, sql, served.users.reader, target)


@pytest.mark.parametrize("sql", [
    "INSERT INTO default.sink VALUES ('r')",
    "CREATE TABLE default.r (a UInt8) ENGINE = Memory",
    "DROP TABLE default.sink",
    "TRUNCATE TABLE default.sink",
    "SET max_threads = 1",
    "SELECT 1 SETTINGS readonly = 0",
])
def test_the_reader_cannot_write_or_change_settings(served: Served, sink: str, sql: str) -> None:
    status, answer, body = _reader_post(served, sql)
    assert (status, answer["x-clickhouse-exception-code"]) == (403, "164"), body
    assert _post(served, "SELECT count() FROM default.sink WHERE s = 'r'")[2] == b"0\n"


def test_file_settings_are_refused_as_url_parameters(served: Served, tmp_path: Path) -> None:
    for setting in (f"output_format_schema={tmp_path}/s.capnp", "format_template_row=/etc/hostname",
                    "dialect=prql"):
        status, answer, _ = _post(served, "SELECT 1", target="/?" + setting)
        assert (status, answer["x-clickhouse-exception-code"]) == (403, "497")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting", ["readonly=0", "allow_ddl=1", "max_threads_x=1", "send_logs_level=trace",
                                     "format_template_row=/etc/hostname", "output_format_schema=/tmp/x",
                                     "output_format_json_quote_64bit_integers=1%26readonly%3D0"])
def test_a_reader_setting_off_the_allow_list_is_refused_164(served: Served, setting: str) -> None:
    status, answer, body = _reader_post(served, "SELECT 1", target="/?" + setting)
    assert (status, answer["x-clickhouse-exception-code"]) == (403, "164"), body


def test_reader_settings_are_capped_and_applied(served: Served) -> None:
    target = "/?" + urlencode({"max_execution_time": "9999", "max_threads": "64",
                               "output_format_json_quote_64bit_integers": "1"})
    status, _, body = _reader_post(
        served, "SELECT getSetting('readonly'), getSetting('max_execution_time'), getSetting('max_threads'), "
        "getSetting('output_format_json_quote_64bit_integers'), getSetting('max_memory_usage') > 0", target)
    assert (status, body) == (200, b"1\t120\t2\ttrue\t1\n")
    status, _, body = _reader_post(served, "SELECT getSetting('max_execution_time')", "/?max_execution_time=7")
    assert (status, body) == (200, b"7\n")


def test_the_reader_gets_outward_refusals_too(served: Served, tmp_path: Path) -> None:
    for sql in ("SELECT file('/etc/hostname')", f"SELECT 1 INTO OUTFILE '{tmp_path}/o'",
                "SELECT * FROM file('/etc/hostname', 'LineAsString')"):
        status, answer, _ = _reader_post(served, sql)
        assert status == 403 and answer["x-clickhouse-exception-code"] in ("497", "164")
    assert list(tmp_path.iterdir()) == []


def test_clickhouse_connect_and_grafana_work_as_the_reader(served: Served, sink: str) -> None:
    from tests.support.grafana_client import GrafanaClickHouse

    reader = served.users.reader
    client = clickhouse_connect.get_client(host="127.0.0.1", port=served.port, username=reader.name,
                                           password=reader.password)
    try:
        assert client.query("SELECT number FROM numbers(3)").result_rows == [(0,), (1,), (2,)]
        assert len(client.query_df("SELECT 1 AS a")) == 1
        with pytest.raises(DatabaseError, match="164"):
            client.command("CREATE TABLE default.nope (a UInt8) ENGINE = Memory")
    finally:
        client.close()
    grafana = GrafanaClickHouse(served.url, "default", reader.name, reader.password)
    grafana.connect()
    assert grafana.query("SELECT count() AS n FROM numbers(10)").rows == [(10,)]


def test_rapport_query_reads_by_default_and_writes_with_write(served: Served) -> None:
    env = {**os.environ, "RAPPORT_STORE_URL": served.url, "RAPPORT_STORE_DATABASE": "default"}
    env = {k: v for k, v in env.items() if k not in ("RAPPORT_STORE_PASSWORD", "RAPPORT_STORE_READER_PASSWORD")}
    sql = "CREATE TABLE IF NOT EXISTS default.by_query (a UInt8) ENGINE = Memory"
    base = [sys.executable, "-m", "streams.cli", "query", sql, "--data-dir", str(served.data_dir)]
    refused = subprocess.run(base, capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert refused.returncode == 2 and "164" in refused.stderr, refused.stderr
    allowed = subprocess.run([*base, "--write"], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert allowed.returncode == 0, allowed.stderr


def test_readers_cannot_take_the_pipelines_reserved_slots(tmp_path: Path) -> None:
    import threading

    from streams.embedded.store import StoreServer

    with StoreServer(tmp_path / "d", workers=2, reserved_for_pipeline=1) as server:
        port = int(server.url.rsplit(":", 1)[1])
        served = Served(f"http://127.0.0.1:{port}", tmp_path, server.users)
        order: list[str] = []

        def slow_reader() -> None:
            _reader_post(served, "SELECT sleepEachRow(1) FROM numbers(2) FORMAT Null")
            order.append("reader")

        busy = threading.Thread(target=slow_reader)
        busy.start()
        try:
            import time

            time.sleep(0.5)  # the reader holds the only reader slot
            assert server.engine.reader_workers == 1
            assert _post(served, "SELECT 1")[::2] == (200, b"1\n")
            order.append("pipeline")
        finally:
            busy.join()
        assert order == ["pipeline", "reader"]


def test_the_reader_has_time_and_result_caps(tmp_path: Path) -> None:
    from streams.embedded.reader import ReaderCaps
    from streams.embedded.store import StoreServer

    caps = ReaderCaps(max_execution_s=1, max_result_bytes=1 << 20)
    with StoreServer(tmp_path / "d", reader_caps=caps) as server:
        served = Served(server.url, tmp_path, server.users)
        status, answer, _ = _reader_post(served, "SELECT sleepEachRow(0.5) FROM numbers(10) FORMAT Null")
        # TIMEOUT_EXCEEDED, or TOO_SLOW when the engine foresees it
        assert answer.get("x-clickhouse-exception-code") in ("159", "160"), status
        status, answer, _ = _reader_post(served, "SELECT repeat('x', 1000) FROM numbers(100000)")
        assert answer.get("x-clickhouse-exception-code") == "396", status  # TOO_MANY_ROWS_OR_BYTES
        assert _post(served, "SELECT count() FROM numbers(100000)")[::2] == (200, b"100000\n")


# --- 7. browser-borne requests ------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"Origin": "http://127.0.0.1:9999"},
    {"Origin": "null"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
    {"Sec-Fetch-Site": "same-origin"},
])
def test_requests_from_web_pages_are_refused_before_any_sql(served: Served, sink: str, headers: dict[str, str]) -> None:
    sql = "INSERT INTO default.sink VALUES ('from-a-page')"
    status, answer, body = raw(served, "POST", "/", body=sql.encode(), headers={**basic(served.users.pipeline),
                                                                                 **headers})
    assert (status, answer["x-clickhouse-exception-code"]) == (403, "497"), body
    assert b"web" in body
    assert _post(served, "SELECT count() FROM default.sink WHERE s = 'from-a-page'")[2] == b"0\n"


def test_a_typed_url_and_an_allowed_origin_are_served(tmp_path: Path) -> None:
    from streams.embedded.store import StoreServer

    with StoreServer(tmp_path / "d", allowed_origins=["http://localhost:3000"]) as server:
        served = Served(server.url, tmp_path, server.users)
        login = basic(server.users.pipeline)
        for extra in ({"Sec-Fetch-Site": "none"},
                      {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}):
            status, _, body = raw(served, "POST", "/", body=b"SELECT 1", headers={**login, **extra})
            assert (status, body) == (200, b"1\n")
        status, _, _ = raw(served, "POST", "/", body=b"SELECT 1", headers={
            **basic(server.users.pipeline), "Origin": "http://localhost:3001"})
        assert status == 403


def test_grafana_provision_writes_the_readers_credentials_0600(served: Served, tmp_path: Path) -> None:
    import yaml

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_STORE_")}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "grafana", "provision", "--out", str(tmp_path),
                           "--data-dir", str(served.data_dir)], capture_output=True, text=True, cwd=REPO,
                          timeout=120, env={**env, "RAPPORT_STORE_URL": served.url})
    assert done.returncode == 0, done.stderr
    path = tmp_path / "provisioning" / "datasources" / "rapport.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    source = yaml.safe_load(path.read_text())["datasources"][0]
    assert source["jsonData"]["username"] == served.users.reader.name
    assert source["secureJsonData"]["password"] == served.users.reader.password
    assert served.users.reader.password not in done.stderr + done.stdout
