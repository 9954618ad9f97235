"""Just enough of PostgreSQL's ``pgoutput`` protocol (version 1) to learn which keys changed.

The change data capture path re-reads changed rows from the table itself (docs/products.md, "Change
data capture"), so from each change it needs only the table and the key: the key columns' values as
PostgreSQL's text form, which the re-read casts back to the column's type. Column values other than
the key are never decoded, so an unchanged out-of-line (TOAST) value, sent as the ``u`` marker, cannot
reach the warehouse as NULL or as a placeholder.

Messages (PostgreSQL documentation, "Logical Replication Message Formats"): Begin ``B``, Commit ``C``,
Origin ``O``, Relation ``R``, Type ``Y``, Insert ``I``, Update ``U``, Delete ``D``, Truncate ``T``,
Message ``M``. Written by hand: psycopg2 delivers the raw bytes and no maintained Python package
decodes pgoutput without also decoding (and guessing the types of) every column.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

NULL: Final = None
UNCHANGED: Final = object()
"""An out-of-line (TOAST) value the change left as it was: pgoutput sends no value for it."""

Value = str | None | object


class ProtocolError(ValueError):
    """A pgoutput message this decoder does not understand."""


@dataclass(frozen=True)
class Relation:
    """A table as the stream describes it: its columns, and which of them form its replica identity."""

    oid: int
    schema: str
    name: str
    columns: tuple[str, ...]
    identity: tuple[str, ...]
    """The columns pgoutput flags as part of the key (the replica identity: the primary key by default)."""


@dataclass
class Change:
    """One row change: ``kind`` is ``insert``, ``update`` or ``delete``; ``old`` is the key (or whole
    row) before the change when the stream sends it, ``new`` the row after it, by column name."""

    kind: str
    relation: int
    new: dict[str, Value] | None = None
    old: dict[str, Value] | None = None


@dataclass(frozen=True)
class Commit:
    end_lsn: int


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]


@dataclass
class Decoder:
    """Decodes messages one by one, remembering the relations the stream has described."""

    relations: dict[int, Relation] = field(default_factory=dict)

    def decode(self, payload: bytes) -> Change | Commit | Truncate | Relation | None:
        """The meaning of one message, or None for those that carry nothing needed here."""
        kind = payload[:1]
        if kind == b"R":
            relation = _relation(payload)
            self.relations[relation.oid] = relation
            return relation
        if kind in (b"I", b"U", b"D"):
            return self._change(payload)
        if kind == b"C":
            (end_lsn,) = struct.unpack_from("!Q", payload, 10)
            return Commit(end_lsn)
        if kind == b"T":
            (count,) = struct.unpack_from("!I", payload, 1)
            return Truncate(struct.unpack_from(f"!{count}I", payload, 6))
        if kind in (b"B", b"O", b"Y", b"M"):
            return None
        raise ProtocolError(f"unknown pgoutput message {kind!r}")

    def _change(self, payload: bytes) -> Change:
        (oid,) = struct.unpack_from("!I", payload, 1)
        relation = self.relations.get(oid)
        if relation is None:
            raise ProtocolError(f"a change to relation {oid} before the stream described it")
        change = Change({b"I": "insert", b"U": "update", b"D": "delete"}[payload[:1]], oid)
        offset = 5
        while offset < len(payload):
            marker = payload[offset : offset + 1]
            row, offset = _tuple(payload, offset + 1, relation.columns)
            if marker == b"N":
                change.new = row
            elif marker in (b"K", b"O"):
                change.old = row
            else:
                raise ProtocolError(f"unknown tuple marker {marker!r} in a change to {relation.name}")
        return change


def _string(payload: bytes, offset: int) -> tuple[str, int]:
    end = payload.index(b"\0", offset)
    return payload[offset:end].decode(), end + 1


def _relation(payload: bytes) -> Relation:
    (oid,) = struct.unpack_from("!I", payload, 1)
    schema, offset = _string(payload, 5)
    name, offset = _string(payload, offset)
    (count,) = struct.unpack_from("!H", payload, offset + 1)  # after the replica identity setting
    offset += 3
    columns, identity = [], []
    for _ in range(count):
        flags = payload[offset]
        column, offset = _string(payload, offset + 1)
        offset += 8  # type oid, type modifier
        columns.append(column)
        if flags & 1:
            identity.append(column)
    return Relation(oid, schema, name, tuple(columns), tuple(identity))


def _tuple(payload: bytes, offset: int, columns: tuple[str, ...]) -> tuple[dict[str, Value], int]:
    (count,) = struct.unpack_from("!H", payload, offset)
    offset += 2
    row: dict[str, Value] = {}
    for index in range(count):
        kind = payload[offset : offset + 1]
        offset += 1
        value: Value
        if kind == b"n":
            value = NULL
        elif kind == b"u":
            value = UNCHANGED
        elif kind == b"t":
            (length,) = struct.unpack_from("!I", payload, offset)
            value = payload[offset + 4 : offset + 4 + length].decode()
            offset += 4 + length
        else:
            raise ProtocolError(f"unknown column format {kind!r}")
        if index < len(columns):
            row[columns[index]] = value
    return row, offset
