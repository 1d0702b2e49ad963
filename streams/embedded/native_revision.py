"""Native answers for a client's protocol revision: chDB's revision-0 stream rewritten.

Kept apart from :mod:`streams.embedded.http_codec` (the HTTP exchange's bytes): this one
reads ClickHouse's Native format itself, column by column, by type.
"""

from __future__ import annotations

import re

from streams.embedded.ch_errors import NOT_IMPLEMENTED, STD_EXCEPTION, QueryError

# ClickHouse writes a Native answer over HTTP for the revision the client names in
# ``client_protocol_version`` (clickhouse-go >= 2.42, hence Grafana's ClickHouse datasource >= 4.12,
# sends 54460 and decodes accordingly); without it, for revision 0. chDB only writes revision 0.
# The two differ in two places (ClickHouse NativeWriter): revision > 0 opens every block with its
# BlockInfo, and revision >= 54454 writes after each column's type whether it has a custom
# serialization (never here: chDB materializes sparse columns). Column data is the same for every
# revision for the types a SELECT returns (not AggregateFunction, Dynamic, Variant, JSON). Adding
# the byte needs the column boundaries, so the rewriter walks each column's data by its type.
REVISION_WITH_BLOCK_INFO = 1
REVISION_WITH_CUSTOM_SERIALIZATION = 54454
# BlockInfo as ClickHouse writes it: field 1 is_overflows=false, field 2 bucket_num=-1, end 0.
BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"
# A rewritten answer is produced with type names as text (the rewriter reads them).
NATIVE_REWRITE_SETTINGS = {"output_format_native_encode_types_in_binary_format": "0"}

_FIXED_WIDTH = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Enum8", "Nothing"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Enum16", "Date", "BFloat16"), 2),
    **dict.fromkeys(("UInt32", "Int32", "Float32", "Date32", "DateTime", "IPv4", "Decimal32", "Time"), 4),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Decimal64", "Time64"), 8),
    **dict.fromkeys(("UInt128", "Int128", "UUID", "IPv6", "Decimal128"), 16),
    **dict.fromkeys(("UInt256", "Int256", "Decimal256"), 32),
}
_TYPE_HEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_ELEMENT_NAME = re.compile(r"(?:`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z0-9_]*)\s+(?=\S)")


class _Short(Exception):
    """The bytes held end inside a block: wait for more."""


def _type_args(text: str) -> tuple[str, list[str]]:
    """``Name(arg, arg)`` -> ``("Name", ["arg", "arg"])``; quotes and nesting respected."""
    match = _TYPE_HEAD.match(text)
    if match is None:
        raise ValueError(f"cannot read type {text!r}")
    name, rest = match.group(1), text[match.end():].strip()
    if not rest:
        return name, []
    if not (rest.startswith("(") and rest.endswith(")")):
        raise ValueError(f"cannot read type {text!r}")
    args: list[str] = []
    depth, quote, start = 0, "", 1
    body = rest
    for i, ch in enumerate(body[1:-1], start=1):
        if quote:
            if ch == quote and body[i - 1] != "\\":
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(body[start:i].strip())
            start = i + 1
    args.append(body[start:-1].strip())
    return name, args


def _tuple_element(arg: str) -> str:
    """A Tuple element's type, without its name (``a String`` -> ``String``): a type name is
    never followed by blanks, an element name always is."""
    match = _ELEMENT_NAME.match(arg)
    return arg[match.end():] if match else arg


class _Walker:
    """Finds where a column's data ends, by its type (ClickHouse's bulk serializations)."""

    def __init__(self, data: bytes | bytearray | memoryview, pos: int) -> None:
        self.data = data
        self.pos = pos

    def need(self, size: int) -> None:
        if self.pos + size > len(self.data):
            raise _Short
        self.pos += size

    def varint(self) -> int:
        shift = value = 0
        while True:
            if self.pos >= len(self.data):
                raise _Short
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def string(self) -> bytes:
        size = self.varint()
        start = self.pos
        self.need(size)
        return bytes(self.data[start:self.pos])

    def skip(self, type_name: str, rows: int) -> None:
        name, args = _type_args(type_name)
        width = _FIXED_WIDTH.get(name)
        if width is not None:
            self.need(width * rows)
        elif name == "Decimal":
            precision = int(args[0])
            self.need(rows * (4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32))
        elif name == "String":
            for _ in range(rows):
                self.need(self.varint())
        elif name == "FixedString":
            self.need(int(args[0]) * rows)
        elif name.startswith("Interval"):
            self.need(8 * rows)
        elif name == "Nullable":
            self.need(rows)
            self.skip(args[0], rows)
        elif name in ("Array", "Map"):
            if rows == 0:
                return
            self.need(8 * rows)
            total = int.from_bytes(self.data[self.pos - 8:self.pos], "little")
            inner = args[0] if name == "Array" else f"Tuple({args[0]}, {args[1]})"
            self.skip(inner, total)
        elif name == "Tuple":
            for arg in args:
                self.skip(_tuple_element(arg), rows)
        elif name == "LowCardinality":
            self._low_cardinality(args[0], rows)
        elif name == "SimpleAggregateFunction":
            self.skip(args[-1], rows)
        elif name in ("Point",):
            self.need(16 * rows)
        else:
            raise QueryError.make(
                NOT_IMPLEMENTED, "NOT_IMPLEMENTED",
                f"the embedded store cannot write type {type_name} in Native for a client "
                "protocol revision; cast the column (e.g. toString) or omit client_protocol_version")


    def skip_prefix(self, type_name: str) -> None:
        """The state prefix a column's data opens with: one UInt64 key version per
        LowCardinality inside it, in the order of the nesting."""
        name, args = _type_args(type_name)
        if name == "LowCardinality":
            self.need(8)
        elif name in ("Array", "Nullable"):
            self.skip_prefix(args[0])
        elif name == "Map":
            self.skip_prefix(args[0])
            self.skip_prefix(args[1])
        elif name == "Tuple":
            for arg in args:
                self.skip_prefix(_tuple_element(arg))

    def _low_cardinality(self, inner: str, rows: int) -> None:
        # Native writes LowCardinality with no shared dictionary: per granule a UInt64 index type
        # (low 8 bits: index width 1/2/4/8 bytes; bit 9: additional keys follow), the keys
        # (the inner type without Nullable), a UInt64 row count and the indexes.
        name, args = _type_args(inner)
        keys_type = args[0] if name == "Nullable" else inner
        done = 0
        while done < rows:
            self.need(8)
            index_type = int.from_bytes(self.data[self.pos - 8:self.pos], "little")
            if index_type & (1 << 9):
                self.need(8)
                self.skip(keys_type, int.from_bytes(self.data[self.pos - 8:self.pos], "little"))
            self.need(8)
            count = int.from_bytes(self.data[self.pos - 8:self.pos], "little")
            self.need(count * (1 << (index_type & 0xFF)))
            done += count
            if count == 0:
                raise ValueError("LowCardinality granule without rows")


class NativeRevision:
    """Rewrites a revision-0 Native stream (chDB's) block by block for ``revision``.

    ``feed()`` returns the rewritten complete blocks among the bytes given so far, ``finish()``
    checks nothing was left half-way.
    """

    def __init__(self, revision: int) -> None:
        self.revision = revision
        self._held = bytearray()

    def feed(self, data: bytes | memoryview) -> bytes:
        self._held += data
        out = bytearray()
        pos = 0
        while pos < len(self._held):
            try:
                pos = self._block(self._held, pos, out)
            except _Short:
                break
        del self._held[:pos]
        return bytes(out)

    def finish(self) -> bytes:
        if self._held:
            raise QueryError.make(STD_EXCEPTION, "STD_EXCEPTION",
                                  f"Native answer ends inside a block ({len(self._held)} bytes left)")
        return b""

    def _block(self, data: bytearray, pos: int, out: bytearray) -> int:
        walker = _Walker(data, pos)
        columns = walker.varint()
        rows = walker.varint()
        pieces: list[bytes] = [BLOCK_INFO] if self.revision >= REVISION_WITH_BLOCK_INFO else []
        pieces.append(bytes(data[pos:walker.pos]))
        for _ in range(columns):
            head = walker.pos
            walker.string()  # name
            type_name = walker.string().decode()
            pieces.append(bytes(data[head:walker.pos]))
            if self.revision >= REVISION_WITH_CUSTOM_SERIALIZATION:
                pieces.append(b"\x00")
            body = walker.pos
            if rows:
                walker.skip_prefix(type_name)
                walker.skip(type_name, rows)
            pieces.append(bytes(data[body:walker.pos]))
        out += b"".join(pieces)
        return walker.pos
