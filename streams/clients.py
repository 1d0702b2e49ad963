"""The clients file: which brands (clients) and which of their accounts Rapport tracks.

Loaded and validated once at start. A bad file is refused with the file, the key (as a
path such as ``clients[0].accounts[1].platform``) or the line, and what is wrong, because
outside tools write this file and their authors need to know exactly what to fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from datetime import date, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streams.errors import ConfigError

Platform = Literal["bluesky", "mastodon", "x", "facebook", "instagram", "reddit"]
PLATFORMS: tuple[str, ...] = ("bluesky", "mastodon", "x", "facebook", "instagram", "reddit")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def parse_ranges(spec: str) -> tuple[tuple[time, time | None], ...]:
    """Parse ``"09:00-12:00,13:00-17:00"``; an end of ``24:00`` is returned as ``None``.

    Ranges never cross midnight and must be non-empty and ascending.
    """
    out: list[tuple[time, time | None]] = []
    last_end = -1
    for part in (p.strip() for p in spec.split(",")):
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"{part!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start_min, end_min = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end_min > 24 * 60:
            raise ValueError(f"{part!r} is not a valid time range")
        if end_min <= start_min:
            raise ValueError(f"{part!r} ends before it starts (ranges never cross midnight)")
        if start_min < last_end:
            raise ValueError(f"{part!r} overlaps or precedes the previous range")
        last_end = end_min
        end = None if end_min == 24 * 60 else time(h2, m2)
        out.append((time(h1, m1), end))
    return tuple(out)


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

    def weekly_hours(self) -> dict[int, tuple[tuple[time, time | None], ...]] | None:
        """Weekday number (Monday 0) to open ranges; ``None`` means always open."""
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
