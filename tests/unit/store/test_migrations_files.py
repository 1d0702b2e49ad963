from pathlib import Path

import pytest

from streams.errors import MigrationError
from streams.store.migrations import load_migrations


def test_numbers_unique_and_contiguous() -> None:
    numbers = [m.number for m in load_migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


def test_bad_name_refused(tmp_path: Path) -> None:
    (tmp_path / "1_x.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        load_migrations(tmp_path)


def test_duplicate_number_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match="used twice"):
        load_migrations(tmp_path)


def test_statements_split_and_comments_dropped() -> None:
    mig = load_migrations()[2]
    stmts = mig.statements()
    assert len(stmts) == 2 and all(not s.startswith("--") for s in stmts)
