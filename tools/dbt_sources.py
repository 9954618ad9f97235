"""The dbt package's sources (``dbt/models/sources/<pipeline>.yml``), from the declarations and the dlt
schemas committed beside them (``dbt/dlt_schemas/<pipeline>.schema.yaml``).

One dbt source per pipeline's dataset and one source table per raw table its dlt schema holds, nested
tables included: columns and data types from the schema, descriptions from the declaration and the
source's docstrings, the primary key as ``unique`` + ``not_null`` tests, freshness from the declared
bound. Database, schema and table names are Jinja that dbt resolves per target as the pipelines do:
on Snowflake the database of dlt's credentials (``RAW``) and dlt's upper-case names, on DuckDB the
profile's database (the warehouse file's stem) and dlt's lower-case names; the vars
``data_pipelines_database`` and ``data_pipelines_schemas`` override them.

The dlt schemas are committed rather than built on each render so that the output is deterministic and
offline: ``tests/dbt/test_dlt_schemas.py`` loads every pipeline from the look-alike APIs and databases
and fails when its schema's tables or columns differ from the committed file (``UPDATE_DLT_SCHEMAS=1``
rewrites them, in dlt's own export format). A pipeline with no committed schema yet (a new one) gets its
declared root tables without columns; ``python -m tools.dbt_sources export NAME`` writes the schema a
local run left. ``tools/deployments.py`` writes and checks the sources.
"""

from __future__ import annotations

import argparse
import ast
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import dlt
import yaml
from dlt.common.schema import Schema
from dlt.common.schema.typing import TTableSchema
from dlt.common.schema.utils import get_columns_names_with_prop, is_nested_table, new_table

from declarations import Declaration
from utils.metrics import METRICS_SCHEMA

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DBT_DIR: Final = REPO_ROOT / "dbt"
SCHEMAS_DIR: Final = DBT_DIR / "dlt_schemas"
SOURCES_DIR: Final = DBT_DIR / "models" / "sources"
LOAD_ID: Final = "_dlt_load_id"
LOADED_AT_QUERY: Final = (
    'select max(inserted_at) from {{ this.incorporate(path={"identifier": "_dlt_loads"}) }}'
    f" where status = 0 and schema_name <> '{METRICS_SCHEMA}'"
)
"""A dataset dlt loads into the warehouse: when its newest successful load finished, from the
``_dlt_loads`` table beside the source table - what ``utils/freshness.py`` and the hourly freshness check
read, so dbt and the check agree, even for a merge table that a load found nothing new for (and for
tables without ``_dlt_load_id``: dlt adds none to Arrow tables such as products'). A load of the run's
metrics (``utils/metrics.py``) describes a data load and is not one, so it does not count."""
LOADED_AT_FIELD: Final = f"to_timestamp(cast({LOAD_ID} as decimal(20, 6)))"
"""A table another loader fills from dlt's files (Snowpipe: ``RAW.EXCHANGE_RATES.RATES``, no
``_dlt_loads`` in the warehouse): when the newest row's load started. dlt's load id is the Unix time in
seconds (six decimals) as text; the same SQL runs on Snowflake (``TO_TIMESTAMP`` of a decimal: seconds
since the epoch, UTC) and DuckDB."""
ERROR_FACTOR: Final = 2
"""``warn_after`` is the declared bound, where the hourly freshness check already alerts the owner;
``error_after`` is this many bounds, so a downstream ``dbt build`` stops on abandoned data, not on one
late load."""
DLT_COLUMNS: Final = {
    "_dlt_load_id": "The dlt load that wrote the row: Unix time in seconds, as text (joins _dlt_loads).",
    "_dlt_id": "The row's unique id, assigned by dlt.",
    "_dlt_parent_id": "The _dlt_id of the parent row this nested row belongs to.",
    "_dlt_root_id": "The _dlt_id of the root table's row this nested row belongs to.",
    "_dlt_list_idx": "The row's position in its parent's list.",
}
EXPORT_HINT: Final = (
    "load it locally (`DLT__DESTINATION=duckdb uv run python -m pipelines.{name}`, from its look-alike),"
    " then `uv run python -m tools.dbt_sources export {name}` and add it to tests/dbt/test_dlt_schemas.py"
)
HEADER: Final = (
    "# GENERATED from declarations/{name}.yaml{schema} by `uv run python -m tools.deployments`:\n"
    "# do not edit by hand; CI fails when this file is stale.\n"
)


def schema_path(name: str) -> Path:
    return SCHEMAS_DIR / f"{name}.schema.yaml"


def load_schema(name: str) -> Schema:
    """Pipeline ``name``'s committed dlt schema; a clear error naming the file when there is none."""
    path = schema_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {EXPORT_HINT.format(name=name)}")
    return _read_schema(path, path.stat().st_mtime_ns)


@cache
def _read_schema(path: Path, version: int) -> Schema:
    """Each file parsed once per change (``--check`` renders twice)."""
    return Schema.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def export_schema(schema: Schema) -> str:
    """``schema`` as dlt exports it (``export_schema_path``: defaults removed), hashes emptied: they
    change with every load that evolves the schema (and look like secrets to the secret scan); dlt
    recomputes the hash when it reads the file."""
    exported = {**schema.to_dict(remove_defaults=True), "version_hash": "", "previous_hashes": []}
    return yaml.safe_dump(exported, sort_keys=False, allow_unicode=True)


def shape(schema: Schema) -> dict[str, Any]:
    """What the sources are built from: each data table's parent and columns (type, nullable, key)."""
    return {
        str(table["name"]): {
            "parent": table.get("parent"),
            "columns": {
                name: [c.get("data_type"), c.get("nullable", True), c.get("primary_key", False)]
                for name, c in table["columns"].items()
            },
        }
        for table in schema.data_tables()
    }


def dbt_period(bound: timedelta) -> dict[str, Any]:
    """A dbt freshness threshold for ``bound``: whole days, else hours, else minutes."""
    minutes = int(bound.total_seconds() // 60)
    for period, size in (("day", 1440), ("hour", 60), ("minute", 1)):
        if minutes % size == 0:
            return {"count": minutes // size, "period": period}
    raise AssertionError("unreachable: every bound is a whole number of minutes")


def per_target(local: str, snowflake: str) -> str:
    """Jinja that dbt renders to ``snowflake`` on a Snowflake target and to ``local`` elsewhere."""
    return jinja(f'"{snowflake}" if target.type == "snowflake" else "{local}"')


def jinja(expression: str) -> str:
    """``expression`` as a dbt Jinja value (rendered when dbt parses the project)."""
    return "{{ " + expression + " }}"


def _first_paragraph(doc: str | None) -> str:
    return " ".join(textwrap.dedent(doc or "").strip().split("\n\n")[0].split())


def summary(name: str) -> str:
    """The first paragraph of the source package's docstring (``sources/<name>/__init__.py``): what the
    tables hold, as the house layout asks every source to say. Read from the file, not imported: a
    source's imports (drivers, clients) are not the generator's business."""
    path = REPO_ROOT / "sources" / name / "__init__.py"
    return _first_paragraph(ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))))


def table_description(table: TTableSchema, root_description: str) -> str:
    if is_nested_table(table):
        parent = table.get("parent")
        return (
            f"Nested rows of {parent} (a list dlt moved to its own table): join _dlt_parent_id to "
            f"{parent}._dlt_id."
        )
    return root_description


def column_entry(name: str, column: dict[str, Any], key: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name}
    description = column.get("description") or DLT_COLUMNS.get(name)
    if description:
        entry["description"] = description
    entry["data_type"] = column.get("data_type")
    if len(key) == 1 and name in key:
        entry["data_tests"] = ["unique", "not_null"]
    elif name in key:
        entry["data_tests"] = ["not_null"]
    return entry


def table_entry(table: TTableSchema, root_description: str, by_field: bool) -> dict[str, Any]:
    name = str(table["name"])
    key = get_columns_names_with_prop(table, "primary_key")
    entry: dict[str, Any] = {
        "name": name,
        "identifier": per_target(name, snowflake_name(name)),
        "description": table_description(table, root_description),
    }
    if by_field and LOAD_ID not in table["columns"]:
        entry["config"] = {"freshness": None}  # no load id on this table (a nested one): its root has it
    if len(key) > 1:
        entry["data_tests"] = [{"data_pipelines_unique_key": {"arguments": {"columns": key}}}]
    entry["columns"] = [column_entry(n, dict(c), key) for n, c in table["columns"].items()]
    return entry


def snowflake_name(name: str) -> str:
    """How dlt names ``name`` on Snowflake: its identifiers fold to upper case."""
    return str(_snowflake_casefold()(name))


@cache
def _snowflake_casefold() -> Callable[[str], str]:
    return dlt.destinations.snowflake().capabilities().casefold_identifier


def source_name(declaration: Declaration) -> str:
    """The dataset as a warehouse schema name (dlt's snake case: ``exchange-rates`` -> ``exchange_rates``)."""
    naming = dlt.common.normalizers.naming.snake_case.NamingConvention()
    return str(naming.normalize_identifier(declaration.dataset))


def declared_tables(declaration: Declaration) -> list[TTableSchema]:
    """The declaration's root tables with no columns: a pipeline whose dlt schema is not committed yet
    (a new one, straight from the scaffolder) still gets its sources, freshness and lineage."""
    return [new_table(table) for table in declaration.tables]


def source_entry(declaration: Declaration, tables: list[TTableSchema]) -> dict[str, Any]:
    name = source_name(declaration)
    described = summary(declaration.name)
    by_field = declaration.destination == "filesystem"  # in the warehouse through Snowpipe, not dlt
    bound = declaration.freshness_bound
    on_snowflake = '(env_var("DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE", "RAW") | upper)'
    database = jinja(
        f'var("data_pipelines_database", {on_snowflake} if target.type == "snowflake" else target.database)'
    )
    default_schema = f'"{snowflake_name(name)}" if target.type == "snowflake" else "{name}"'
    schema_name = jinja(f'var("data_pipelines_schemas", {{}}).get("{name}", {default_schema})')
    return {
        "name": name,
        "description": (
            f"{declaration.description} Loaded by the {declaration.name} pipeline (pipelines/"
            f"{declaration.name}.py); owner: {declaration.owner}."
        ),
        "database": database,
        "schema": schema_name,
        "meta": {
            "owner": declaration.owner,
            "pipeline": declaration.name,
            "upstream": list(declaration.upstream),
            "schedules": [f"{s.cron} {s.timezone}" for s in declaration.schedules],
        },
        "config": {
            **({"loaded_at_field": LOADED_AT_FIELD} if by_field else {"loaded_at_query": LOADED_AT_QUERY}),
            "freshness": {
                "warn_after": dbt_period(bound),
                "error_after": dbt_period(bound * ERROR_FACTOR),
            },
        },
        "tables": [table_entry(t, described, by_field) for t in sorted(tables, key=lambda t: str(t["name"]))],
    }


def render_source(declaration: Declaration) -> str:
    """``dbt/models/sources/<pipeline>.yml`` for ``declaration``."""
    committed = schema_path(declaration.name).is_file()
    tables = load_schema(declaration.name).data_tables() if committed else declared_tables(declaration)
    body = {"version": 2, "sources": [source_entry(declaration, tables)]}
    text = yaml.safe_dump(body, sort_keys=False, width=110, allow_unicode=True, default_flow_style=False)
    name = declaration.name
    if committed:
        return HEADER.format(name=name, schema=f" and dbt/dlt_schemas/{name}.schema.yaml") + text
    missing = f"# No dlt schema committed yet, so no columns: {EXPORT_HINT.format(name=name)}.\n"
    return HEADER.format(name=name, schema="") + missing + text


def render(found: dict[str, Declaration]) -> dict[Path, str]:
    """Every generated sources file by path."""
    return {SOURCES_DIR / f"{name}.yml": render_source(found[name]) for name in sorted(found)}


def orphans(found: dict[str, Declaration]) -> list[Path]:
    """Generated sources files of pipelines no longer declared: to delete."""
    return sorted(p for p in SOURCES_DIR.glob("*.yml") if p.stem not in found)


def main(argv: Sequence[str] | None = None) -> int:
    """``export NAME``: write pipeline NAME's schema, as its last local run left it, to dbt/dlt_schemas/."""
    parser = argparse.ArgumentParser(prog="python -m tools.dbt_sources", description=main.__doc__)
    parser.add_argument("command", choices=["export"])
    parser.add_argument("name", help="a declared pipeline, loaded locally at least once")
    args = parser.parse_args(argv)
    try:
        pipeline = dlt.attach(pipeline_name=args.name)
    except Exception as exc:  # dlt raises its own "cannot restore pipeline" error
        reason = str(exc).splitlines()[0]
        print(f"{args.name}: no local pipeline to export ({reason}); {EXPORT_HINT.format(name=args.name)}")
        return 1
    path = schema_path(args.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(export_schema(pipeline.default_schema), encoding="utf-8")
    print(f"wrote {path.relative_to(DBT_DIR.parent)}; now run `uv run python -m tools.deployments`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
