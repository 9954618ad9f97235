"""Per-load metrics, kept in the warehouse beside the data: one row per table and load package.

After every successful run, :func:`record` loads into the run's own dataset, through the same dlt
pipeline, a table ``_pipeline_metrics``: for each load package the run loaded and each data table of
its schema, the rows loaded, the columns that held a value in at least one of those rows, the columns
the load added to the schema, the load id and the run's duration. It is what dlt's "running in
production" guide does with ``load_info`` and the trace (``pipeline.run([load_info],
table_name="_load_info")``), done with the runner's explicit steps. The history then lives where the
data lives: a worker without a disk, or another machine, reads the same figures
(:mod:`utils.checks` judges them).

The metrics are loaded by a dlt pipeline of their own (:func:`metrics_pipeline`) under a dlt schema
of their own (:data:`METRICS_SCHEMA`), into the same destination and dataset: the source's schema,
its contracts and the data pipeline's state stay as they were, and ``_dlt_loads`` tells a metrics
load from a data load by its ``schema_name``.

The figures come from the load package's own files, not from the warehouse: the rows and per-column
null counts in each parquet file's footer (a column read only when its footer holds no count), and a
pass over ``jsonl`` files. No query runs against the warehouse, so a metrics row costs the same on
every destination, the S3 filesystem one included (there the table is parquet files under
``<dataset>/_pipeline_metrics/``, beside ``_dlt_loads/`` and outside what Snowpipe ingests).

Recording never fails or repeats a load: a problem is logged as a warning, the metrics package is
dropped, and that load simply has no metrics row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import dlt
import pyarrow.parquet as pq
from dlt.common.schema.typing import TColumnSchema

from utils.destinations import held_open
from utils.report import RunReport

logger = logging.getLogger("data_pipelines.metrics")

METRICS_TABLE: Final = "_pipeline_metrics"
METRICS_SCHEMA: Final = "pipeline_metrics"
"""The dlt schema the metrics table belongs to (``_dlt_loads.schema_name`` of metrics loads)."""
WRITER_SUFFIX: Final = "_metrics"
COLUMNS: Final[dict[str, TColumnSchema]] = {
    "pipeline_name": {"data_type": "text", "nullable": False},
    "load_id": {"data_type": "text", "nullable": False},
    "table_name": {"data_type": "text", "nullable": False},
    "rows_loaded": {"data_type": "bigint", "nullable": False},
    "columns_present": {"data_type": "text", "nullable": True},
    "new_columns": {"data_type": "text", "nullable": False},
    "new_table": {"data_type": "bool", "nullable": False},
    "duration_seconds": {"data_type": "double", "nullable": True},
    "destination": {"data_type": "text", "nullable": False},
    "recorded_at": {"data_type": "timestamp", "nullable": False},
}
"""``columns_present`` and ``new_columns`` hold JSON lists of column names (text, so that every
destination stores and returns them alike); ``columns_present`` is NULL when the package's files
could not tell (a file format other than parquet or jsonl)."""


@dataclass
class TableLoad:
    """What one load package wrote into one table."""

    rows: int = 0
    non_null: dict[str, int] | None = field(default_factory=dict)
    """Column -> rows holding a value; ``None`` when a file could not be read for it."""

    def add(self, rows: int, non_null: dict[str, int] | None) -> None:
        self.rows += rows
        if self.non_null is None or non_null is None:
            self.non_null = None
            return
        for column, count in non_null.items():
            self.non_null[column] = self.non_null.get(column, 0) + count

    @property
    def present(self) -> list[str] | None:
        if self.non_null is None:
            return None
        return sorted(c for c, n in self.non_null.items() if n and not c.startswith("_dlt"))


def record(pipeline: dlt.Pipeline, report: RunReport) -> None:
    """Load the metrics of ``report``'s successful run into the pipeline's dataset (a no-op otherwise)."""
    if report.status != "succeeded" or not report.load_ids:
        return
    writer: dlt.Pipeline | None = None
    try:
        rows = list(metrics_rows(pipeline, report))
        if not rows:
            return
        writer = metrics_pipeline(pipeline)
        schema = (
            writer.schemas[METRICS_SCHEMA] if METRICS_SCHEMA in writer.schemas else dlt.Schema(METRICS_SCHEMA)
        )
        resource = dlt.resource(rows, name=METRICS_TABLE, write_disposition="append", columns=COLUMNS)
        writer.extract(resource, schema=schema)
        writer.normalize()
        with held_open(writer.destination):
            writer.load()
    except Exception as exc:  # metrics must never fail or repeat the load they describe
        logger.warning("%s: load metrics not recorded: %s", report.pipeline_name, exc)
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.drop_pending_packages()  # the next run must not find it pending
    finally:
        pipeline.activate()  # dlt.pipeline() made the writer the current pipeline


def metrics_pipeline(pipeline: dlt.Pipeline) -> dlt.Pipeline:
    """The dlt pipeline that writes ``pipeline``'s metrics: same destination and dataset, own state.

    A pipeline of its own (``<name>_metrics``, beside ``pipeline``'s folder) rather than ``pipeline``
    itself, so the data pipeline's state, schemas, trace and pending packages never hold metrics: a
    metrics load that fails leaves nothing for the next data run to finish, and the state dlt stores
    for the data pipeline is only ever written by data loads.
    """
    return dlt.pipeline(
        pipeline_name=f"{pipeline.pipeline_name}{WRITER_SUFFIX}",
        pipelines_dir=pipeline.pipelines_dir,
        destination=pipeline.destination,
        dataset_name=pipeline.dataset_name,
    )


def metrics_rows(pipeline: dlt.Pipeline, report: RunReport) -> Iterator[dict[str, Any]]:
    """One row per (load package, data table) of the run; tables the package did not write get 0 rows."""
    now = dt.datetime.now(dt.UTC)
    duration = sum(report.step_seconds.values()) or None
    destination = pipeline.destination.destination_name if pipeline.destination else "none"
    for load_id in report.load_ids:
        try:
            package = pipeline.get_load_package_info(load_id)
        except Exception:  # the package folder is gone: nothing to measure
            logger.warning("%s: load package %s not found: no metrics for it", report.pipeline_name, load_id)
            continue
        if package.schema_name == METRICS_SCHEMA or package.schema_name not in pipeline.schemas:
            continue
        schema = pipeline.schemas[package.schema_name]
        tables = {str(t["name"]): TableLoad() for t in schema.data_tables(seen_data_only=True)}
        for job in package.jobs.get("completed_jobs", []):
            table = job.job_file_info.table_name
            if table in tables and job.job_file_info.file_format != "sql":
                rows, non_null = file_counts(Path(job.file_path), job.job_file_info.file_format)
                tables[table].add(rows, non_null)
        for table, load in sorted(tables.items()):
            if table.startswith("_dlt") or table == METRICS_TABLE:
                continue
            added = package.schema_update.get(table, {}).get("columns", {})
            yield {
                "pipeline_name": report.pipeline_name,
                "load_id": load_id,
                "table_name": table,
                "rows_loaded": load.rows,
                "columns_present": None if load.present is None else json.dumps(load.present),
                "new_columns": json.dumps(sorted(c for c in added if not c.startswith("_dlt"))),
                "new_table": table in report.new_tables,
                "duration_seconds": duration,
                "destination": destination,
                "recorded_at": now,
            }


def file_counts(path: Path, file_format: str) -> tuple[int, dict[str, int] | None]:
    """Rows in one load job file and the rows holding a value per column (``None``: cannot tell)."""
    if file_format == "parquet":
        return _parquet_counts(path)
    if file_format == "jsonl":
        return _jsonl_counts(path)
    return 0, None


def _parquet_counts(path: Path) -> tuple[int, dict[str, int]]:
    """From the footer: rows, and per top-level column rows minus nulls (read when not in the footer)."""
    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    nulls: dict[str, int | None] = {}
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            name = chunk.path_in_schema.split(".", 1)[0]
            stats = chunk.statistics
            known = nulls.get(name, 0)
            if stats is None or not stats.has_null_count or chunk.path_in_schema != name or known is None:
                nulls[name] = None  # nested or without statistics: count from the data
            else:
                nulls[name] = known + stats.null_count
    counts: dict[str, int] = {}
    for name in parquet.schema_arrow.names:
        null_count = nulls.get(name)
        if null_count is None:
            null_count = parquet.read(columns=[name]).column(name).null_count
        counts[name] = meta.num_rows - null_count
    return meta.num_rows, counts


def _jsonl_counts(path: Path) -> tuple[int, dict[str, int]]:
    """One pass over a (possibly gzipped) jsonl file: rows, and per key the rows with a non-null value."""
    with path.open("rb") as probe:
        zipped = probe.read(2) == b"\x1f\x8b"
    rows = 0
    counts: dict[str, int] = {}
    with gzip.open(path, "rt", encoding="utf-8") if zipped else path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            rows += 1
            for key, value in json.loads(line).items():
                if value is not None:
                    counts[key] = counts.get(key, 0) + 1
    return rows, counts
