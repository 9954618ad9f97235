"""Source columns that change type between runs: widen the warehouse column, or refuse before loading.

dlt freezes column types (``data_type: freeze``): a column whose type properties (type, precision,
scale, time zone, nullability) differ from what the pipeline's schema recorded fails the extract step
with ``DataValidationError ... data_types are frozen``, and dlt never alters a column it has created.
Ordinary migrations do exactly that (``numeric(10,2)`` to ``numeric(14,4)``, ``smallint`` to
``integer``, ``timestamp`` to ``timestamptz``, a ``NOT NULL`` dropped). Before extraction,
:func:`carry_schema_changes` compares each resource's column hints with the recorded schema and:

- **widens** what can hold every old and new value: the warehouse column is altered (``ALTER COLUMN
  ... TYPE`` on DuckDB; on Snowflake ``SET DATA TYPE`` where Snowflake allows it, otherwise a new
  column filled from the old one and renamed into its place), the staging copy of the table is dropped
  (dlt creates it again from the schema), and the recorded column takes the new type;
- **keeps** the recorded type when the incoming one is already inside it (a ``NOT NULL`` added, a
  column loaded before under an older type rule), hinting the resource to load into it;
- **refuses** the rest (narrowing, a type family change such as text to number, a changed key) with
  one error naming table, column, old and new type and what resolves it, before anything is read.

A column the source dropped stays in the warehouse; dlt loads NULL into it for new rows, so one that
was ``NOT NULL`` is made nullable. The rules are generic; the products pipeline uses them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

logger = logging.getLogger("data_pipelines.schema_evolution")

TYPE_PROPS: Final = ("data_type", "precision", "scale", "timezone")
YIELDING: Final = "x-yields-to-recorded-type"
"""A column hint marking the incoming type as a default that gives way to a type recorded by earlier
loads (a source's type rule changed, not the source column): the column keeps loading as recorded."""
INTEGER_BITS: Final = 64
"""A ``bigint`` hint without precision is 64 bits."""
MAX_DECIMAL_PRECISION: Final = 38


class SchemaChangeRefused(ValueError):
    """A source change the warehouse cannot take without losing or misreading data; nothing was loaded."""


@dataclass(frozen=True)
class ColumnChange:
    """One recorded column changed to carry a source change."""

    table: str
    column: str
    old: str
    new: str
    altered: bool
    """Whether the warehouse column was altered (False: only dlt's record changed)."""

    def __str__(self) -> str:
        return f"{self.table}.{self.column}: {self.old} -> {self.new}"


def describe(column: Mapping[str, Any]) -> str:
    """A column's type as people read it: ``decimal(10,2)``, ``bigint(32 bits)``, ``timestamp with
    time zone``, ``text``, with ``not null`` when it is."""
    kind = str(column.get("data_type"))
    precision, scale = column.get("precision"), column.get("scale")
    if kind == "decimal" and precision is not None:
        kind = f"decimal({precision},{scale or 0})"
    elif kind == "bigint" and precision is not None:
        kind = f"bigint({precision} bits)"
    elif kind in ("text", "binary") and precision is not None:
        kind = f"{kind}({precision})"
    elif kind == "timestamp":
        kind = "timestamp with time zone" if column.get("timezone", True) else "timestamp without time zone"
    return kind + (" not null" if column.get("nullable") is False else "")


Verdict = Literal["same", "keep", "widen", "refuse"]


def _bits(column: Mapping[str, Any]) -> int:
    return int(column.get("precision") or INTEGER_BITS)


def _digits(column: Mapping[str, Any]) -> tuple[int, int]:
    """(integer digits, scale) of a decimal hint (dlt's default decimal without precision)."""
    precision = int(column.get("precision") or MAX_DECIMAL_PRECISION)
    scale = int(column.get("scale") or (0 if column.get("precision") else 9))
    return precision - scale, scale


def target_type(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Verdict, dict[str, Any]]:
    """What the warehouse column should be to take ``new`` values where it held ``old`` ones: the
    verdict and the type properties (``data_type``, ``precision``, ``scale``, ``timezone``)."""
    old_type = {prop: old.get(prop) for prop in TYPE_PROPS if old.get(prop) is not None}
    new_type = {prop: new.get(prop) for prop in TYPE_PROPS if new.get(prop) is not None}
    if "data_type" not in new_type or old_type == new_type:
        return "same", old_type
    kind, new_kind = old_type.get("data_type"), new_type["data_type"]
    if kind != new_kind:
        return ("keep", old_type) if new.get(YIELDING) else ("refuse", new_type)
    if kind == "bigint":
        if _bits(new) < _bits(old):
            return "refuse", new_type
        return "widen", {"data_type": "bigint"} if "precision" not in new_type else new_type
    if kind in ("text", "binary"):
        # unbounded wins; a shorter bound fits in the longer one
        if "precision" not in old_type:
            return "keep", old_type
        if "precision" not in new_type or new_type["precision"] >= old_type["precision"]:  # type: ignore[operator]
            return "widen", new_type
        return "keep", old_type
    if kind == "decimal":
        (old_int, old_scale), (new_int, new_scale) = _digits(old), _digits(new)
        if new_int <= old_int and new_scale <= old_scale:
            return "refuse", new_type  # narrower: every new value fits, but the source says it shrank
        integer, scale = max(old_int, new_int), max(old_scale, new_scale)
        if integer + scale > MAX_DECIMAL_PRECISION:
            return "refuse", new_type
        return "widen", {"data_type": "decimal", "precision": integer + scale, "scale": scale}
    if kind == "timestamp":
        if old_type.get("timezone") is False and new_type.get("timezone", True):
            return "widen", new_type
        if old_type.get("precision") != new_type.get("precision"):
            return "keep", old_type  # fractional-second digits: the warehouse keeps microseconds
        return "refuse", new_type
    if kind == "time" or kind == "double":
        return "keep", old_type
    return "refuse", new_type


def _resolution(
    table: str, column: str, old: Mapping[str, Any], pipeline_name: str, resource: str | None = None
) -> str:
    """What resolves a refused change of ``column`` (both named as in the source's settings; the
    ``dlt pipeline drop`` command names the ``resource``, by default ``table``)."""
    override = {
        "bigint": "bigint",
        "double": "double",
        "text": "text",
    }.get(str(old.get("data_type")))
    if old.get("data_type") == "decimal" and old.get("precision"):
        override = f"decimal({old['precision']},{old.get('scale') or 0})"
    keep = (
        f"keep loading it as {override} with the column override {{name = {json.dumps(table)}, columns ="
        f" {{{json.dumps(column)} = {json.dumps(override)}}}}} in [sources.{pipeline_name}] tables, or "
        if override
        else ""
    )
    return (
        f"{keep}reload the table with the new type: `uv run dlt pipeline {pipeline_name} drop"
        f" {shlex.quote(resource or table)}`"
        f" then `uv run python -m pipelines.{pipeline_name} --full-refresh`"
    )


@dataclass
class _Plan:
    changes: list[tuple[str, str, Any, dict[str, Any], dict[str, Any], bool]]
    """(table, column, recorded column, target properties, resource hint, alter warehouse)"""
    refusals: list[tuple[str, str]]
    """(resource name, why)"""


def _plan(
    pipeline: dlt.Pipeline,
    source: Any,
    replacing: bool,
    skip: Collection[str] = (),
    setting_name: Callable[[Any], str] | None = None,
) -> _Plan:
    plan = _Plan([], [])
    stored = pipeline.schemas[source.schema.name]
    naming = stored.naming
    for resource in source.selected_resources.values():
        if resource.name in skip:
            continue
        refused = len(plan.refusals)
        changes = len(plan.changes)
        _plan_table(plan, pipeline, stored, naming, resource, replacing, setting_name)
        if len(plan.refusals) > refused:  # a table refused is carried not at all, not in part
            del plan.changes[changes:]
    return plan


def _plan_table(
    plan: _Plan,
    pipeline: dlt.Pipeline,
    stored: Any,
    naming: Any,
    resource: Any,
    replacing: bool,
    setting_name: Callable[[Any], str] | None = None,
) -> None:
    name = naming.normalize_tables_path(str(resource.table_name))  # as dlt names it
    table = stored.tables.get(name)
    if not table or not table.get("columns"):
        return
    recorded: dict[str, Any] = {
        column: hint for column, hint in table["columns"].items() if not column.startswith("_dlt")
    }
    # the resource's hints carry the source's names; the schema records them normalised
    incoming = {
        naming.normalize_identifier(column): {**hint, "source_name": column}
        for column, hint in resource.compute_table_schema()["columns"].items()
    }
    source_table = setting_name(resource) if setting_name else str(resource.table_name)
    source_names = {column: hint["source_name"] for column, hint in incoming.items()}
    old_key = sorted(column for column, hint in recorded.items() if hint.get("primary_key"))
    old_source_key = [source_names.get(column, column) for column in old_key]
    new_key = sorted(column for column, hint in incoming.items() if hint.get("primary_key"))
    if old_key and old_key != new_key and not replacing:
        plan.refusals.append(
            (
                resource.name,
                f"{name}: the primary key changed from ({', '.join(old_key)}) to"
                f" ({', '.join(new_key) or 'none'}); merging on it would keep rows merged on the old key."
                f" Reload the table: `uv run python -m pipelines.{pipeline.pipeline_name} --full-refresh`,"
                f" or keep the old key with {{name = {json.dumps(source_table)}, primary_key ="
                f" {json.dumps(old_source_key)}}} in"
                f" [sources.{pipeline.pipeline_name}] tables",
            )
        )
    for column, old in recorded.items():
        new = incoming.get(column)
        if new is None:  # dropped in the source: stays, NULL for new rows
            if old.get("nullable") is False and not old.get("primary_key"):
                plan.changes.append((name, column, old, {"nullable": True}, {}, True))
            continue
        if "data_type" not in old:
            continue  # recorded without a type yet (a hint only): dlt completes it
        verdict, target = target_type(old, new)
        if verdict == "refuse":
            plan.refusals.append(
                (
                    resource.name,
                    f"{name}.{column}: the source changed it from {describe(old)} to"
                    f" {describe(new)}, which the warehouse column cannot take as it is; "
                    + _resolution(
                        source_table, new["source_name"], old, pipeline.pipeline_name, resource.name
                    ),
                )
            )
            continue
        hint: dict[str, Any] = {}
        alter = verdict == "widen"
        if verdict in ("keep", "widen"):  # the resource loads into the warehouse column's type
            hint.update({prop: target.get(prop) for prop in TYPE_PROPS})
        properties = dict(target) if verdict == "widen" else {}
        if old.get("nullable") is False and new.get("nullable", True) is not False:
            properties["nullable"] = True
            alter = True
        elif old.get("nullable", True) is not False and new.get("nullable") is False:
            hint["nullable"] = True  # a NOT NULL added in the source: the warehouse stays nullable
        if hint:
            hint["resource"] = (resource, new["source_name"])
        if properties or hint:
            plan.changes.append((name, column, old, properties, hint, alter))


def carry_schema_changes(
    pipeline: dlt.Pipeline,
    source: Any,
    *,
    replacing: bool = False,
    refused: dict[str, str] | None = None,
    setting_name: Callable[[Any], str] | None = None,
) -> list[ColumnChange]:
    """Carry the source's column changes into the warehouse before ``source`` is extracted (see the
    module docstring); raise :class:`SchemaChangeRefused` listing every change it cannot carry.

    With ``refused`` (resource name -> why), a table with a change that cannot be carried is added to
    it instead, none of its changes carried, and the other tables' changes are carried; resources
    already in it are skipped. The caller leaves those tables out (``utils.runner.run_pipeline``'s
    ``failed_tables``). ``setting_name`` gives the name a resource's table has in the source's
    ``tables`` setting, for the overrides a refusal suggests (default: the resource's table name)."""
    if source.schema.name not in pipeline.schemas:
        return []  # nothing loaded yet
    plan = _plan(pipeline, source, replacing, skip=refused or (), setting_name=setting_name)
    if plan.refusals and refused is not None:
        by_table: dict[str, list[str]] = {}
        for resource_name, why in plan.refusals:
            by_table.setdefault(resource_name, []).append(why)
        for resource_name, whys in by_table.items():
            refused[resource_name] = (
                f"{SchemaChangeRefused.__name__}: {len(whys)} source change(s) cannot be carried"
                f" safely: {'; '.join(whys)}"
            )
    elif plan.refusals:
        raise SchemaChangeRefused(
            f"{pipeline.pipeline_name}: nothing was loaded; "
            + f"{len(plan.refusals)} source change(s) cannot be carried safely: "
            + "; ".join(why for _, why in plan.refusals)
        )
    if not plan.changes:
        return []
    stored = pipeline.schemas[source.schema.name]
    changes = []
    with _warehouse(pipeline, source.schema.name) as alter:
        for table, column, _old, properties, hint, needs_alter in plan.changes:
            recorded: Any = stored.tables[table]["columns"][column]
            before = describe(recorded)
            altered = False
            if properties:
                retyped = "data_type" in properties  # type properties the target lacks are dropped
                new_column = {k: v for k, v in recorded.items() if not (retyped and k in TYPE_PROPS)}
                new_column.update(properties)
                if needs_alter and alter is not None:
                    altered = alter(table, column, dict(recorded), new_column)
                recorded.clear()
                recorded.update(new_column)
            if hint:
                resource, source_name = hint.pop("resource")
                resource.apply_hints(columns={source_name: {"name": source_name, **hint}})
            if properties:
                changes.append(ColumnChange(table, column, before, describe(recorded), altered))
    if changes:
        pipeline.schemas.save_schema(stored)  # a new version: dlt updates both datasets' tables
        logger.warning(
            "%s: carried source column changes: %s", pipeline.pipeline_name, "; ".join(map(str, changes))
        )
    return changes


@contextlib.contextmanager
def _warehouse(pipeline: dlt.Pipeline, schema_name: str) -> Any:
    """An ``alter(table, column, old, new) -> bool`` on the pipeline's destination, or None when
    the destination is not SQL or holds nothing yet."""
    if pipeline.destination is None:
        yield None
        return
    with pipeline.destination_client(schema_name) as client:
        sql_client = getattr(client, "sql_client", None)
        if sql_client is None or not sql_client.has_dataset():
            yield None
            return
        yield _alterer(client, pipeline.destination.destination_name)


def _alterer(client: Any, destination: str) -> Callable[[str, str, dict[str, Any], dict[str, Any]], bool]:
    sql_client = client.sql_client
    mapper = client.capabilities.get_type_mapper()

    def alter(table: str, column: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        prepared = {"name": table, "columns": {column: new}, "write_disposition": "merge"}
        qualified = sql_client.make_qualified_table_name(table)
        name = sql_client.escape_column_name(column)
        statements = []
        if any(old.get(prop) != new.get(prop) for prop in TYPE_PROPS):
            db_type = mapper.to_destination_type(new, prepared)
            existing = set(client.get_storage_table(table)[1]) if destination != "duckdb" else set()
            statements += _type_change(
                destination, qualified, column, name, old, new, db_type, sql_client, existing
            )
        if old.get("nullable") is False and new.get("nullable") is not False:
            statements.append(f"ALTER TABLE {qualified} ALTER COLUMN {name} DROP NOT NULL")
        for statement in statements:
            sql_client.execute_sql(statement)
        # dlt creates the staging copy again from the schema (its recorded version changes)
        with sql_client.with_staging_dataset(), contextlib.suppress(DatabaseUndefinedRelation):
            if sql_client.has_dataset():
                sql_client.execute_sql(f"DROP TABLE IF EXISTS {sql_client.make_qualified_table_name(table)}")
        return bool(statements)

    return alter


def _type_change(
    destination: str,
    qualified: str,
    column: str,
    name: str,
    old: dict[str, Any],
    new: dict[str, Any],
    db_type: str,
    sql_client: Any,
    existing: set[str],
) -> list[str]:
    """Statements changing the column's type to ``db_type`` in place, keeping every value.

    ``existing`` holds the table's column names as the warehouse reports them: a rebuild that a kill
    interrupted (Snowflake commits each statement) is finished rather than started again.
    """
    naive_to_utc = old.get("data_type") == "timestamp" and old.get("timezone") is False
    if destination == "duckdb":
        using = f" USING ({name} AT TIME ZONE 'UTC')" if naive_to_utc else ""
        return [f"ALTER TABLE {qualified} ALTER COLUMN {name} TYPE {db_type}{using}"]
    in_place = (
        old.get("data_type") in ("text", "binary")
        or (old.get("data_type") == "decimal" and _digits(old)[1] == _digits(new)[1])
        or old.get("data_type") == "bigint"
    )
    if in_place:  # Snowflake alters in place only a longer text or a wider number of the same scale
        return [f"ALTER TABLE {qualified} ALTER COLUMN {name} SET DATA TYPE {db_type}"]
    # otherwise a new column filled from the old one (dlt's Snowflake sessions are in UTC, so a naive
    # timestamp is read as UTC) takes its place
    spare_name = f"{column}__widened"
    spare = sql_client.escape_column_name(spare_name)
    present = {existing_name.casefold() for existing_name in existing}
    has_old, has_spare = column.casefold() in present, spare_name.casefold() in present
    rename = f"ALTER TABLE {qualified} RENAME COLUMN {spare} TO {name}"
    if has_spare and not has_old:  # killed after the old column was dropped: its values are in spare
        return [rename]
    return [
        *([] if has_spare else [f"ALTER TABLE {qualified} ADD COLUMN {spare} {db_type}"]),
        f"UPDATE {qualified} SET {spare} = CAST({name} AS {db_type})",
        f"ALTER TABLE {qualified} DROP COLUMN {name}",
        rename,
    ]
