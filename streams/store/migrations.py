"""Numbered ClickHouse migrations from ``schemas/migrations/NNNN_name.sql``.

Applied in order, recorded with a checksum in ``schema_migrations``; running again is a
no-op. A merged migration is never edited: a changed checksum is refused, change comes as
a new file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable

from clickhouse_connect.driver.client import Client

from streams.errors import MigrationError
from streams.resources import migrations_dir
from streams.settings import Settings
from streams.store.client import connect

MIGRATIONS_DIR: Traversable = migrations_dir()  # the checkout's schemas/ or the wheel's copy
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_LEDGER_SQL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    number UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY number
"""


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The file's statements (split on ``;`` at a line end, comments dropped)."""
        body = "\n".join(line for line in self.sql.splitlines() if not line.strip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def load_migrations(directory: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    """All migrations, ordered; numbers must be unique and names well-formed."""
    found: dict[int, Migration] = {}
    for path in sorted((p for p in directory.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        number = int(m.group(1))
        if number in found:
            raise MigrationError(f"{path}: migration number {number} is used twice")
        found[number] = Migration(number, m.group(2), path.read_text(encoding="utf-8"))
    return [found[n] for n in sorted(found)]


def migrate(url: str, settings: Settings, database: str | None = None,
            directory: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    """Apply what the database lacks (creating it first); return the migrations applied now."""
    database = database or settings.store_database
    if not re.fullmatch(r"[A-Za-z0-9_]+", database):
        raise MigrationError(f"database name {database!r} must be letters, digits and _")
    admin = connect(url, settings, database=None)
    try:
        admin.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    finally:
        admin.close()
    client = connect(url, settings, database=database)
    try:
        return _apply(client, directory)
    finally:
        client.close()


def _apply(client: Client, directory: Traversable) -> list[Migration]:
    client.command(_LEDGER_SQL)
    rows = client.query(
        "SELECT number, argMax(checksum, applied_at) FROM schema_migrations GROUP BY number"
    ).result_rows
    applied = {int(n): str(c) for n, c in rows}
    done: list[Migration] = []
    for mig in load_migrations(directory):
        if mig.number in applied:
            if applied[mig.number] != mig.checksum:
                raise MigrationError(
                    f"migration {mig.number:04d}_{mig.name} was edited after it was applied; "
                    "never edit a merged migration, add a new one"
                )
            continue
        for stmt in mig.statements():
            try:
                client.command(stmt)
            except Exception as exc:  # noqa: BLE001
                raise MigrationError(f"migration {mig.number:04d}_{mig.name} failed: {exc}") from exc
        client.insert("schema_migrations", [[mig.number, mig.name, mig.checksum]],
                      column_names=["number", "name", "checksum"])
        done.append(mig)
    return done
