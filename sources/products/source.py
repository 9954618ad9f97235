"""dlt source for the product catalogue tables in PostgreSQL (see the package docstring for the owner).

One ``sql_table`` resource per selected table (:mod:`sources.products.catalogue`: discovery, keys,
cursors), merged on its primary key and read incrementally on its cursor, or replaced in full when it
has no key. Tables are listed and reflected in one pass when the source is built, which a run does at
its extract step, so an unreachable database fails that step with a clear, password-free error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, get_args

import dlt
import sqlalchemy as sa
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.schema.typing import TDeleteInsertStrategyDict, TSchemaContractDict
from dlt.common.typing import TDataItem
from dlt.extract.resource import DltResource
from dlt.sources.sql_database import engine_from_credentials, sql_table
from dlt.sources.sql_database.helpers import TableBackend

from sources.products.capture import CAPTURE_MODES, STATE_KEY, Capture, plan_capture, state_resource
from sources.products.catalogue import (
    DEFAULT_CURSORS,
    Defaults,
    LoadPlan,
    as_names,
    as_schemas,
    discover_schemas,
    refuse_collisions,
)
from sources.products.errors import ProductsDatabaseError, describe, password_forms
from sources.products.keys import changed_keys_condition, read_keys, read_missing_keys
from sources.products.replication import DEFAULT_PUBLICATION, DEFAULT_SLOT
from utils.adbc import AdbcTableLoader, ReadError
from utils.destinations import PARSE_JSON_HINT
from utils.pg_types import arrays_as_json_text, dlt_type, is_unconstrained_numeric, override_hint
from utils.redact import redact_text
from utils.schema_evolution import YIELDING

SoftDelete = Literal["remove", "flag"]
NullCursor = Literal["include", "exclude", "raise"]
SOFT_DELETE_MODES: Final = get_args(SoftDelete)
NULL_CURSOR_MODES: Final = get_args(NullCursor)
DEFAULT_LAG_SECONDS: Final = 300.0
DEFAULT_CHUNK_SIZE: Final = 100_000
"""Most rows per Arrow batch (``adbc`` batches are also capped at about 16 MB)."""
BACKENDS: Final = ("adbc", "pyarrow")
"""``adbc`` (default): binary COPY read without the GIL; ``pyarrow``: dlt's SQLAlchemy fallback."""


WAREHOUSE_NAMING: Final = NamingConvention()
"""dlt's default naming (snake_case), which every destination of this project uses for table names:
two source tables that it would load into one warehouse table are refused."""

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


@dataclass(frozen=True)
class TableSpec:
    """Settings of one configured table (``tables`` entries as dicts); kept for callers building
    ``tables`` in code: :meth:`as_setting` gives the dict the source reads."""

    name: str
    primary_key: str | tuple[str, ...] | None = None
    cursor: str | None = None
    soft_delete_column: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)

    def as_setting(self) -> dict[str, Any]:
        setting: dict[str, Any] = {"name": self.name, "columns": dict(self.columns)}
        for name in ("primary_key", "cursor", "soft_delete_column"):
            if (value := getattr(self, name)) is not None:
                setting[name] = list(value) if isinstance(value, tuple) else value
        return setting


@dlt.source(section="products", name="products", max_table_nesting=0)
def products_source(
    credentials: ConnectionStringCredentials = dlt.secrets.value,
    schema: Any = "public",  # a name or a list (dlt resolves no union type from config: Any)
    tables: Sequence[str | dict[str, Any]] = ("products",),
    exclude: Sequence[str] = (),
    views: bool = False,
    primary_key: Any = "",
    cursor: Any = None,
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
    parallel: bool = True,
    change_capture: str = "cursor",
    slot_name: str = DEFAULT_SLOT,
    publication_name: str = DEFAULT_PUBLICATION,
) -> Iterator[DltResource]:
    """Product tables from PostgreSQL: merged on their primary keys and read incrementally, or
    replaced in full when they have no key (:mod:`sources.products.catalogue` has the rules).

    Config (``[sources.products]`` or ``SOURCES__PRODUCTS__*``; credentials in secrets):
        credentials: a connection string (``postgresql://`` with user, password, host, port and
            database) or its fields.
        schema: the PostgreSQL schema (``public``), or a list of schemas: tables of the first keep
            their names in the warehouse, those of the others load as ``<schema>__<table>``.
        tables: table names or glob patterns (``"*"`` for every table of the schema), each matching
            in every listed schema unless it names one (``"billing.*"``), or tables as
            ``{name, primary_key, cursor, soft_delete_column, columns}`` where a table differs from
            the defaults below; ``columns`` overrides the type map for some columns: ``{price =
            "text"}`` (or ``double``, ``bigint``, ``decimal(p,s)``; see docs/products.md).
        exclude: glob patterns of tables to leave out.
        views: patterns match views and materialized views too (named ones are always loaded).
        primary_key: the key of tables without a primary-key constraint (when they have its
            columns); a table's own ``primary_key`` wins over its constraint; ``[]`` for none.
        cursor: column names tried in order as a table's incremental cursor (default ``updated_at``,
            ``modified_at``, ``last_modified_at``, ``changed_at``; ``""`` for none: every table is read
            in full each run, still merged on its key).
        soft_delete_column: the soft-delete column, where a table has it (``""`` disables it).
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
        parallel: tables are read on dlt's extraction worker threads, several at once.
        change_capture: ``cursor`` (default: the cursor, lag and key sweep above) or ``logical``:
            PostgreSQL logical replication through ``slot_name`` and ``publication_name``
            (:mod:`sources.products.capture`; a full refresh reads the cursor way and leaves the slot).
    """
    if write_disposition not in ("merge", "replace"):
        raise ValueError(f"products: write_disposition={write_disposition!r}: use merge or replace")
    if soft_delete not in SOFT_DELETE_MODES:
        raise ValueError(f"sources.products.soft_delete={soft_delete!r}: use one of {SOFT_DELETE_MODES}")
    if backend not in BACKENDS:
        raise ValueError(f"sources.products.backend={backend!r}: use one of {BACKENDS}")
    if null_cursor not in NULL_CURSOR_MODES:
        raise ValueError(f"sources.products.null_cursor={null_cursor!r}: use one of {NULL_CURSOR_MODES}")
    if change_capture not in CAPTURE_MODES:
        raise ValueError(f"sources.products.change_capture={change_capture!r}: use one of {CAPTURE_MODES}")
    defaults = Defaults(
        primary_key=as_names(primary_key),
        cursors=DEFAULT_CURSORS if cursor is None else as_names(cursor),
        soft_delete_column=soft_delete_column or None,
    )
    engine = clear_connection_errors(engine_from_credentials(credentials))
    schemas = as_schemas(schema)
    if change_capture == "logical" and len(schemas) > 1:
        raise ValueError(
            f"sources.products.schema={schemas!r}: change_capture = logical reads one schema's publication;"
            " list one schema, or use change_capture = cursor for several"
        )
    metadata, plans = discover_schemas(
        engine, schemas, tables, defaults, exclude=as_names(exclude), views=bool(views)
    )
    refuse_collisions(plans, WAREHOUSE_NAMING.normalize_tables_path)
    capture: Capture | None = None
    if change_capture == "logical" and write_disposition == "merge":
        recorded = dict(dlt.current.source_state().get(STATE_KEY) or {})
        capture = plan_capture(
            engine,
            schemas[0],
            plans,
            slot=slot_name,
            publication=publication_name,
            recorded=recorded,
            columns={
                plan.name: list(metadata[plan.schema].tables[f"{plan.schema}.{plan.name}"].columns.keys())
                for plan in plans
            },
        )
    for plan in plans:
        keys = None
        if capture is not None and plan.name in capture.captured:
            if plan.name in capture.changed:
                keys = capture.changed[plan.name]
            elif plan.name not in capture.snapshots:
                continue  # nothing changed
            plan = replace(plan, cursor=None)
        resource = _table_resource(
            engine,
            metadata[plan.schema],
            plan,
            changed_keys=keys,
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
        yield resource.parallelize() if parallel else resource
    if capture is not None:
        yield state_resource(capture)


def _table_resource(
    engine: sa.Engine,
    metadata: sa.MetaData,
    plan: LoadPlan,
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
    changed_keys: set[tuple[str, ...]] | None = None,
) -> DltResource:
    overrides = {column: override_hint(plan.name, column, value) for column, value in plan.columns.items()}
    merging = write_disposition == "merge" and plan.disposition == "merge"
    incremental = None
    if plan.cursor:  # a full refresh (replace) restarts the cursor from what it reads
        incremental = dlt.sources.incremental(
            plan.cursor,
            initial_value=initial_value,
            end_value=end_value,
            lag=lag_seconds or None,
            on_cursor_value_missing=null_cursor,
            range_end="open" if end_value is not None else "closed",
        )
    resource = sql_table(
        credentials=engine,
        table=plan.name,
        metadata=metadata,
        incremental=incremental,
        chunk_size=chunk_size,
        backend=backend,
        reflection_level="full_with_precision",
        defer_table_reflect=False,
        table_loader_class=(JsonTextLoader if json_as_objects else RedactingAdbcLoader)
        if backend == "adbc"
        else None,
        type_adapter_callback=dlt_type,
        write_disposition=MERGE if merging else "replace",
        query_adapter_callback=_only_keys(plan.primary_key, changed_keys)
        if changed_keys is not None
        else _live_rows_only(plan.soft_delete_column)
        if plan.soft_delete_column and soft_delete == "remove" and not merging
        else None,
        primary_key=list(plan.primary_key) or None,  # type: ignore[arg-type]
    )
    if plan.resource != plan.name:  # a table of a schema listed after the first: <schema>__<table>
        resource = resource.with_name(plan.resource)
    resource.load_plan = plan  # type: ignore[attr-defined]
    resource.engine = engine  # type: ignore[attr-defined]  # closed by close_connections()
    table = metadata.tables[f"{plan.schema}.{plan.name}"]
    # the key sweep's reader: the key columns as this resource loads them (hints read when it runs)
    resource.read_keys = lambda: read_keys(engine, table, plan, resource.columns)  # type: ignore[attr-defined,arg-type]
    if changed_keys is not None:  # change capture: which of the changed keys the table no longer has
        resource.missing_keys = lambda: read_missing_keys(  # type: ignore[attr-defined]
            engine,
            table,
            plan.primary_key,
            changed_keys,
            resource.columns,  # type: ignore[arg-type]
        )
    # on Snowflake, JSON text (every JSON column's, with json_as_objects) lands as VARIANT objects;
    # parquet said outright, as tables loaded by the JSON-row route keep file_format=jsonl in the schema
    resource.apply_hints(
        schema_contract=SCHEMA_CONTRACT,
        additional_table_hints={PARSE_JSON_HINT: json_as_objects},
        file_format="parquet",
    )
    unconstrained: dict[str, Any] = {
        column.name: {"name": column.name, YIELDING: True}
        for column in table.columns
        if is_unconstrained_numeric(column.type) and column.name not in overrides
    }
    if unconstrained:  # loaded as decimal(38,9) before text was the default: stays so
        resource.apply_hints(columns=unconstrained)
    if overrides:
        resource.apply_hints(columns=overrides)
    if plan.soft_delete_column and soft_delete == "remove":
        # only merge applies hard_delete; a replace leaves soft-deleted rows out at the source, and
        # sets the hint False so the one kept in the schema from earlier merges does not warn
        resource.apply_hints(columns={plan.soft_delete_column: {"hard_delete": merging}})
    return resource


def close_connections(source: Any) -> None:
    """Close the PostgreSQL connections a built :func:`products_source` holds (its engine's pool and
    the ADBC connections its tables and key sweeps share); a run calls it when it is done with them."""
    resources = source.resources.values()
    engines = {id(engine): engine for r in resources if (engine := getattr(r, "engine", None)) is not None}
    for engine in engines.values():
        engine.dispose()


def _live_rows_only(column: str) -> Any:
    """A query adapter leaving out soft-deleted rows (a replace cannot delete them afterwards)."""

    def adapt(query: Any, table: sa.Table, _incremental: Any = None, _engine: Any = None) -> Any:
        if column not in table.c:
            return query
        return query.where(table.c[column].is_(None))

    return adapt


def _only_keys(key: tuple[str, ...], keys: set[tuple[str, ...]]) -> Any:
    """A query adapter reading only the rows of the changed keys (change capture)."""

    def adapt(query: Any, table: sa.Table, _incremental: Any = None, _engine: Any = None) -> Any:
        return query.where(changed_keys_condition(table, key, keys))

    return adapt


def clear_connection_errors(engine: sa.Engine) -> sa.Engine:
    """Make a failed connection raise :class:`ProductsDatabaseError` naming host and database."""
    url = engine.url
    password = url.password

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        try:
            return dialect.loaded_dbapi.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.Error as exc:
            reason = redact_text(str(exc).strip(), password_forms(password))
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
            reason = redact_text(str(exc), password_forms(self.engine.url.password))
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
