"""The store's two users and where every process finds their passwords.

A ClickHouse server knows its users from its configuration; the embedded store keeps its two
in ``<data dir>/store-credentials.json``, readable by its owner only (0600), so that any other
account on the machine, which can reach a loopback port just as well, has no way in:

* the *pipeline* user (``RAPPORT_STORE_USER``, default ``rapport``) reads and writes;
* the *reader* (``RAPPORT_STORE_READER_USER``, default ``rapport_reader``) is served on
  read-only chDB handles: boards, Grafana, ``rapport query`` (without ``--write``).

A password comes from ``RAPPORT_STORE_PASSWORD`` / ``RAPPORT_STORE_READER_PASSWORD`` when set,
else from the file, else it is generated (and the file written). Clients resolve theirs the
same way (:func:`client_login`), or from credentials inside ``RAPPORT_STORE_URL``, so workers,
``rapport query``, tests and Grafana provisioning all log in the way a user does.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from streams.errors import ConfigError
from streams.settings import Settings

CREDENTIALS_FILE = "store-credentials.json"
Role = Literal["pipeline", "reader"]


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str
    role: Role

    def __repr__(self) -> str:  # never a password in a log or a traceback
        return f"User(name={self.name!r}, role={self.role!r}, password=***)"


@dataclass(frozen=True, slots=True)
class StoreUsers:
    """The pipeline's user and the reader; ``authenticate`` compares in constant time."""

    pipeline: User
    reader: User

    def of(self, role: Role) -> User:
        return self.pipeline if role == "pipeline" else self.reader

    def authenticate(self, name: str, password: str) -> User | None:
        found = None
        for user in (self.pipeline, self.reader):
            # Both users are always compared, so the time taken says nothing about which failed.
            same_name = hmac.compare_digest(name.encode(), user.name.encode())
            same_password = hmac.compare_digest(password.encode(), user.password.encode())
            if same_name and same_password:
                found = user
        return found


def credentials_path(data_dir: Path) -> Path:
    return Path(data_dir) / CREDENTIALS_FILE


def read_users(data_dir: Path) -> StoreUsers | None:
    """The users a data dir's store serves, or ``None`` when the file is absent or unreadable."""
    try:
        raw = json.loads(credentials_path(data_dir).read_text(encoding="utf-8"))
        return StoreUsers(*(User(str(raw[role]["user"]), str(raw[role]["password"]), role)
                            for role in ("pipeline", "reader")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_users(data_dir: Path, users: StoreUsers) -> Path:
    """Write the file 0600 from the start (never briefly world-readable), then rename it."""
    path = credentials_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    data = {role: {"user": user.name, "password": user.password}
            for role, user in (("pipeline", users.pipeline), ("reader", users.reader))}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def explicit_password(settings: Settings, role: Role) -> str:
    secret = settings.store_password if role == "pipeline" else settings.store_reader_password
    return secret.get_secret_value()


def user_name(settings: Settings, role: Role) -> str:
    return settings.store_user if role == "pipeline" else settings.store_reader_user


def load_or_create(data_dir: Path, settings: Settings) -> StoreUsers:
    """The users the store of ``data_dir`` serves: set passwords, else the file's, else new."""
    known = read_users(data_dir)
    users = []
    for role in ("pipeline", "reader"):
        role_t: Role = "pipeline" if role == "pipeline" else "reader"
        password = explicit_password(settings, role_t)
        if not password and known is not None:
            password = known.of(role_t).password
        users.append(User(user_name(settings, role_t), password or secrets.token_urlsafe(24), role_t))
    result = StoreUsers(users[0], users[1])
    if result.pipeline.name == result.reader.name:
        raise ConfigError("RAPPORT_STORE_USER and RAPPORT_STORE_READER_USER must differ")
    if result != known:
        write_users(data_dir, result)
    return result


def client_login(url: str, settings: Settings, role: Role = "pipeline") -> tuple[str, str]:
    """(user, password) a client sends: credentials in the URL win, then the role's set
    password, then the data dir's file; a reader falls back to the pipeline's credentials
    only where no reader is known at all (a ClickHouse server with one user)."""
    parts = urlsplit(url)
    if parts.username is not None:
        return unquote(parts.username), unquote(parts.password or "")
    if explicit_password(settings, role):
        return user_name(settings, role), explicit_password(settings, role)
    users = read_users(settings.data_dir)
    if users is not None:
        user = users.of(role)
        return user.name, user.password
    if role == "reader" and explicit_password(settings, "pipeline"):
        return user_name(settings, "pipeline"), explicit_password(settings, "pipeline")
    return user_name(settings, role), ""


def strip_credentials(url: str) -> str:
    """``url`` without its user and password (for connecting and for messages)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` carrying ``user:password`` (URL-quoted), as a user sets RAPPORT_STORE_URL."""
    from urllib.parse import quote

    parts = urlsplit(strip_credentials(url))
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
