"""The single place that runs a dlt pipeline: resumable steps, run reports and logging.

Every ``pipelines/<name>.py`` calls :func:`run_pipeline`; every flow reaches it through its pipeline's
``run()``. It runs dlt's three steps one by one so that it can:

- **resume rather than restart**: load packages left pending by a failed normalise or load step are
  finished first; a retry (``retrying=True``) that finds such packages finishes them *without* reading
  the source again, so append never duplicates and merge/replace converge;
- **report**: rows per table, load ids, duration per step, destination, dataset and schema changes,
  plus the failing step and error, as a :class:`RunReport` that flows publish and CLIs print;
- **show progress**: a pipeline created without its own ``progress=`` gets the collector
  ``utils/progress.py`` picks (live lines on a terminal, a log line at an interval elsewhere).

No Prefect here: orchestration lives in ``utils/orchestration.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import dlt
from dlt.common.destination import TLoaderFileFormat
from dlt.common.pipeline import LoadInfo, NormalizeInfo
from dlt.common.runtime.collector import NullCollector
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource
from dlt.pipeline.exceptions import PipelineStepFailed

from utils.destinations import held_open
from utils.progress import PROGRESS_LOGGER, progress_collector

logger = logging.getLogger("data_pipelines.runner")

Step = Literal["sync", "extract", "normalize", "load"]
LOADER_FILE_FORMAT: TLoaderFileFormat = "parquet"
"""Parquet for every destination: typed, compressed, what Snowflake's COPY and Snowpipe ingest fastest,
and DuckDB reads it natively (dlt's default for DuckDB, insert_values, is ten times slower).
A resource that sets its own ``file_format`` hint keeps it: parquet carries ``json`` columns as text,
which Snowflake stores as a VARIANT *string*, so resources whose JSON must be queryable as VARIANT
paths declare ``file_format="jsonl"`` (README, "Snowflake")."""


@dataclass
class RunReport:
    """What one pipeline run did, in a form a flow can publish and a CLI can print."""

    pipeline_name: str
    destination: str
    dataset_name: str
    status: Literal["succeeded", "failed"] = "succeeded"
    rows_by_table: dict[str, int] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    resumed_load_ids: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    new_tables: list[str] = field(default_factory=list)
    new_columns: dict[str, list[str]] = field(default_factory=dict)
    extracted: bool = False
    failed_step: str | None = None
    error: str | None = None

    @property
    def total_rows(self) -> int:
        """Rows loaded into data tables (dlt's own ``_dlt_*`` bookkeeping tables excluded)."""
        return sum(self.rows_by_table.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy, used as the flow task's result."""
        return {
            "pipeline_name": self.pipeline_name,
            "destination": self.destination,
            "dataset_name": self.dataset_name,
            "status": self.status,
            "rows_by_table": dict(self.rows_by_table),
            "total_rows": self.total_rows,
            "load_ids": list(self.load_ids),
            "resumed_load_ids": list(self.resumed_load_ids),
            "step_seconds": dict(self.step_seconds),
            "new_tables": list(self.new_tables),
            "new_columns": {k: list(v) for k, v in self.new_columns.items()},
            "extracted": self.extracted,
            "failed_step": self.failed_step,
            "error": self.error,
        }

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per data table: rows loaded and schema changes (the Prefect table artefact)."""
        tables = sorted(set(self.rows_by_table) | set(self.new_tables) | set(self.new_columns))
        return [
            {
                "table": table,
                "rows": self.rows_by_table.get(table, 0),
                "new columns": "(new table)"
                if table in self.new_tables
                else ", ".join(self.new_columns.get(table, [])),
            }
            for table in tables
        ]

    def summary_markdown(self) -> str:
        """Status, destination, load ids, duration per step and any failure, as markdown lines."""
        lines = [
            f"## {self.pipeline_name}: {self.status}",
            "",
            f"- destination: `{self.destination}`, dataset: `{self.dataset_name}`",
            f"- load ids: {', '.join(self.load_ids) or 'none'}",
        ]
        if self.resumed_load_ids:
            lines.append(f"- resumed pending packages: {', '.join(self.resumed_load_ids)}")
        if not self.extracted and self.status == "succeeded":
            lines.append("- source not read again: this run only finished pending packages")
        if self.step_seconds:
            steps = ", ".join(f"{step} {secs:.2f} s" for step, secs in self.step_seconds.items())
            lines.append(f"- duration: {steps}")
        if self.new_tables:
            lines.append(f"- new tables: {', '.join(self.new_tables)}")
        for table, columns in self.new_columns.items():
            lines.append(f"- new columns in `{table}`: {', '.join(columns)}")
        if self.failed_step:
            lines.append(f"- **failed at {self.failed_step}**: {self.error}")
        return "\n".join(lines) + "\n"

    def to_markdown(self) -> str:
        """A short markdown summary and a table of rows per table: the CLI's output."""
        lines = [self.summary_markdown().rstrip("\n")]
        lines += ["", "| table | rows |", "|---|---:|"]
        lines += [f"| {table} | {rows:,} |" for table, rows in sorted(self.rows_by_table.items())]
        if not self.rows_by_table:
            lines.append("| (no rows) | 0 |")
        return "\n".join(lines) + "\n"


SourceFactory = Callable[[], DltSource | Any]
START_HOOKS: list[Callable[[dlt.Pipeline], None]] = []
"""Called with the pipeline before each run (after dlt has set up its runtime and logger);
the orchestration layer uses it to route dlt's logs into the Prefect run log and to mirror the
run's progress into a Prefect progress artefact."""


class PipelineBusyError(RuntimeError):
    """Another run of the same pipeline is in progress; this one did not start and changed nothing."""


@contextmanager
def pipeline_lock(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Hold an exclusive lock on the pipeline's local folder, or fail at once with a clear message.

    Two processes sharing one pipeline folder (two CLI runs on one machine) would corrupt its state and
    pending packages. Across machines, flows add a Prefect concurrency limit on top of this.
    """
    os.makedirs(pipeline.pipelines_dir, exist_ok=True)
    path = os.path.join(pipeline.pipelines_dir, f".{pipeline.pipeline_name}.lock")
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise PipelineBusyError(
                f"pipeline {pipeline.pipeline_name} is already running ({holder}, lock {path}); "
                "this run did not start and changed nothing - wait for it to finish"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_pipeline(
    pipeline: dlt.Pipeline,
    source_factory: SourceFactory,
    *,
    retrying: bool = False,
    loader_file_format: TLoaderFileFormat = LOADER_FILE_FORMAT,
    **extract_kwargs: Any,
) -> RunReport:
    """Extract, normalise and load ``source_factory()`` with ``pipeline``, returning a report.

    Load packages a failed earlier run left behind are normalised and loaded first. When ``retrying``
    is true and such packages exist, the source is not read again: the retry finishes what the failed
    attempt extracted. ``extract_kwargs`` go to ``pipeline.extract`` (``write_disposition``, ``refresh``).
    Without pending packages, state and schemas are first synced from the destination when it holds
    a newer state than the local pipeline folder (as dlt's own ``run()`` does): an ephemeral worker
    then carries on from what was loaded instead of starting over.
    Raises dlt's ``PipelineStepFailed`` (with the report attached as ``run_report``) on failure.
    """
    report = RunReport(
        pipeline_name=pipeline.pipeline_name,
        destination=pipeline.destination.destination_name if pipeline.destination else "none",
        dataset_name=pipeline.dataset_name,
    )
    if isinstance(pipeline.collector, NullCollector):  # `dlt.pipeline(progress=...)` keeps its own
        pipeline.collector = progress_collector()
    for hook in START_HOOKS:
        hook(pipeline)
    with pipeline_lock(pipeline):
        return _run_steps(pipeline, source_factory, report, retrying, loader_file_format, extract_kwargs)


def _run_steps(
    pipeline: dlt.Pipeline,
    source_factory: SourceFactory,
    report: RunReport,
    retrying: bool,
    loader_file_format: TLoaderFileFormat,
    extract_kwargs: dict[str, Any],
) -> RunReport:
    if pipeline.config.restore_from_destination and not pipeline.dev_mode and not pipeline.has_pending_data:
        # As dlt's own run() does: on a fresh worker, state and schemas come back from the destination.
        # Not with pending packages: those are the newest truth, and dlt's sync would wipe them when
        # the first load never reached the destination.
        try:
            with _timed(report, "sync"):
                pipeline.sync_destination()
        except PipelineStepFailed as exc:  # e.g. the destination refused the credentials
            _report_failure(report, exc)
            raise
    before = _schema_snapshot(pipeline)
    try:
        if pipeline.has_pending_data:
            pending = [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]
            logger.warning(
                "%s: finishing %d pending load package(s) first", report.pipeline_name, len(pending)
            )
            report.resumed_load_ids = list(pending)
            _normalize_and_load(pipeline, report)
            if retrying:
                _add_schema_changes(report, before, _schema_snapshot(pipeline))
                return report
        with _timed(report, "extract"):
            try:
                data = source_factory()
            except Exception as exc:  # missing config, bad options: report it like any extract failure
                raise PipelineStepFailed(pipeline, "extract", None, exc, None) from exc  # type: ignore[arg-type]
            if _default_file_format(data, loader_file_format):
                pipeline.extract(data, **extract_kwargs)
            else:
                pipeline.extract(data, loader_file_format=loader_file_format, **extract_kwargs)
        report.extracted = True
        _normalize_and_load(pipeline, report)
    except PipelineStepFailed as exc:
        _add_schema_changes(report, before, _schema_snapshot(pipeline))
        _report_failure(report, exc)
        raise
    _add_schema_changes(report, before, _schema_snapshot(pipeline))
    logger.info("%s", report.to_markdown())
    return report


def describe_error(error: BaseException) -> str:
    """``Type: message``, naming the root cause's type when the message alone hides it.

    dlt wraps a source's exception (``ResourceExtractionError: ... caused an exception: products``);
    the root cause's type (``NoSuchTableError``) is often what tells a person what went wrong.
    """
    text = f"{type(error).__name__}: {error}"
    root = error
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    if root is not error and type(root).__name__ not in text:
        text += f" (caused by {type(root).__name__})"
    return text


def _report_failure(report: RunReport, exc: PipelineStepFailed) -> None:
    """Mark ``report`` failed at ``exc``'s step, attach it to ``exc`` and log the error."""
    report.status = "failed"
    report.failed_step = exc.step
    report.error = describe_error(exc.exception)
    exc.run_report = report  # type: ignore[attr-defined]
    logger.error("%s failed at %s: %s", report.pipeline_name, exc.step, report.error)


def _default_file_format(data: Any, file_format: TLoaderFileFormat) -> bool:
    """Give each resource in ``data`` without its own ``file_format`` hint ``file_format``.

    Returns False when ``data`` is not a dlt source or resource (plain data takes the format as is).
    """
    if isinstance(data, DltSource):
        resources: list[DltResource] = list(data.selected_resources.values())
    elif isinstance(data, DltResource):
        resources = [data]
    else:
        return False
    for resource in resources:
        if not (resource._hints or {}).get("file_format"):
            resource.apply_hints(file_format=file_format)
    return True


def _normalize_and_load(pipeline: dlt.Pipeline, report: RunReport) -> None:
    with _timed(report, "normalize"):
        normalize_info = pipeline.normalize()
    _add_row_counts(report, normalize_info)
    with _timed(report, "load"), held_open(pipeline.destination):
        load_info = pipeline.load()
    _add_load_info(report, load_info)


def _add_row_counts(report: RunReport, info: NormalizeInfo) -> None:
    for table, rows in info.row_counts.items():
        if not table.startswith("_dlt"):
            report.rows_by_table[table] = report.rows_by_table.get(table, 0) + rows


def _add_load_info(report: RunReport, info: LoadInfo) -> None:
    for package in info.load_packages:
        if package.load_id not in report.load_ids:
            report.load_ids.append(package.load_id)


def _schema_snapshot(pipeline: dlt.Pipeline) -> dict[str, set[str]]:
    """Data tables and their columns across the pipeline's schemas (dlt's own tables left out)."""
    snapshot: dict[str, set[str]] = {}
    for schema in pipeline.schemas.values():
        for table in schema.data_tables():
            snapshot[str(table["name"])] = {c for c in table.get("columns", {}) if not c.startswith("_dlt")}
    return snapshot


def _add_schema_changes(report: RunReport, before: dict[str, set[str]], after: dict[str, set[str]]) -> None:
    for table, columns in sorted(after.items()):
        if table not in before:
            report.new_tables.append(table)
        elif added := sorted(columns - before[table]):
            report.new_columns[table] = added


@contextmanager
def _timed(report: RunReport, step: Step) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        report.step_seconds[step] = report.step_seconds.get(step, 0.0) + time.perf_counter() - started


def failed_report(exc: BaseException) -> RunReport | None:
    """The report :func:`run_pipeline` attached to the exception it raised, if any."""
    report: RunReport | None = getattr(exc, "run_report", None)
    return report


def iso_date(value: str) -> dt.date:
    """An ``argparse`` type for ``YYYY-MM-DD`` dates, with an error a person can act on."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a YYYY-MM-DD date") from None


def explicit(**options: Any) -> dict[str, Any]:
    """The options that were given (not ``None``), so the others resolve from dlt config."""
    return {name: value for name, value in options.items() if value is not None}


def run_cli(run: Callable[[], RunReport]) -> int:
    """Run a pipeline from its ``python -m pipelines.<name>`` entry point and print the report.

    Returns the process exit code: 0 on success, 1 with the failing step and error on failure.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    PROGRESS_LOGGER.setLevel(logging.INFO)  # progress lines when there is no terminal (utils/progress.py)
    try:
        report = run()
    except PipelineBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PipelineStepFailed as exc:
        failed = failed_report(exc)
        if failed is not None:
            print(failed.to_markdown())
        print(f"error: {failed.error if failed else exc}", file=sys.stderr)
        return 1
    print(report.to_markdown())
    return 0
