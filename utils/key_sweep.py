"""Hard deletes for merged tables: keys the source no longer has, removed (or flagged) in the warehouse.

An incremental read only sees rows that still exist, so a row ``DELETE``d in the source stays live in
the warehouse. A key sweep reads the table's key columns from the warehouse, then the source's keys
(only the key columns, by the caller's fast reader), and treats every warehouse key missing from the
source as deleted: ``remove`` deletes those rows, ``flag`` sets their soft-delete column (or removes
them when the table has none). The warehouse keys are read first, so a row loaded and deleted in
between is never missed, and a row inserted in between is never touched (it is not in the warehouse).

The statements run in one transaction on the pipeline's destination, in batches of keys, with
parameters (never values spliced into SQL).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger("data_pipelines.key_sweep")

BATCH: Final = 500
"""Keys per DELETE or UPDATE statement."""
READ_CHUNK: Final = 100_000


@dataclass(frozen=True)
class SweepResult:
    """One table's sweep: keys compared and rows removed or flagged, and how long it took."""

    table: str
    warehouse_keys: int
    source_keys: int
    swept: int
    seconds: float
    action: str

    def __str__(self) -> str:
        return (
            f"key sweep of {self.table}: {self.swept} deleted in the source, {self.action}"
            f" ({self.warehouse_keys:,} warehouse keys against {self.source_keys:,} source keys,"
            f" {self.seconds:.2f} s)"
        )


def warehouse_keys(client: Any, table: str, key: Sequence[str]) -> pa.Table | None:
    """The key columns of ``table`` (normalised names) as loaded, or None when it is not there."""
    qualified = client.make_qualified_table_name(table)
    columns = ", ".join(client.escape_column_name(column) for column in key)
    try:
        with client.execute_query(f"SELECT {columns} FROM {qualified}") as cursor:
            chunks = list(cursor.iter_arrow(READ_CHUNK))
    except Exception as exc:  # the table has never been loaded: nothing to sweep
        if "not exist" in str(exc).lower() or "undefined" in type(exc).__name__.lower():
            return None
        raise
    if not chunks:
        return pa.table({column: pa.array([], pa.null()) for column in key})
    keys = pa.concat_tables([chunk.rename_columns(list(key)) for chunk in chunks])
    return keys


def missing_keys(loaded: pa.Table, source: pa.Table) -> pa.Table:
    """Rows of ``loaded`` whose key is not in ``source`` (same column names; types aligned here)."""
    if loaded.num_rows == 0:
        return loaded
    aligned = pa.table(
        [
            _as(source.column(index), loaded.schema.field(index).type)
            for index in range(len(loaded.column_names))
        ],
        names=loaded.column_names,
    )
    return loaded.join(aligned, keys=loaded.column_names, join_type="left anti")


def _as(column: Any, kind: pa.DataType) -> Any:
    if column.type == kind or pa.types.is_null(kind):
        return column
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.cast(column, kind) if not pa.types.is_timestamp(column.type) else column.cast(kind)
    return column.cast(kind)


def sweep_table(
    client: Any,
    table: str,
    key: Sequence[str],
    read_source_keys: Callable[[], pa.Table],
    *,
    soft_delete_column: str | None = None,
    flag: bool = False,
) -> SweepResult | None:
    """Sweep ``table`` through ``client`` (an open ``pipeline.sql_client()``): ``key`` and
    ``soft_delete_column`` are warehouse (normalised) names; ``read_source_keys`` returns the source's
    keys as columns in the order of ``key``."""
    started = time.perf_counter()
    loaded = warehouse_keys(client, table, key)
    if loaded is None:
        return None
    source = read_source_keys()
    gone = missing_keys(loaded, source)
    flagging = flag and soft_delete_column is not None
    if gone.num_rows:
        apply_deletes(client, table, key, gone, soft_delete_column if flagging else None)
    return SweepResult(
        table,
        loaded.num_rows,
        source.num_rows,
        gone.num_rows,
        time.perf_counter() - started,
        f"flagged in {soft_delete_column}" if flagging else "removed",
    )


def apply_deletes(client: Any, table: str, key: Sequence[str], gone: pa.Table, flag: str | None) -> None:
    """Delete the rows of ``table`` whose key is in ``gone`` (key columns named as ``key``), or set
    their ``flag`` column (now, where it is still NULL), in one transaction, as parameters."""
    rows = gone.to_pylist()
    qualified = client.make_qualified_table_name(table)
    columns = [client.escape_column_name(column) for column in key]
    stamp: list[Any] = []
    if flag is None:
        action = f"DELETE FROM {qualified} WHERE "
    else:
        column = client.escape_column_name(flag)
        action = f"UPDATE {qualified} SET {column} = %s WHERE {column} IS NULL AND "
        stamp = [dt.datetime.now(dt.UTC)]
    with client.begin_transaction():
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            if len(columns) == 1:
                condition = f"{columns[0]} IN ({', '.join(['%s'] * len(batch))})"
                values = [row[key[0]] for row in batch]
            else:
                one = "(" + " AND ".join(f"{column} = %s" for column in columns) + ")"
                condition = "(" + " OR ".join([one] * len(batch)) + ")"
                values = [row[name] for row in batch for name in key]
            client.execute_sql(action + condition, *stamp, *values)
