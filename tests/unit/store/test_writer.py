from datetime import UTC, datetime

from streams.store.writer import MONTHS_PER_INSERT, TableWriter, month_of


def _ms(year: int, month: int, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)


def _writer(batch: int) -> TableWriter:
    return TableWriter(None, "t", ["id", "at"], ["at"], "at", batch)  # type: ignore[arg-type]


def test_month_of() -> None:
    assert month_of(_ms(2026, 11, 30) + 86_399_999) == 202611
    assert month_of(_ms(2026, 12, 1)) == 202612


def test_chunks_never_exceed_month_or_row_limits() -> None:
    rows = [[i, _ms(2010 + (i % 200) // 12, (i % 200) % 12 + 1)] for i in range(1000)]
    chunks = _writer(300).chunks(rows)
    assert sum(len(c) for c in chunks) == 1000
    assert sorted(r[0] for c in chunks for r in c) == list(range(1000))
    for chunk in chunks:
        assert len(chunk) <= 300
        assert len({month_of(r[1]) for r in chunk}) <= MONTHS_PER_INSERT


def test_encode_turns_ms_into_exact_seconds() -> None:
    body = _writer(10).encode([[1, 1795608060123], [2, 1795608060000], [3, None]])
    assert body == b'[1,1795608060.123]\n[2,1795608060]\n[3,null]\n'
