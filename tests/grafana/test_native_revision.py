"""The store's rewrite of revision-0 Native blocks for a client's ``client_protocol_version``."""

from __future__ import annotations

import pytest

from streams.embedded.ch_errors import QueryError
from streams.embedded.http_codec import parse_params
from streams.embedded.native_revision import BLOCK_INFO, NativeRevision


def _str(text: str) -> bytes:
    data = text.encode()
    return bytes([len(data)]) + data


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "little")


# Two rows: x UInt8, s String, n Nullable(String), a Array(UInt64), lc LowCardinality(String)
COLUMNS = [
    (_str("x") + _str("UInt8"), b"\x01\x02"),
    (_str("s") + _str("String"), _str("ab") + _str("")),
    (_str("n") + _str("Nullable(String)"), b"\x00\x01" + _str("q") + _str("")),
    (_str("a") + _str("Array(UInt64)"), _u64(1) + _u64(3) + _u64(7) + _u64(8) + _u64(9)),
    (_str("lc") + _str("LowCardinality(String)"),  # key version, then one granule
     _u64(1) + _u64(1 << 9) + _u64(2) + _str("") + _str("z") + _u64(2) + b"\x01\x01"),
]
BLOCK0 = b"\x05\x02" + b"".join(head + body for head, body in COLUMNS)
BLOCK_NEW = BLOCK_INFO + b"\x05\x02" + b"".join(head + b"\x00" + body for head, body in COLUMNS)


def test_rewrite_adds_block_info_and_custom_serialization_flags() -> None:
    rewrite = NativeRevision(54460)
    assert rewrite.feed(BLOCK0 + BLOCK0) + rewrite.finish() == BLOCK_NEW + BLOCK_NEW


def test_rewrite_handles_any_split_of_the_stream() -> None:
    for size in (1, 3, 7, 64):
        rewrite = NativeRevision(54460)
        data = BLOCK0 * 3
        out = b"".join(rewrite.feed(data[i:i + size]) for i in range(0, len(data), size))
        assert out + rewrite.finish() == BLOCK_NEW * 3


def test_old_revisions_get_only_what_they_expect() -> None:
    rewrite = NativeRevision(54453)  # BlockInfo, no custom-serialization byte
    assert rewrite.feed(BLOCK0) == BLOCK_INFO + BLOCK0


def test_a_cut_stream_and_unknown_types_are_errors() -> None:
    rewrite = NativeRevision(54460)
    assert rewrite.feed(BLOCK0[:-1]) == b""
    with pytest.raises(QueryError):
        rewrite.finish()
    dynamic = b"\x01\x01" + _str("d") + _str("Dynamic") + b"\x00"
    with pytest.raises(QueryError) as info:
        NativeRevision(54460).feed(dynamic)
    assert info.value.code == 48


def test_client_protocol_version_is_a_transport_parameter() -> None:
    params = parse_params([("client_protocol_version", "54460"), ("max_execution_time", "65")])
    assert params.client_protocol_version == 54460 and params.settings == {"max_execution_time": "65"}
    assert parse_params([]).client_protocol_version == 0
