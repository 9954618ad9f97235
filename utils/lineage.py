"""Lineage: each successful load claims the destination tables it wrote as Prefect assets.

:func:`materialise` runs one Prefect materialising task (``prefect.assets.materialize``) for the tables a
load wrote, built when the load has finished, because only then are the tables known: a run that wrote
nothing to a table (an incremental run with no changes, a subset of HubSpot objects) does not claim it,
and the nested tables dlt creates (``contacts__associations``) are claimed as well. Prefect emits one
``prefect.asset.materialization.succeeded`` event per table, with the pipeline's upstream (its
declaration's ``upstream``) as related resources of role ``asset``. A failed load claims nothing.

Keys are the ones prefect-dbt gives the same relation (``prefect_dbt.utilities.format_resource_id``:
``<adapter type>://<database>/<schema>/<table>``, the relation name dbt renders with its dots as slashes),
so a dbt model reading a raw table through the sources in ``dbt/`` lists the load's asset as its
upstream. Names are as the destination spells them (dlt folds identifiers to upper case on Snowflake):

- Snowflake: ``snowflake://<DATABASE>/<SCHEMA>/<TABLE>``, such as ``snowflake://RAW/CURRENCIES/CURRENCIES``
  (the database from the destination's credentials; never an account, user, password or key);
- DuckDB: ``duckdb://<file stem>/<schema>/<table>``, such as ``duckdb://local/currencies/currencies``
  (dbt-duckdb names a database file's catalog after its stem);
- filesystem (S3): ``<bucket_url>/<dataset>/<table>``, such as ``s3://bucket/exchange-rates/rates``.

Owner and description come from ``declarations/<name>.yaml``; rows loaded, load ids and new
columns of the run are the materialisation's metadata (the event's payload), with the table's volume
and schema check results (``checks``, :mod:`utils.checks`) on the metrics the run recorded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Final

import dlt
import pyarrow.parquet as pq
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.common.pipeline import NormalizeInfo
from prefect.assets import Asset, AssetProperties, add_asset_metadata, materialize

from declarations import Declaration, declaration
from utils.checks import table_checks
from utils.report import RunReport

logger = logging.getLogger("data_pipelines.lineage")

MATERIALISED_BY: Final = "dlt"
"""Named on every materialisation as the tool that wrote the tables (role ``asset-materialized-by``)."""
_NOT_IN_KEYS: Final = re.compile(r"[\s#?&%\"'<>\[\]{}|\\^`]")
"""Characters Prefect refuses in asset keys (and a few that only confuse URIs)."""


@dataclass(frozen=True)
class Materialisation:
    """What one successful load claims: a key per table written, the upstream keys and the metadata."""

    pipeline_name: str
    tables: dict[str, Asset]
    """dlt table name -> the destination table as an asset (key and properties)."""
    upstream: list[Asset]
    metadata: dict[str, dict[str, Any]]
    """Asset key -> the run's facts about that table."""


def written_tables(report: RunReport, pipeline: dlt.Pipeline) -> dict[str, int | None]:
    """The data tables the run's load packages wrote, with their rows (``None``: not known).

    Rows come from dlt's normalise metrics of each package this attempt normalised (the run report).
    A retry that only loads the package a failed attempt normalised has none for it: that package's
    completed load jobs name its tables, and their parquet files' footers hold the rows.
    """
    rows: dict[str, int | None] = {t: n for t, n in report.rows_by_table.items() if n}
    normalised_here = set(_normalised_load_ids(pipeline))
    for load_id in report.load_ids:
        if load_id in normalised_here:
            continue
        for table, count in _package_rows(pipeline, load_id).items():
            known = rows.get(table, 0)
            rows[table] = None if known is None or count is None else known + count
    return {t: rows[t] for t in sorted(rows) if not t.startswith("_dlt") and rows[t] != 0}


def _normalised_load_ids(pipeline: dlt.Pipeline) -> list[str]:
    """The packages the pipeline object's own trace normalised (this attempt)."""
    trace = pipeline.last_trace
    steps = trace.steps if trace else []
    return [i for s in steps if isinstance(s.step_info, NormalizeInfo) for i in s.step_info.metrics]


def _package_rows(pipeline: dlt.Pipeline, load_id: str) -> dict[str, int | None]:
    """Rows per table of the completed load jobs in package ``load_id`` (``None``: a file that is not
    parquet, the format every destination here prefers; see utils/destinations.py)."""
    try:
        package = pipeline.get_load_package_info(load_id)
    except Exception:  # the package folder is gone: nothing to claim from it
        logger.warning("load package %s not found: its tables are left out of the lineage", load_id)
        return {}
    rows: dict[str, int | None] = {}
    for job in package.jobs.get("completed_jobs", []):
        table, kind = job.job_file_info.table_name, job.job_file_info.file_format
        if kind == "sql":  # a follow-up statement (merge, replace from staging): its rows are in a file
            rows.setdefault(table, 0)
            continue
        count = pq.read_metadata(job.file_path).num_rows if kind == "parquet" else None
        known = rows.get(table, 0)
        rows[table] = None if known is None or count is None else known + count
    return rows


def table_keys(pipeline: dlt.Pipeline, tables: list[str]) -> dict[str, str]:
    """The asset key of each of ``tables`` on ``pipeline``'s destination (see the module docstring)."""
    if pipeline.destination is None:
        raise ValueError(f"pipeline {pipeline.pipeline_name} has no destination")
    client: Any = pipeline.destination_client()
    name = pipeline.destination.destination_name
    if name == "filesystem":
        base = str(client.config.bucket_url).rstrip("/")
        return {t: _key(f"{base}/{client.dataset_name}/{t}") for t in tables}
    credentials: Any = client.config.credentials  # read for account, database or file: never a secret
    paths = {t: client.sql_client.make_qualified_table_name_path(t, quote=False) for t in tables}
    if name == "snowflake":
        database = str(credentials.database).upper()
        return {t: _key(f"snowflake://{database}/{'/'.join(p)}") for t, p in paths.items()}
    if name == "duckdb":
        catalog = PurePath(str(credentials.database)).stem
        return {t: _key(f"duckdb://{catalog}/{'/'.join(p)}") for t, p in paths.items()}
    raise ValueError(f"no asset key scheme for the {name!r} destination")


def upstream_keys(spec: Declaration) -> list[str]:
    """The declaration's upstream URIs, ``{host}`` and ``{database}`` filled from the source's credentials.

    Only host and database name are read from ``sources.<pipeline>.credentials``; an upstream whose
    placeholders cannot be filled (no credentials configured) is left out with a warning.
    """
    keys: list[str] = []
    for uri in spec.upstream:
        if "{" not in uri:
            keys.append(_key(uri))
            continue
        parts = _connection_parts(spec.name)
        try:
            keys.append(_key(uri.format(**parts)))
        except (KeyError, IndexError):
            logger.warning("%s: upstream %s left out of the lineage (no source credentials)", spec.name, uri)
    return keys


def _connection_parts(pipeline_name: str) -> dict[str, str]:
    """Host and database of ``sources.<pipeline>.credentials``: nothing that grants access."""
    value: Any = dlt.secrets.get(f"sources.{pipeline_name}.credentials")
    if value is None:
        return {}
    credentials = ConnectionStringCredentials()
    if isinstance(value, str):
        credentials.parse_native_representation(value)
    else:
        credentials.update(dict(value))
    host = credentials.host or (credentials.query or {}).get("host")  # a unix socket: ?host=<dir>
    parts = {"host": host, "database": credentials.database}
    return {name: str(part) for name, part in parts.items() if part}


def _key(uri: str) -> str:
    return _NOT_IN_KEYS.sub("_", uri)


def describe(report: RunReport, pipeline: dlt.Pipeline) -> Materialisation:
    """The assets and metadata a successful ``report`` of ``pipeline`` claims."""
    spec = declaration(report.pipeline_name)
    tables = written_tables(report, pipeline)
    keys = table_keys(pipeline, list(tables))
    properties = AssetProperties(description=spec.description, owners=[spec.owner])
    assets = {
        table: Asset(key=key, properties=properties.model_copy(update={"name": _display_name(key)}))
        for table, key in keys.items()
    }
    metadata = {
        keys[table]: {
            "pipeline": report.pipeline_name,
            "destination": report.destination,
            "table": table,
            "rows_loaded": rows,
            "load_ids": list(report.load_ids),
            "new_table": table in report.new_tables,
            "new_columns": list(report.new_columns.get(table, [])),
        }
        for table, rows in tables.items()
    }
    add_checks(metadata, keys, pipeline, report.pipeline_name)
    upstream = [Asset(key=key) for key in upstream_keys(spec)]
    return Materialisation(report.pipeline_name, assets, upstream, metadata)


def add_checks(
    metadata: dict[str, dict[str, Any]], keys: dict[str, str], pipeline: dlt.Pipeline, pipeline_name: str
) -> None:
    """Each table's volume and schema check results (utils/checks.py) as its ``checks`` metadata.

    Judged on the load metrics the run has just recorded; unreadable metrics leave ``checks`` out with
    a warning rather than hold up the lineage.
    """
    try:
        results = table_checks(pipeline, pipeline_name)
    except Exception as exc:
        logger.warning("%s: check results left out of the lineage: %s", pipeline_name, exc)
        return
    for table, key in keys.items():
        metadata[key]["checks"] = [r.as_dict() for r in results if r.table == table]


def _display_name(key: str) -> str:
    """``SCHEMA.TABLE`` (or ``dataset/table`` on a bucket): the last two parts of the key."""
    *_, schema, table = key.split("/")
    return f"{schema}.{table}"


def materialise(report: RunReport, pipeline: dlt.Pipeline) -> bool:
    """Claim the tables ``report``'s run wrote as Prefect assets; ``False`` when there was nothing to
    claim or recording failed. Call it inside a task or flow, once the load has succeeded.

    Recording lineage never fails or repeats a load: a problem here is logged as a warning.
    """
    try:
        claim = describe(report, pipeline)
    except Exception as exc:
        logger.warning("%s: lineage not recorded: %s", report.pipeline_name, exc)
        return False
    if not claim.tables:
        return False
    record = materialize(
        *claim.tables.values(),
        by=MATERIALISED_BY,
        asset_deps=list(claim.upstream),
        name="materialise tables",
        task_run_name=f"materialise {report.pipeline_name} tables",
    )(_add_metadata)
    state = record(claim.metadata, return_state=True)
    if not state.is_completed():
        logger.warning("%s: lineage not recorded: %s", report.pipeline_name, state.message)
        return False
    return True


def _add_metadata(metadata: dict[str, dict[str, Any]]) -> int:
    """The materialising task's body: the tables are written already; attach the run's facts."""
    for key, facts in metadata.items():
        add_asset_metadata(key, facts)
    return len(metadata)
