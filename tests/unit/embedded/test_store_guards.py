"""The store's pure security pieces: logins, reader settings, the SQL guard's reading of
ClickHouse's parse, Content-Length, browser refusals (the real store: tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from streams.embedded.ch_errors import QueryError
from streams.embedded.credentials import (
    StoreUsers,
    User,
    client_login,
    load_or_create,
    read_users,
    strip_credentials,
    with_credentials,
)
from streams.embedded.http_codec import content_length
from streams.embedded.reader import ReaderCaps, reader_settings
from streams.embedded.sql_guard import check_canonical, function_names, outward_names, tsv_escaped
from streams.embedded.store_http import browser_refusal
from streams.settings import Settings

USERS = StoreUsers(User("rapport", "pw-1", "pipeline"), User("rapport_reader", "pw-2", "reader"))


def test_authenticate_needs_name_and_password_of_one_user() -> None:
    assert USERS.authenticate("rapport", "pw-1") is USERS.pipeline
    assert USERS.authenticate("rapport_reader", "pw-2") is USERS.reader
    for name, password in [("rapport", "pw-2"), ("rapport_reader", "pw-1"), ("default", ""), ("rapport", "")]:
        assert USERS.authenticate(name, password) is None
    assert "pw-1" not in repr(USERS)


def test_the_file_is_generated_0600_and_kept(tmp_path: Path) -> None:
    first = load_or_create(tmp_path, Settings(data_dir=tmp_path))
    assert (tmp_path / "store-credentials.json").stat().st_mode & 0o777 == 0o600
    assert load_or_create(tmp_path, Settings(data_dir=tmp_path)) == first
    chosen = load_or_create(tmp_path, Settings(data_dir=tmp_path, store_password=SecretStr("set")))
    assert chosen.pipeline.password == "set" and chosen.reader == first.reader
    assert read_users(tmp_path) == chosen


def test_client_login_order(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert client_login("http://h:1", settings) == ("rapport", "")  # nothing known anywhere
    users = load_or_create(tmp_path, settings)
    assert client_login("http://h:1", settings, "reader") == (users.reader.name, users.reader.password)
    assert client_login("http://h:1", settings) == (users.pipeline.name, users.pipeline.password)
    assert client_login("http://u:p%40ss@h:1", settings, "reader") == ("u", "p@ss")
    explicit = Settings(data_dir=tmp_path, store_reader_password=SecretStr("r"))
    assert client_login("http://h:1", explicit, "reader") == ("rapport_reader", "r")
    one_user = Settings(data_dir=tmp_path / "none", store_password=SecretStr("only"))
    assert client_login("http://h:1", one_user, "reader") == ("rapport", "only")


@given(st.text(min_size=1, max_size=20), st.text(max_size=20))
def test_credentials_in_a_url_round_trip_and_strip(user: str, password: str) -> None:
    url = with_credentials("http://127.0.0.1:8123", user, password)
    assert client_login(url, Settings()) == (user, password)
    assert strip_credentials(url) == "http://127.0.0.1:8123"


def test_reader_settings_allow_list_and_caps() -> None:
    caps = ReaderCaps(max_execution_s=60)
    got = dict(reader_settings({"max_execution_time": "65", "date_time_input_format": "best_effort",
                                "output_format_json_quote_64bit_integers": "1"}, caps))
    assert got["max_execution_time"] == "60" and got["readonly"] == "1"
    assert got["date_time_input_format"] == "best_effort"
    assert dict(reader_settings({"max_execution_time": "0"}, caps))["max_execution_time"] == "60"
    for bad in ({"readonly": "0"}, {"allow_ddl": "1"}, {"output_format_x": "1&readonly=0"}):
        with pytest.raises(QueryError) as info:
            reader_settings(bad, caps)
        assert info.value.code == 164


@given(st.dictionaries(st.sampled_from(["max_threads", "max_execution_time", "max_memory_usage",
                                         "max_result_rows", "output_format_a", "readonly"]),
                       st.text(alphabet="0123456789", max_size=12)))
def test_reader_settings_never_exceed_the_caps(requested: dict[str, str]) -> None:
    caps = ReaderCaps()
    try:
        got = dict(reader_settings(requested, caps))
    except QueryError:
        assert "readonly" in requested
        return
    assert got["readonly"] == "1"
    assert 0 < int(got["max_threads"]) <= caps.max_threads
    assert 0 < int(got["max_execution_time"]) <= caps.max_execution_s
    assert 0 < int(got["max_memory_usage"]) <= caps.max_memory_bytes


def test_function_names_read_every_function_line() -> None:
    ast = ("SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n"
           "    Function file (alias x) (children 1)\n  FunctionWithKeyValueArguments  http (children 1)\n"
           "    Identifier a\nFunction url\n")
    assert function_names(ast) == ["file", "http", "url"]


def test_called_names_include_settings_values() -> None:
    from streams.embedded.sql_guard import called_names

    canonical = ("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a "
                 "SETTINGS disk = disk(type = local, path = '/x(y)'), x = `file`('a')")
    assert called_names(canonical) == ["t", "disk", "file"]  # a table with columns looks called: harmless


def test_outward_names_are_everything_but_the_local_ones() -> None:
    names = outward_names(["numbers", "file", "newThing"], ["MergeTree", "Kafka"], ["Atomic", "MySQL"])
    assert {"file", "newthing", "kafka", "mysql", "url"} <= names
    assert not {"numbers", "mergetree", "atomic"} & names


@pytest.mark.parametrize("canonical", ["SYSTEM SHUTDOWN", "SELECT 1\nINTO OUTFILE '/tmp/x'",
                                       "INSERT INTO t FROM INFILE '/x' FORMAT CSV", "SET dialect = 'prql'",
                                       "CREATE DICTIONARY d (a UInt8) PRIMARY KEY a",
                                       "BACKUP TABLE t TO Disk('d', 'x')",
                                       "ATTACH TABLE t FROM '/x'"])
def test_canonical_refusals(canonical: str) -> None:
    with pytest.raises(QueryError) as info:
        check_canonical(canonical)
    assert info.value.code == 497


def test_canonical_text_in_strings_is_not_a_refusal() -> None:
    check_canonical("SELECT 'INTO OUTFILE', 'SYSTEM SHUTDOWN' AS `dialect_x`")


def test_tsv_escaping_round_trips_control_characters() -> None:
    assert tsv_escaped("a\\b\tc\nd") == "a\\\\b\\tc\\nd"
    assert json.loads(json.dumps(tsv_escaped("x")))


@pytest.mark.parametrize("value,ok", [("12", 12), (None, 0), ("0", 0), ("5, 5", 5)])
def test_content_length_accepts_digits(value: str | None, ok: int) -> None:
    assert content_length(value) == ok


@pytest.mark.parametrize("value", ["-1", "+1", "1.0", "abc", "", "5, 6", "1 2", "٣"])
def test_content_length_refuses_the_rest_400(value: str) -> None:
    with pytest.raises(QueryError) as info:
        content_length(value)
    assert info.value.http_status == 400


def test_browser_refusal() -> None:
    allowed = frozenset({"http://localhost:3000"})
    assert browser_refusal(None, None, allowed) is None
    assert browser_refusal(None, "none", allowed) is None
    assert browser_refusal("http://localhost:3000", "same-site", allowed) is None
    assert browser_refusal("http://localhost:3001", None, allowed)
    assert browser_refusal(None, "same-site", allowed)
    assert browser_refusal(None, "cross-site", allowed)
