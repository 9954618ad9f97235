"""Primary keys read from PostgreSQL over ADBC (only the key columns): every key a table holds now,
for the key sweep that finds rows deleted in the source (:mod:`utils.key_sweep`), and, for change
data capture, the condition selecting a set of changed keys and those of them the table no longer has."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from sources.products.catalogue import LoadPlan
from sources.products.errors import ProductsDatabaseError, describe, password_forms
from utils.adbc import compile_sql, normaliser, pooled_connection
from utils.pg_types import select_expression, with_casts
from utils.redact import redact_text


def read_keys(engine: sa.Engine, table: sa.Table, plan: LoadPlan, hints: Mapping[str, Any]) -> pa.Table:
    """``plan``'s key columns of every row of ``table``, typed as their hints say (as loaded)."""
    query = with_casts(sa.select(*(table.c[column] for column in plan.primary_key)), dict(hints))
    return _read(engine, table, plan.primary_key, query, hints)


def _array_text(values: Sequence[str]) -> str:
    """A PostgreSQL array literal of ``values`` (each quoted, so any text is one element)."""
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


def _unnest(table: sa.Table, key: Sequence[str], keys: Collection[tuple[str, ...]]) -> Any:
    """The changed keys (PostgreSQL's text form, as the stream sends them) as a relation ``k(k0, ...)``."""
    rows = sorted(keys)
    arrays = [
        sa.cast(sa.literal(_array_text([row[index] for row in rows]), sa.Text), pg.ARRAY(sa.Text))
        for index in range(len(key))
    ]
    return (
        sa.func.unnest(*arrays)
        .table_valued(*(f"k{index}" for index in range(len(key))))
        .render_derived(name="k")
    )


def _typed(table: sa.Table, key: Sequence[str], keys: Any) -> list[Any]:
    return [sa.cast(keys.c[f"k{index}"], table.c[column].type) for index, column in enumerate(key)]


def changed_keys_condition(table: sa.Table, key: Sequence[str], keys: Collection[tuple[str, ...]]) -> Any:
    """``(key) IN (the changed keys, cast to the key's types)``: an index lookup per key."""
    unnested = _unnest(table, key, keys)
    columns = [table.c[column] for column in key]
    target = columns[0] if len(columns) == 1 else sa.tuple_(*columns)
    return target.in_(sa.select(*_typed(table, key, unnested)))


def read_missing_keys(
    engine: sa.Engine,
    table: sa.Table,
    key: Sequence[str],
    keys: Collection[tuple[str, ...]],
    hints: Mapping[str, Any],
) -> pa.Table:
    """Those of ``keys`` (text form) that ``table`` no longer holds, typed as their hints say."""
    unnested = _unnest(table, key, keys)
    typed = _typed(table, key, unnested)
    present = sa.exists().where(*(table.c[column] == value for column, value in zip(key, typed, strict=True)))
    query = sa.select(
        *(
            select_expression(value.label(column), dict(hints).get(column, {}))
            for column, value in zip(key, typed, strict=True)
        )
    ).where(~present)
    return _read(engine, table, key, query, hints)


def _read(
    engine: sa.Engine, table: sa.Table, key: Sequence[str], query: Any, hints: Mapping[str, Any]
) -> pa.Table:
    import adbc_driver_manager

    sql = compile_sql(query, engine)
    try:
        with pooled_connection(engine) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            normalise = normaliser(reader.schema, dict(hints), table.name)
            batches = [normalise(batch) for batch in reader]
            schema = batches[0].schema if batches else None
    except adbc_driver_manager.Error as exc:
        reason = redact_text(str(exc).strip(), password_forms(engine.url.password))
        raise ProductsDatabaseError(
            f"products: reading the keys of {table.name} from PostgreSQL {describe(engine.url)} failed:"
            f" {reason}"
        ) from None
    if schema is None:
        return pa.table({column: pa.array([], pa.null()) for column in key})
    return pa.Table.from_batches(batches, schema=schema)
