from pathlib import Path

import pytest

from streams.clients import load_clients, parse_clients, parse_ranges
from streams.errors import ConfigError

GOOD = """
[[clients]]
id = "acme"
name = "Acme Coffee"
timezone = "America/New_York"
sla_minutes = 60
holidays = ["2026-12-25"]
[clients.hours]
mon = "09:00-17:00"
fri = "09:00-12:00,13:00-24:00"
[[clients.accounts]]
platform = "reddit"
account_id = "acme_official"
handle = "acme_official"
listen = ["r/acme"]
"""


def test_example_file_loads() -> None:
    clients = load_clients(Path(__file__).resolve().parents[2] / "clients.example.toml")
    assert {c.id for c in clients.clients} == {"acme", "globex", "initech"}


def test_good_file_parses_hours_and_holidays() -> None:
    clients = parse_clients(GOOD)
    acme = clients.client("acme")
    hours = acme.weekly_hours()
    assert hours is not None
    assert hours[0] == ((9 * 60, 17 * 60),)
    assert hours[4] == ((9 * 60, 12 * 60), (13 * 60, 24 * 60))
    assert 1 not in hours  # a missing day is closed
    assert str(acme.holidays[0]) == "2026-12-25"


def test_no_hours_means_always_open() -> None:
    text = GOOD.split("[clients.hours]")[0] + GOOD.split('fri = "09:00-12:00,13:00-24:00"\n')[1]
    assert parse_clients(text).client("acme").weekly_hours() is None


@pytest.mark.parametrize(
    ("mutation", "needle"),
    [
        (('platform = "reddit"', 'platform = "myspace"'), "clients[0].accounts[0].platform"),
        (('timezone = "America/New_York"', 'timezone = "Mars/Olympus"'), "unknown time zone"),
        (('mon = "09:00-17:00"', 'mon = "17:00-9:00"'), "is not HH:MM-HH:MM"),
        (('mon = "09:00-17:00"', 'mon = "17:00-24:01"'), "is not a valid time range"),
        (('mon = "09:00-17:00"', 'funday = "09:00-17:00"'), "unknown weekday"),
        (('sla_minutes = 60', 'sla_minutes = 0'), "clients[0].sla_minutes"),
        (('sla_minutes = 60', 'sla_minutes = 60\ncolour = "red"'), "colour"),
        (('id = "acme"', 'id = "acme corp"'), "clients[0].id"),
    ],
)
def test_bad_files_name_the_key_and_fault(mutation: tuple[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_clients(GOOD.replace(*mutation), "clients.toml")
    assert "clients.toml" in str(info.value)
    assert needle in str(info.value)


def test_toml_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"clients.toml: not valid TOML: .*line 3"):
        parse_clients('[[clients]]\nid = "a"\nname = \n', "clients.toml")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the clients file"):
        load_clients(tmp_path / "nope.toml")


def test_duplicate_client_ids_refused() -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        parse_clients(GOOD + GOOD)


def test_parse_ranges_merges_overlaps_and_runs_past_midnight() -> None:
    assert parse_ranges("13:00-17:00,09:00-12:00,11:00-13:00") == ((540, 1020),)
    assert parse_ranges("22:00-06:00") == ((1320, 1800),)  # Friday 22:00 to Saturday 06:00
    assert parse_ranges("08:00-08:00") == ((480, 1920),)  # start = end: 24 hours
    assert parse_ranges("00:00-24:00") == ((0, 1440),)
    assert parse_ranges("09:00-17:00,22:00-24:00") == ((540, 1020), (1320, 1440))
    for bad in ("24:00-02:00", "09:00-24:30", "9:00-10:00", "09:60-10:00"):
        with pytest.raises(ValueError):
            parse_ranges(bad)
