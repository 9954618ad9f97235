"""dlt source for the product catalogue tables in PostgreSQL (see the package docstring for the owner).

One ``sql_table`` resource per configured table, merged on its primary key and read incrementally on
its cursor column. Reflection is deferred to extraction, so a source is cheap to build and an
unreachable database fails the run's extract step with a clear, password-free error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args
from urllib.parse import quote, quote_plus

import dlt
import sqlalchemy as sa
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.common.schema.typing import TDeleteInsertStrategyDict, TSchemaContractDict
from dlt.common.typing import TDataItem
from dlt.extract.resource import DltResource
from dlt.sources.sql_database import sql_table
from dlt.sources.sql_database.helpers import TableBackend

from utils.adbc import AdbcTableLoader, ReadError
from utils.destinations import PARSE_JSON_HINT
from utils.pg_types import arrays_as_json_text, dlt_type, override_hint
from utils.redact import redact_text

SoftDelete = Literal["remove", "flag"]
NullCursor = Literal["include", "exclude", "raise"]
SOFT_DELETE_MODES: Final = get_args(SoftDelete)
NULL_CURSOR_MODES: Final = get_args(NullCursor)
DEFAULT_LAG_SECONDS: Final = 300.0
DEFAULT_CHUNK_SIZE: Final = 100_000
"""Most rows per Arrow batch (``adbc`` batches are also capped at about 16 MB)."""
BACKENDS: Final = ("adbc", "pyarrow")
"""``adbc`` (default): binary COPY read without the GIL; ``pyarrow``: dlt's SQLAlchemy fallback."""


SCHEMA_CONTRACT: Final[TSchemaContractDict] = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}
"""A new source column flows through (schema evolution); a column whose type changes in PostgreSQL
(say ``price`` from numeric to text) fails the run with nothing loaded, instead of quietly becoming a
variant column that downstream models would not read."""


MERGE: Final[TDeleteInsertStrategyDict] = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "deduplicated": True,
}
"""dlt's default merge, told that a load holds each key once: one query reads one snapshot of the
table, so a primary key (or a unique key) arrives once. dlt then skips its ``ROW_NUMBER()`` pass over
the staged rows, which sorts every column of a full load (on DuckDB, within its memory limit, the
bulk of a first load's time). Keys that are not unique in PostgreSQL land as they are there."""


class ProductsDatabaseError(RuntimeError):
    """PostgreSQL could not be reached or read; the message names host and database, never the password."""


@dataclass(frozen=True)
class TableSpec:
    """One table to load: its name, primary key, incremental cursor, soft-delete column and the
    columns whose type the default type map should not decide (column -> ``text``, ``double``,
    ``bigint`` or ``decimal(p,s)``)."""

    name: str
    primary_key: str | tuple[str, ...] = "id"
    cursor: str | None = "updated_at"
    soft_delete_column: str | None = "deleted_at"
    columns: Mapping[str, str] = field(default_factory=dict)


@dlt.source(section="products", name="products", max_table_nesting=0)
def products_source(
    credentials: ConnectionStringCredentials = dlt.secrets.value,
    schema: str = "public",
    tables: Sequence[str | dict[str, Any]] = ("products",),
    primary_key: str | list[str] = "id",
    cursor: str | None = "updated_at",
    lag_seconds: float = DEFAULT_LAG_SECONDS,
    soft_delete_column: str | None = "deleted_at",
    soft_delete: str = "remove",
    null_cursor: str = "include",
    backend: str = "adbc",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    initial_value: Any = None,
    end_value: Any = None,
    write_disposition: str = "merge",
    json_as_objects: bool = False,
) -> Iterator[DltResource]:
    """Product tables from PostgreSQL, merged on their primary keys and read incrementally.

    Config (``[sources.products]`` or ``SOURCES__PRODUCTS__*``; credentials in secrets):
        credentials: a connection string (``postgresql://`` with user, password, host, port and
            database) or its fields.
        schema: the PostgreSQL schema (``public``).
        tables: table names, or tables as ``{name, primary_key, cursor, soft_delete_column, columns}``
            where a table differs from the defaults below; ``columns`` overrides the type map for
            some columns: ``{price = "text"}`` (or ``double``, ``bigint``, ``decimal(p,s)``; see
            docs/products.md for the map).
        primary_key, cursor, soft_delete_column: defaults for every table; a ``cursor`` of ``""``
            reloads the table in full each run (still merged), ``soft_delete_column = ""`` disables it.
        lag_seconds: each run re-reads this many seconds before the last loaded cursor value, so rows
            committed late by long transactions are not missed; merge makes the overlap harmless.
        soft_delete: ``remove`` deletes a row from the destination when its soft-delete column is set;
            ``flag`` keeps it with the column set.
        null_cursor: rows whose cursor is NULL are ``include``d in every run (default), ``exclude``d,
            or ``raise`` an error.
        backend: ``adbc`` (default; see :mod:`utils.adbc`) or ``pyarrow`` (dlt's
            SQLAlchemy reader, much slower; for databases the ADBC driver cannot read).
        chunk_size: most rows per Arrow batch.
        initial_value, end_value: cursor range for this run (the pipeline's ``--start-date``).
        write_disposition: ``merge`` (default); the pipeline's full refresh uses ``replace``, which
            swaps in the whole table (in one transaction) instead of merging, and
            then leaves out soft-deleted rows at the source when ``soft_delete = "remove"``.
        json_as_objects: every JSON column (json, jsonb, arrays) travels as JSON text, which the
            Snowflake destination parses into VARIANT objects as it merges or replaces the table
            (``utils/snowflake_json.py``); the pipeline turns this on for Snowflake (docs/products.md).
    """
    if write_disposition not in ("merge", "replace"):
        raise ValueError(f"products: write_disposition={write_disposition!r}: use merge or replace")
    if soft_delete not in SOFT_DELETE_MODES:
        raise ValueError(f"sources.products.soft_delete={soft_delete!r}: use one of {SOFT_DELETE_MODES}")
    if backend not in BACKENDS:
        raise ValueError(f"sources.products.backend={backend!r}: use one of {BACKENDS}")
    if null_cursor not in NULL_CURSOR_MODES:
        raise ValueError(f"sources.products.null_cursor={null_cursor!r}: use one of {NULL_CURSOR_MODES}")
    defaults = TableSpec(
        name="",
        primary_key=_key(primary_key),
        cursor=cursor or None,
        soft_delete_column=soft_delete_column or None,
    )
    for spec in table_specs(tables, defaults):
        yield _table_resource(
            credentials,
            schema,
            spec,
            lag_seconds=lag_seconds,
            soft_delete=soft_delete,  # type: ignore[arg-type]
            null_cursor=null_cursor,  # type: ignore[arg-type]
            backend=backend,  # type: ignore[arg-type]
            chunk_size=chunk_size,
            initial_value=initial_value,
            end_value=end_value,
            write_disposition=write_disposition,
            json_as_objects=json_as_objects,
        )


def table_specs(tables: Sequence[str | dict[str, Any]] | str, defaults: TableSpec) -> list[TableSpec]:
    """Turn the ``tables`` setting (names, or dicts overriding the defaults) into table specs."""
    if isinstance(tables, str):
        tables = [name.strip() for name in tables.split(",") if name.strip()]
    specs = []
    for item in tables:
        if isinstance(item, str):
            specs.append(TableSpec(item, defaults.primary_key, defaults.cursor, defaults.soft_delete_column))
            continue
        if not isinstance(item, dict) or not item.get("name"):
            raise ValueError(
                f"sources.products.tables: {item!r} is neither a table name nor a table with a name"
            )
        unknown = set(item) - {"name", "primary_key", "cursor", "soft_delete_column", "columns"}
        if unknown:
            raise ValueError(
                f"sources.products.tables: unknown setting(s) {sorted(unknown)} for {item['name']}"
            )
        specs.append(
            TableSpec(
                name=str(item["name"]),
                primary_key=_key(item.get("primary_key", defaults.primary_key)),
                cursor=item.get("cursor", defaults.cursor) or None,
                soft_delete_column=item.get("soft_delete_column", defaults.soft_delete_column) or None,
                columns=dict(item.get("columns") or {}),
            )
        )
    if not specs:
        raise ValueError("sources.products.tables is empty: name at least one table to load")
    return specs


def _key(value: str | Sequence[str]) -> str | tuple[str, ...]:
    return value if isinstance(value, str) else tuple(value)


def _table_resource(
    credentials: ConnectionStringCredentials,
    schema: str,
    spec: TableSpec,
    *,
    lag_seconds: float,
    soft_delete: SoftDelete,
    null_cursor: NullCursor,
    backend: TableBackend,
    chunk_size: int,
    initial_value: Any,
    end_value: Any,
    write_disposition: str,
    json_as_objects: bool = False,
) -> DltResource:
    overrides = {column: override_hint(spec.name, column, value) for column, value in spec.columns.items()}
    incremental = None
    if spec.cursor:
        incremental = dlt.sources.incremental(
            spec.cursor,
            initial_value=initial_value,
            end_value=end_value,
            lag=lag_seconds or None,
            on_cursor_value_missing=null_cursor,
            range_end="open" if end_value is not None else "closed",
        )
    resource = sql_table(
        credentials=credentials,
        table=spec.name,
        schema=schema,
        incremental=incremental,
        chunk_size=chunk_size,
        backend=backend,
        reflection_level="full_with_precision",
        defer_table_reflect=True,
        engine_adapter_callback=_clear_connection_errors,
        table_loader_class=(JsonTextLoader if json_as_objects else RedactingAdbcLoader)
        if backend == "adbc"
        else None,
        type_adapter_callback=dlt_type,
        write_disposition=MERGE if write_disposition == "merge" else write_disposition,  # type: ignore[arg-type]
        query_adapter_callback=_live_rows_only(spec.soft_delete_column)
        if spec.soft_delete_column and soft_delete == "remove" and write_disposition == "replace"
        else None,
        primary_key=list(spec.primary_key) if isinstance(spec.primary_key, tuple) else spec.primary_key,
    )
    # on Snowflake, JSON text (every JSON column's, with json_as_objects) lands as VARIANT objects;
    # parquet said outright, as tables loaded by the JSON-row route keep file_format=jsonl in the schema
    resource.apply_hints(
        schema_contract=SCHEMA_CONTRACT,
        additional_table_hints={PARSE_JSON_HINT: json_as_objects},
        file_format="parquet",
    )
    if overrides:
        resource.apply_hints(columns=overrides)
    if spec.soft_delete_column and soft_delete == "remove":
        # only merge applies hard_delete; a replace leaves soft-deleted rows out at the source, and
        # sets the hint False so the one kept in the schema from earlier merges does not warn
        merging = write_disposition == "merge"
        resource.apply_hints(columns={spec.soft_delete_column: {"hard_delete": merging}})
    return resource


def _live_rows_only(column: str) -> Any:
    """A query adapter leaving out soft-deleted rows (a replace cannot delete them afterwards)."""

    def adapt(query: Any, table: sa.Table, _incremental: Any = None, _engine: Any = None) -> Any:
        if column not in table.c:
            return query
        return query.where(table.c[column].is_(None))

    return adapt


def _password_forms(password: Any) -> list[str | None]:
    """The password as typed and as it appears percent-encoded inside a connection URL."""
    if not password:
        return []
    return [str(password), quote_plus(str(password)), quote(str(password), safe="")]


def describe(url: sa.URL) -> str:
    """``database "db" on host:port as user``: where a connection went, without the password."""
    host = url.host or url.query.get("host") or "localhost"
    if isinstance(host, tuple):
        host = host[0]
    port = f":{url.port}" if url.port else ""
    return f'database "{url.database}" on {host}{port} as {url.username}'


def _clear_connection_errors(engine: sa.Engine) -> sa.Engine:
    """Make a failed connection raise :class:`ProductsDatabaseError` naming host and database."""
    url = engine.url
    password = url.password

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        try:
            return dialect.loaded_dbapi.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.Error as exc:
            reason = redact_text(str(exc).strip(), _password_forms(password))
            raise ProductsDatabaseError(
                f"products: could not connect to PostgreSQL {describe(url)}: {reason}"
            ) from None

    return engine


class RedactingAdbcLoader(AdbcTableLoader):
    """ADBC loader whose errors name host and database but never the connection string's password."""

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[TDataItem]:
        try:
            yield from self.items(backend_kwargs)
        except ReadError as exc:
            reason = redact_text(str(exc), _password_forms(self.engine.url.password))
            raise ProductsDatabaseError(
                f"products: reading {self.table.name} from PostgreSQL {describe(self.engine.url)} "
                f"failed: {reason}"
            ) from None

    def items(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[TDataItem]:
        """What dlt receives (Arrow batches); a :class:`ReadError` raised here fails the run typed."""
        return super().load_rows(backend_kwargs)


class JsonTextLoader(RedactingAdbcLoader):
    """For Snowflake: every JSON column arrives as JSON text in Arrow and parquet (arrays too, which the
    driver would read as Arrow lists), which the destination parses into VARIANT objects and arrays
    as it merges or replaces the table (``utils/snowflake_json.py``; docs/products.md)."""

    def make_query(self) -> Any:
        return arrays_as_json_text(super().make_query(), self.columns)
