"""The clients file: which brands (clients) and which of their accounts Rapport tracks.

Loaded and validated once at start. A bad file is refused with the file, the key (as a
path such as ``clients[0].accounts[1].platform``) or the line, and what is wrong, because
outside tools write this file and their authors need to know exactly what to fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streams.errors import ConfigError

Platform = Literal["bluesky", "mastodon", "x", "facebook", "instagram", "reddit"]
PLATFORMS: tuple[str, ...] = ("bluesky", "mastodon", "x", "facebook", "instagram", "reddit")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


DAY_MINUTES = 24 * 60


def parse_ranges(spec: str) -> tuple[tuple[int, int], ...]:
    """Parse ``"09:00-12:00,22:00-06:00"`` into ``(start_minute, end_minute)`` ranges.

    The meaning is shared/README.md's: ``24:00`` is allowed as an end; a range whose end is
    at or before its start runs past midnight and belongs to the day it starts (its end
    minute is then past 1440: ``22:00-06:00`` is ``(1320, 1800)``); start equal to end is 24
    hours (``08:00-08:00`` is ``(480, 1920)``). Ranges may come in any order and overlap:
    :func:`merge_ranges` merges them. Every end is after its start, by at most 24 hours.
    """
    out: list[tuple[int, int]] = []
    for part in (p.strip() for p in spec.split(",")):
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"{part!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start_min, end_min = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end_min > DAY_MINUTES:
            raise ValueError(f"{part!r} is not a valid time range")
        if end_min <= start_min:
            end_min += DAY_MINUTES  # past midnight (start = end: 24 hours)
        out.append((start_min, end_min))
    return merge_ranges(out)


def merge_ranges(ranges: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """Sorted, with overlapping or touching ranges merged into one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


class TrackedAccount(BaseModel):
    """One of a client's own accounts on one platform."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: Platform
    account_id: str = Field(min_length=1)
    handle: str = ""
    listen: tuple[str, ...] = ()


class Client(BaseModel):
    """An agency's customer (a brand) with its SLA clock and tracked accounts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = ""
    timezone: str = "UTC"
    sla_minutes: int = Field(60, gt=0)
    holidays: tuple[date, ...] = ()
    holiday_country: str | None = None
    hours: dict[str, str] | None = None
    accounts: tuple[TrackedAccount, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        for day, spec in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} (use {', '.join(WEEKDAYS)})")
            try:
                parse_ranges(spec)
            except ValueError as exc:
                raise ValueError(f"{day}: {exc}") from exc
        return value

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import holidays

        if value.upper() not in holidays.list_supported_countries():
            raise ValueError(f"holiday_country {value!r} is not known to the holidays package")
        return value.upper()

    def weekly_hours(self) -> dict[int, tuple[tuple[int, int], ...]] | None:
        """Weekday number (Monday 0) to the open ranges that start that day, in minutes after
        its midnight (an end past 1440 runs into the next day); ``None`` means always open."""
        if self.hours is None:
            return None
        return {WEEKDAYS.index(day): parse_ranges(spec) for day, spec in self.hours.items()}


class ClientsFile(BaseModel):
    """The whole clients file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clients: tuple[Client, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ClientsFile:
        seen: set[str] = set()
        accounts: dict[tuple[str, str], str] = {}
        for client in self.clients:
            if client.id in seen:
                raise ValueError(f"client id {client.id!r} appears twice")
            seen.add(client.id)
            for acc in client.accounts:
                key = (acc.platform, acc.account_id)
                if key in accounts and accounts[key] == client.id:
                    raise ValueError(
                        f"account {acc.platform}:{acc.account_id} appears twice in client {client.id!r}"
                    )
                accounts[key] = client.id
        return self

    def client(self, client_id: str) -> Client:
        for client in self.clients:
            if client.id == client_id:
                return client
        raise KeyError(client_id)

    def accounts(self) -> Iterator[tuple[Client, TrackedAccount]]:
        for client in self.clients:
            for acc in client.accounts:
                yield client, acc

    def platforms(self) -> set[str]:
        return {acc.platform for _, acc in self.accounts()}


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_clients(text: str, source: str = "<clients>") -> ClientsFile:
    """Parse and validate clients TOML; raise :class:`ConfigError` naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return ClientsFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_loc(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{source}: {problems}") from exc


def load_clients(path: Path) -> ClientsFile:
    """Read and validate the clients file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the clients file: {exc.strerror}") from exc
    return parse_clients(text, str(path))
