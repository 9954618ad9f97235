"""Arrow batches as rows with their JSON parsed, for the products source's JSON-row route
(``json_as_objects``, Snowflake's): what Python or dlt's jsonl writer cannot carry fails the read with
a :class:`utils.adbc.ReadError` naming the column and the override that loads it as text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from utils.adbc import ReadError

JSON_ROW_DEPTH: Final = 252
"""The deepest JSON value a jsonl row can carry: dlt writes with orjson, which stops at 255 levels,
and its extract step writes a batch of rows as one list, so a value starts two levels down (measured)."""


def _way_out(column: str) -> str:
    """The end of every refusal here: why the row is JSON, and the override that loads the column."""
    return (
        " (this table has JSON columns, so it loads as jsonl on Snowflake); load it as text with a column"
        f' override in [sources.products] tables, e.g. {{name = "...", columns = {{{column} = "text"}}}}'
    )


def rows_with_json(batch: pa.RecordBatch, json_columns: Sequence[str]) -> list[dict[str, Any]]:
    """``batch`` as rows, JSON text in ``json_columns`` parsed (Arrow lists are lists already).

    JSON has no NaN or infinity, so a float column holding one fails here, naming it, instead of
    landing as NULL."""
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_floating(column.type) and pc.any(pc.invert(pc.is_finite(column))).as_py():
            raise ReadError(f"column {name}: NaN or infinity cannot travel as JSON{_way_out(name)}")
    rows = _python_rows(batch)
    text = [
        name
        for name in json_columns
        if name in batch.schema.names and pa.types.is_string(batch.schema.field(name).type)
    ]
    for row in rows:
        for name in text:
            if row[name] is not None:
                row[name] = _json_value(name, row[name])
    return rows


def _json_value(column: str, text: str) -> Any:
    """An object or array parsed; a JSON scalar (``"red"``, ``42``, ``false``, ``null``) kept as its
    text, which dlt parses into the column itself: handed a bare scalar, dlt would take it for a new
    variant column, which the schema contract refuses, failing the run at normalise."""
    try:
        value = json.loads(text, parse_int=_int64)
        # counting brackets (in C) first spares the walk for every value that cannot be that deep
        too_deep = text.count("[") + text.count("{") > JSON_ROW_DEPTH and _deeper_than(value, JSON_ROW_DEPTH)
    except RecursionError:  # PostgreSQL nests about 10,000 levels deep, Python's parser about 1,000
        too_deep = True
    except _BeyondInt64 as exc:
        raise ReadError(
            f"column {column}: the JSON number {str(exc)[:40]} is past 64 bits, which dlt's jsonl writer"
            f" cannot write{_way_out(column)}"
        ) from None
    if too_deep:
        raise ReadError(
            f"column {column}: JSON nested deeper than {JSON_ROW_DEPTH} levels, where dlt's jsonl writer"
            f" stops, cannot travel as a JSON row{_way_out(column)}"
        )
    return value if isinstance(value, (dict, list)) else text


class _BeyondInt64(ValueError):
    """A JSON integer dlt's jsonl writer (orjson) cannot write."""


def _int64(digits: str) -> int:
    value = int(digits)
    if not -(2**63) <= value < 2**64:  # orjson's range (measured)
        raise _BeyondInt64(digits)
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects and arrays more than ``limit`` levels deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((inner, depth + 1) for inner in item)
    return False


def _python_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """``batch.to_pylist()``, or a :class:`ReadError` naming the column holding a value Python has
    no type for (PostgreSQL's ``infinity`` dates and timestamps, years past 9999 or before 1)."""
    try:
        return batch.to_pylist()
    except (OverflowError, ValueError):
        pass
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            column.to_pylist()
        except (OverflowError, ValueError) as exc:
            raise ReadError(
                f"column {name}: a value beyond Python's dates and times (infinity, or a year outside"
                f" 1-9999: {exc}) cannot travel as a JSON row{_way_out(name)}"
            ) from None
    return batch.to_pylist()  # not reached: some column failed above
