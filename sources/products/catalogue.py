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
    """How one table loads: its key (empty: none), cursor, soft-delete column and column overrides."""

    name: str
    kind: str
    primary_key: tuple[str, ...]
    cursor: str | None
    soft_delete_column: str | None
    columns: Mapping[str, str] = field(default_factory=dict)

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
) -> dict[str, dict[str, Any]]:
    """The selected tables in name order, each with its own settings (later entries win)."""
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


def plan_table(table: sa.Table, kind: str, settings: Mapping[str, Any], defaults: Defaults) -> LoadPlan:
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
    return LoadPlan(name, kind, key, cursor, soft_delete, dict(overrides))


def discover(
    engine: sa.Engine,
    schema: str,
    tables: Any,
    defaults: Defaults,
    *,
    exclude: Sequence[str] = (),
    views: bool = False,
) -> tuple[sa.MetaData, list[LoadPlan]]:
    """Select, reflect (in one pass) and plan the tables the settings ask for."""
    entries = parse_tables(tables)
    with engine.connect() as connection:
        relations = list_relations(connection, schema)
        selected = select_tables(relations, entries, exclude, views, schema)
        metadata = sa.MetaData(schema=schema)
        if selected:
            metadata.reflect(connection, schema=schema, only=list(selected), views=True, resolve_fks=False)
    plans = [
        plan_table(metadata.tables[f"{schema}.{name}"], relations[name], settings, defaults)
        for name, settings in selected.items()
    ]
    return metadata, plans
