"""Which PostgreSQL tables to load, and how: discovery, primary keys and cursors, refused settings.

The ``tables`` setting names tables or glob patterns (``"*"``, ``"order_*"``), minus ``exclude``
patterns. Patterns match the tables and partitioned tables of the schema (views and materialized
views too with ``views = true``); partitions are left out, their rows arrive through their parent.
Plain names must exist, whatever their kind. Every selected table is reflected in one pass
(SQLAlchemy's bulk reflection), and each gets:

- a **primary key**: the table's own ``primary_key`` setting; else its primary-key constraint
  (composite too); else the source-wide ``primary_key`` when the table has those columns; else none;
- a **cursor**: the table's own ``cursor`` setting (``""`` for none); else the first column present of
  the source-wide ``cursor`` list;
- a **load**: ``merge`` on the key (incremental on the cursor, or in full without one), or, for a
  table without a key, ``replace`` (one transaction swaps all its rows each run): merge without a key
  would append every row again on every run.

With several schemas (``schema = ["public", "billing"]``) each is discovered the same way; an entry
naming a listed schema (``"billing.*"``) applies there only, any other in every schema. Tables of the
first schema load under their own names, those of the others as ``<schema>__<table>``; two tables that
would load into one warehouse table are refused.

A setting that cannot be honoured exactly (a key or cursor column the table does not have, a cursor on
a table without a key) is refused before anything is read, naming the table and the setting.
Nothing here is specific to the batch load: the change-data-capture path reuses it.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa

TABLE_SETTINGS: Final = frozenset({"name", "primary_key", "cursor", "soft_delete_column", "columns"})
DEFAULT_CURSORS: Final = ("updated_at", "modified_at", "last_modified_at", "changed_at")
"""Column names tried in order as a table's cursor when it sets none of its own."""
TABLE_KINDS: Final = {"r": "table", "p": "partitioned table", "f": "foreign table"}
VIEW_KINDS: Final = {"v": "view", "m": "materialized view"}
GLOB_CHARACTERS: Final = frozenset("*?[")

RELATIONS_SQL: Final = sa.text(
    "select c.relname, c.relkind from pg_catalog.pg_class c"
    " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
    " where n.nspname = :schema and c.relkind in ('r', 'p', 'f', 'v', 'm') and not c.relispartition"
    " order by c.relname"
)


class TableSettingError(ValueError):
    """A table setting that cannot be honoured exactly; raised before anything is read or loaded."""


@dataclass(frozen=True)
class LoadPlan:
    """How one table loads: its key (empty: none), cursor, soft-delete column and column overrides,
    and where it is: its PostgreSQL schema and the resource (and warehouse table) it loads as."""

    name: str
    kind: str
    primary_key: tuple[str, ...]
    cursor: str | None
    soft_delete_column: str | None
    columns: Mapping[str, str] = field(default_factory=dict)
    schema: str = "public"
    resource_name: str = ""
    """The dlt resource and warehouse table name (before dlt normalises it); ``name`` when empty."""

    @property
    def resource(self) -> str:
        return self.resource_name or self.name

    @property
    def disposition(self) -> str:
        """``merge`` on the key, or ``replace`` for a table without one."""
        return "merge" if self.primary_key else "replace"


@dataclass(frozen=True)
class Defaults:
    """Source-wide settings a table falls back to."""

    primary_key: tuple[str, ...] = ()
    cursors: tuple[str, ...] = DEFAULT_CURSORS
    soft_delete_column: str | None = "deleted_at"


def is_pattern(name: str) -> bool:
    return any(character in GLOB_CHARACTERS for character in name)


def listing(value: Any) -> list[Any]:
    """A list setting as given in TOML, or as text: a JSON list, or comma-separated names."""
    if value is None:
        return []
    if isinstance(value, str):
        if value.strip().startswith("["):
            return list(json.loads(value))
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value)


def as_names(value: Any) -> tuple[str, ...]:
    """A key or cursor setting (a name, a list of names, ``""`` or ``[]``) as a tuple of names."""
    return tuple(str(item) for item in listing(value))


def parse_tables(tables: Any) -> list[dict[str, Any]]:
    """The ``tables`` setting as a list of ``{name, ...}`` entries (names may be glob patterns)."""
    tables = listing(tables)
    entries = []
    for item in tables:
        if isinstance(item, str):
            entries.append({"name": item})
            continue
        if not isinstance(item, Mapping) or not item.get("name"):
            raise TableSettingError(
                f"sources.products.tables: {item!r} is neither a table name nor a table with a name"
            )
        unknown = set(item) - TABLE_SETTINGS
        if unknown:
            raise TableSettingError(
                f"sources.products.tables: unknown setting(s) {sorted(unknown)} for {item['name']}"
            )
        entries.append(dict(item))
    if not entries:
        raise TableSettingError("sources.products.tables is empty: name at least one table or pattern")
    return entries


def list_relations(connection: sa.Connection, schema: str) -> dict[str, str]:
    """Every table, partitioned table, foreign table, view and materialized view of ``schema`` (name
    -> kind), partitions left out."""
    rows = connection.execute(RELATIONS_SQL, {"schema": schema})
    kinds = {**TABLE_KINDS, **VIEW_KINDS}
    return {str(name): kinds[str(kind)] for name, kind in rows}


def select_tables(
    relations: Mapping[str, str],
    entries: Sequence[Mapping[str, Any]],
    exclude: Sequence[str] = (),
    views: bool = False,
    schema: str = "public",
    *,
    plain_may_be_missing: bool = False,
) -> dict[str, dict[str, Any]]:
    """The selected tables in name order, each with its own settings (later entries win).
    ``plain_may_be_missing``: a plain name missing here is no error (several schemas are listed, and
    the caller checks that it exists in one of them)."""
    selected: dict[str, dict[str, Any]] = {}
    for entry in entries:
        pattern = str(entry["name"])
        if is_pattern(pattern):
            matches = [
                name
                for name, kind in relations.items()
                if fnmatch.fnmatchcase(name, pattern) and (views or kind not in VIEW_KINDS.values())
            ]
        elif pattern in relations:
            matches = [pattern]
        elif plain_may_be_missing:
            matches = []
        else:
            raise TableSettingError(
                f"sources.products.tables: {schema}.{pattern} does not exist (or the user cannot see it);"
                " remove it from tables or check the schema setting"
            )
        for name in matches:
            settings = {key: value for key, value in entry.items() if key != "name"}
            selected[name] = {**selected.get(name, {}), **settings}
    for pattern in exclude:
        for name in [name for name in selected if fnmatch.fnmatchcase(name, pattern)]:
            del selected[name]
    return dict(sorted(selected.items()))


def plan_table(
    table: sa.Table,
    kind: str,
    settings: Mapping[str, Any],
    defaults: Defaults,
    *,
    schema: str | None = None,
    resource_name: str = "",
) -> LoadPlan:
    """The load plan of one reflected table (see the module docstring for the rules)."""
    name = str(table.name)
    columns = set(table.columns.keys())

    def missing(setting: str, wanted: Sequence[str]) -> None:
        absent = [column for column in wanted if column not in columns]
        if absent:
            raise TableSettingError(
                f"sources.products.tables: {name}.{setting} names {', '.join(absent)}, which {name}"
                f" does not have (columns: {', '.join(sorted(columns))}); correct {setting} for"
                f' {{name = "{name}"}}'
            )

    if "primary_key" in settings:
        key = as_names(settings["primary_key"])
        missing("primary_key", key)
    elif table.primary_key.columns:
        key = tuple(str(column.name) for column in table.primary_key.columns)
    elif defaults.primary_key and all(column in columns for column in defaults.primary_key):
        key = defaults.primary_key
    else:
        key = ()
    if "cursor" in settings:
        cursor = settings["cursor"] or None
        if cursor is not None:
            missing("cursor", [cursor])
            if not key:
                raise TableSettingError(
                    f"sources.products.tables: {name} has no primary key, so rows read by cursor "
                    f"{cursor!r} cannot be merged and would load twice; give {name} a primary_key, or"
                    f' set cursor = "" to replace the whole table each run'
                )
    else:
        cursor = next((candidate for candidate in defaults.cursors if candidate in columns), None)
        if not key:
            cursor = None  # replaced in full each run
    if "soft_delete_column" in settings:
        soft_delete = settings["soft_delete_column"] or None
        if soft_delete is not None:
            missing("soft_delete_column", [soft_delete])
    else:
        soft_delete = defaults.soft_delete_column if defaults.soft_delete_column in columns else None
    overrides = settings.get("columns") or {}
    missing("columns", list(overrides))
    return LoadPlan(
        name,
        kind,
        key,
        cursor,
        soft_delete,
        dict(overrides),
        schema=schema or str(table.schema or "public"),
        resource_name=resource_name,
    )


def discover(
    engine: sa.Engine,
    schema: str,
    tables: Any,
    defaults: Defaults,
    *,
    exclude: Sequence[str] = (),
    views: bool = False,
) -> tuple[sa.MetaData, list[LoadPlan]]:
    """Select, reflect (in one pass) and plan the tables of one schema the settings ask for."""
    metadata, plans = discover_schemas(engine, [schema], tables, defaults, exclude=exclude, views=views)
    return metadata[schema], plans


def as_schemas(value: Any) -> list[str]:
    """The ``schema`` setting as a list: a name, or a list of names (in TOML or as a JSON list)."""
    if isinstance(value, str) and not value.strip().startswith("["):
        return [value]
    schemas = [str(item) for item in listing(value)]
    if not schemas or len(set(schemas)) != len(schemas):
        raise TableSettingError(f"sources.products.schema = {value!r}: name one schema, or several once each")
    return schemas


def split_name(pattern: str, schemas: Sequence[str]) -> tuple[str | None, str]:
    """``(schema, table pattern)`` of a ``tables`` or ``exclude`` entry: ``billing.*`` names a listed
    schema; a pattern without one (or whose prefix is not a listed schema) matches in every schema."""
    prefix, dot, rest = pattern.partition(".")
    if dot and prefix in schemas:
        return prefix, rest
    return None, pattern


def resource_name(schema: str, table: str, schemas: Sequence[str]) -> str:
    """The resource (and warehouse table) a table loads as: its own name in the first listed schema,
    ``<schema>__<table>`` in the others (dlt then normalises it: ``billing__order_items``)."""
    return table if schema == schemas[0] else f"{schema}__{table}"


def refuse_collisions(plans: Sequence[LoadPlan], normalise: Any) -> None:
    """Refuse, before anything is read, two tables that would load into one warehouse table."""
    seen: dict[str, LoadPlan] = {}
    for plan in plans:
        table = normalise(plan.resource)
        if (other := seen.setdefault(table, plan)) is not plan:
            raise TableSettingError(
                f"sources.products.tables: {other.schema}.{other.name} and {plan.schema}.{plan.name}"
                f" would both load into the warehouse table {table}; leave one out with exclude"
                f' (exclude = ["{plan.schema}.{plan.name}"])'
            )


def discover_schemas(
    engine: sa.Engine,
    schemas: Sequence[str],
    tables: Any,
    defaults: Defaults,
    *,
    exclude: Sequence[str] = (),
    views: bool = False,
) -> tuple[dict[str, sa.MetaData], list[LoadPlan]]:
    """Select, reflect (one pass per schema) and plan the tables of ``schemas`` the settings ask for:
    one ``MetaData`` per schema (dlt's ``sql_table`` looks tables up in their schema's), and the plans
    in schema order, then name order."""
    entries = parse_tables(tables)
    metadata: dict[str, sa.MetaData] = {}
    selected: dict[tuple[str, str], dict[str, Any]] = {}
    kinds: dict[tuple[str, str], str] = {}
    with engine.connect() as connection:
        relations = {schema: list_relations(connection, schema) for schema in schemas}
        for schema in schemas:
            own = _entries_for(entries, schema, schemas)
            mine = select_tables(
                relations[schema],
                own,
                [
                    table
                    for where, table in (split_name(p, schemas) for p in exclude)
                    if where in (None, schema)
                ],
                views,
                schema,
                plain_may_be_missing=len(schemas) > 1,
            )
            selected.update({(schema, name): settings for name, settings in mine.items()})
            kinds.update({(schema, name): relations[schema][name] for name in mine})
            metadata[schema] = sa.MetaData(schema=schema)
            if mine:
                metadata[schema].reflect(
                    connection, schema=schema, only=list(mine), views=True, resolve_fks=False
                )
    if len(schemas) > 1:
        _refuse_missing(entries, schemas, relations)
    plans = [
        plan_table(
            metadata[schema].tables[f"{schema}.{name}"],
            kinds[(schema, name)],
            settings,
            defaults,
            schema=schema,
            resource_name=resource_name(schema, name, schemas),
        )
        for (schema, name), settings in selected.items()
    ]
    return metadata, plans


def _entries_for(
    entries: Sequence[Mapping[str, Any]], schema: str, schemas: Sequence[str]
) -> list[dict[str, Any]]:
    """The ``tables`` entries that apply in ``schema``, their names without the schema."""
    own = []
    for entry in entries:
        where, name = split_name(str(entry["name"]), schemas)
        if where in (None, schema):
            own.append({**entry, "name": name})
    return own


def _refuse_missing(
    entries: Sequence[Mapping[str, Any]], schemas: Sequence[str], relations: Mapping[str, Mapping[str, str]]
) -> None:
    """A plain name (not a pattern) must exist in at least one listed schema (or in the one it names)."""
    for entry in entries:
        where, name = split_name(str(entry["name"]), schemas)
        if is_pattern(name):
            continue
        if not any(name in relations[schema] for schema in ([where] if where else schemas)):
            raise TableSettingError(
                f"sources.products.tables: {entry['name']} does not exist in {', '.join(schemas)} (or the"
                " user cannot see it); remove it from tables or check the schema setting"
            )
