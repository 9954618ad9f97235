"""Reading PostgreSQL tables as Arrow batches for dlt's ``sql_table``: ADBC, prefetched, typed.

Importing this module registers the ``adbc`` backend: pass ``backend="adbc"`` to ``sql_table`` (and,
to wrap errors, a subclass of :class:`AdbcTableLoader` as ``table_loader_class``, as
``sources/products`` does). It streams a table with PostgreSQL's binary ``COPY`` through the ADBC
PostgreSQL driver (libpq, in C). Unlike ConnectorX, the driver releases the GIL while it reads and
decodes, so with :func:`prefetch` the next batch arrives while dlt writes the previous one to
parquet. Batches are bounded in bytes (the driver's default, about 16 MB), so memory stays flat for
wide rows too, and are split without copying into at most ``chunk_size`` rows. Types the driver
leaves as Arrow extension types become what dlt and the destinations expect: ``numeric`` ->
``decimal128`` at the column's precision and scale, ``json``/``jsonb`` -> their text; ``int2``/``int4``
widen to the reflected ``bigint``. Types without a native counterpart are cast in the query as
:mod:`utils.pg_types` says (their column hints decide); one still arriving as wire-format bytes fails
the read naming the column, never loads as a blob.
"""

from __future__ import annotations

import queue
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from dlt.common.typing import TDataItem
from dlt.sources.sql_database.helpers import BaseTableLoader, register_table_loader_backend
from sqlalchemy.pool import QueuePool

from utils.arrow_hints import declared_schema, expect_json_text_only
from utils.pg_types import DEFAULT_DECIMAL, with_casts


class ReadError(RuntimeError):
    """The database refused or broke off a read; raised with the driver's message."""


def uuid_to_text(array: pa.Array) -> pa.Array:
    """16-byte UUIDs -> canonical text (a fallback: :func:`utils.pg_types.with_casts` selects text)."""
    return pa.array(
        [None if value is None else str(uuid.UUID(bytes=value)) for value in array.to_pylist()],
        type=pa.string(),
    )


def _decimal_type(hint: dict[str, Any]) -> pa.DataType:
    precision, scale = hint.get("precision"), hint.get("scale")
    if precision is None:
        precision, scale = DEFAULT_DECIMAL
    return pa.decimal128(precision, scale or 0)


LOWEST_PG_VALUE: Final = {"date": -2_440_588, "timestamp": -210_866_803_200_000_000}
"""PostgreSQL's earliest date (4713 BC) in days and microseconds since 1970. The driver hands over
``infinity`` and ``-infinity`` (and timestamps past the year 292277) with its epoch shift overflowed,
as a date millions of years before that (``infinity`` as ``-2147472692`` days), so anything lower
is one of them."""


def _refuse_infinity(field: pa.Field, kind: str, table: str) -> Callable[[pa.Array], pa.Array]:
    """A check failing the read, naming the column, when a date or timestamp holds an infinity."""
    integers = pa.int32() if kind == "date" else pa.int64()
    beyond = "" if kind == "date" else " (or a timestamp past the year 292277)"

    def check(array: pa.Array) -> pa.Array:
        lowest = pc.min(array.cast(integers)).as_py()
        if lowest is not None and lowest < LOWEST_PG_VALUE[kind]:
            raise ReadError(
                f"column {field.name}: PostgreSQL's infinity or -infinity{beyond} has no {kind} value in"
                " Arrow or the warehouses (the driver would hand over a date millions of years BC); load the"
                " column as text with a column override in [sources.products] tables, e.g."
                f' {{name = "{table}", columns = {{{field.name} = "text"}}}} (docs/products.md)'
            )
        return array

    return check


def _converter(field: pa.Field, hint: dict[str, Any], table: str) -> Callable[[pa.Array], pa.Array] | None:
    """How to turn one column of the driver's batches into a plain Arrow type (None: as it is)."""
    kind = field.type
    if pa.types.is_date32(kind):
        return _refuse_infinity(field, "date", table)
    if pa.types.is_timestamp(kind) and kind.unit == "us":
        return _refuse_infinity(field, "timestamp", table)
    if pa.types.is_integer(kind) and hint.get("data_type") == "bigint":
        # int2/int4 arrive as int16/int32; the column is as wide as its hint (a plain bigint, as earlier
        # loads created it, or 32 bits for a smallint), and a narrower Arrow type would differ from it
        target = {32: pa.int32(), 16: pa.int16()}.get(hint.get("precision") or 64, pa.int64())
        if kind == target:
            return None
        return lambda array: array.cast(target)
    if not isinstance(kind, pa.BaseExtensionType):
        return None
    if kind.extension_name == "arrow.uuid":
        return lambda array: uuid_to_text(array.storage)
    if hint.get("data_type") == "decimal" and pa.types.is_string(kind.storage_type):
        target = _decimal_type(hint)

        def to_decimal(array: pa.Array) -> pa.Array:
            try:
                return array.storage.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ReadError(
                    f"column {field.name}: a numeric value does not fit {target} ({exc}); load the"
                    " column as text (or double, or a wider decimal(p,s)) with a column override in"
                    f' [sources.products] tables, e.g. {{name = "{table}",'
                    f' columns = {{{field.name} = "text"}}}} (docs/products.md)'
                ) from None

        return to_decimal
    if pa.types.is_binary(kind.storage_type) or pa.types.is_large_binary(kind.storage_type):
        name = getattr(kind, "type_name", kind.extension_name)

        def refuse(_array: pa.Array) -> pa.Array:
            raise ReadError(
                f"column {field.name}: PostgreSQL type {name} arrived in binary wire format, which no"
                " destination can read; give the column a text override in [sources.products]"
            )

        return refuse
    return lambda array: array.storage  # json, jsonb: their text


def normaliser(
    schema: pa.Schema, hints: dict[str, Any], table: str
) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """A function converting batches of ``schema`` column by column; field metadata is dropped and
    columns the hints declare not nullable are so in Arrow too (:func:`utils.arrow_hints.declared_schema`)."""
    converters = [_converter(field, hints.get(field.name, {}), table) for field in schema]
    target: pa.Schema | None = None

    def normalise(batch: pa.RecordBatch) -> pa.RecordBatch:
        nonlocal target
        columns = [
            column if convert is None else convert(column)
            for column, convert in zip(batch.columns, converters, strict=True)
        ]
        if target is None:
            target = declared_schema(
                [pa.field(name, column.type) for name, column in zip(schema.names, columns, strict=True)],
                hints,
            )
        return pa.RecordBatch.from_arrays(columns, schema=target)

    return normalise


def prefetch(items: Iterator[TDataItem], depth: int) -> Iterator[TDataItem]:
    """Pull ``items`` on a background thread, at most ``depth`` ahead of the consumer.

    The driver fetches and decodes the next batch (in C, without the GIL) while dlt writes the
    previous one, so reading and writing overlap instead of taking turns. The bounded queue keeps
    memory flat however large the table is.
    """
    done = object()
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        """Queue ``item`` unless the consumer has gone; False once it has."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            hand_over(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="adbc-prefetch", daemon=True)
    worker.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


POOL_SIZE: Final = 8
"""Idle ADBC connections kept per engine: enough for dlt's extraction workers reading a table each."""

_POOLS: weakref.WeakKeyDictionary[sa.Engine, QueuePool] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def libpq_url(engine: sa.Engine) -> str:
    """A libpq URI (``postgresql://``, any ``?host=/socket/dir`` kept) from a SQLAlchemy engine's URL."""
    url = engine.url.set(drivername=engine.url.get_backend_name())
    return url.render_as_string(hide_password=False)


def _pool(engine: sa.Engine) -> QueuePool:
    """The ADBC connections to ``engine``'s database: one pool per engine, closed with it.

    The ADBC PostgreSQL driver reads the server's whole type catalogue when it connects, which costs
    far more than reading a small table, so the tables of a run (and their key sweeps) share a few
    connections instead of opening one each. The pool keeps nothing that refers to the engine: it is
    closed when the engine is disposed, garbage-collected, or at the latest at interpreter exit.
    """
    with _POOLS_LOCK:
        pool = _POOLS.get(engine)
        if pool is None:
            url = libpq_url(engine)

            def connect() -> Any:
                import adbc_driver_postgresql.dbapi

                return adbc_driver_postgresql.dbapi.connect(url)

            # unlimited overflow: a caller never waits; connections beyond POOL_SIZE close on return
            pool = QueuePool(connect, pool_size=POOL_SIZE, max_overflow=-1, reset_on_return="rollback")
            _POOLS[engine] = pool
            weakref.finalize(engine, pool.dispose)
            sa.event.listen(engine, "engine_disposed", lambda _engine, close=pool.dispose: close())
    return pool


def compile_sql(query: Any, engine: sa.Engine) -> str:
    """``query`` as the SQL text ADBC runs, values inlined. The engine's psycopg2 dialect writes every
    ``%`` of the text as ``%%`` (its DB-API's ``pyformat`` escaping, which psycopg2 undoes); ADBC sends
    the text as it is, so the doubling is undone here - else a key or value holding ``%`` would match
    nothing."""
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    return sql.replace("%%", "%") if engine.dialect.paramstyle in ("format", "pyformat") else sql


@contextmanager
def pooled_connection(engine: sa.Engine) -> Iterator[Any]:
    """An ADBC (DB-API) connection to ``engine``'s database, taken from its pool and given back after.

    A block that ends with an exception (a failed read, or a reader stopped half-way) discards the
    connection instead, so the next table never gets a connection in an unknown state.
    """
    proxied = _pool(engine).connect()
    try:
        yield proxied.dbapi_connection
    except BaseException:
        proxied.invalidate()
        raise
    else:
        proxied.close()


class AdbcTableLoader(BaseTableLoader):
    """dlt table loader on the ADBC PostgreSQL driver: the query dlt builds, read as Arrow batches.

    Driver errors are re-raised as :class:`ReadError`; callers add where the read went.
    """

    prefetch_batches: int = 2
    """Batches read ahead of the parquet writer."""

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[TDataItem]:
        query = compile_sql(with_casts(self.make_query(), self.columns), self.engine)
        batches = prefetch(self._batches(query), depth=self.prefetch_batches)
        first = next(batches, None)
        if first is None:
            return
        schema, pending = first.schema, [first]
        del first  # a suspended generator must not keep a batch dlt has already written
        # dlt checks each batch against the hints as it extracts it, in this (the consuming) thread
        with expect_json_text_only(self.table.name, schema, self.columns):
            yield pending.pop()
            yield from batches

    def _batches(self, query: str) -> Iterator[pa.RecordBatch]:
        import adbc_driver_manager

        try:
            with pooled_connection(self.engine) as connection, connection.cursor() as cursor:
                cursor.execute(query)
                reader = cursor.fetch_record_batch()
                normalise = normaliser(reader.schema, self.columns, self.table.name)
                for batch in reader:
                    batch = normalise(batch)
                    for start in range(0, batch.num_rows, self.chunk_size):
                        yield batch.slice(start, self.chunk_size)  # zero-copy
        except adbc_driver_manager.Error as exc:
            raise ReadError(str(exc).strip()) from None


register_table_loader_backend("adbc", AdbcTableLoader)
