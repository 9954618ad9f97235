"""The primary keys a PostgreSQL table holds now, read over ADBC (only the key columns), for the key
sweep that finds rows deleted in the source (:mod:`utils.key_sweep`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from sources.products.catalogue import LoadPlan
from sources.products.errors import ProductsDatabaseError, describe, password_forms
from utils.adbc import normaliser, pooled_connection
from utils.pg_types import with_casts
from utils.redact import redact_text


def read_keys(engine: sa.Engine, table: sa.Table, plan: LoadPlan, hints: Mapping[str, Any]) -> pa.Table:
    """``plan``'s key columns of every row of ``table``, typed as their hints say (as loaded)."""
    import adbc_driver_manager

    query = with_casts(sa.select(*(table.c[column] for column in plan.primary_key)), dict(hints))
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    try:
        with pooled_connection(engine) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            normalise = normaliser(reader.schema, dict(hints))
            batches = [normalise(batch) for batch in reader]
            schema = batches[0].schema if batches else None
    except adbc_driver_manager.Error as exc:
        reason = redact_text(str(exc).strip(), password_forms(engine.url.password))
        raise ProductsDatabaseError(
            f"products: reading the keys of {table.name} from PostgreSQL {describe(engine.url)} failed:"
            f" {reason}"
        ) from None
    if schema is None:
        return pa.table({column: pa.array([], pa.null()) for column in plan.primary_key})
    return pa.Table.from_batches(batches, schema=schema)
