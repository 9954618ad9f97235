"""The single place that runs a dlt pipeline: resumable steps, run reports and logging.

Every ``pipelines/<name>.py`` calls :func:`run_pipeline`. It runs dlt's steps one by one so that it can:

- **resume rather than restart**: load packages left pending by a failed normalise or load step are
  finished first. Within one orchestrated run (the same :func:`attempt` key, which Prefect's retries of
  one task share) the source is then *not* read again: the retry finishes what the failed attempt
  extracted, so append never duplicates and merge/replace converge. A new run (a later schedule, a CLI
  call) finishes the leftovers and then extracts as usual. Pipelines know nothing of this;
- **report**: what the run did, as a :class:`~utils.report.RunReport` built from dlt's own trace
  (``utils/report.py``), which flows publish and CLIs print;
- **show progress**: a pipeline created without its own ``progress=`` gets the collector
  ``utils/progress.py`` picks (live lines on a terminal, a log line at an interval elsewhere);
- **leave out a failing table** (``failed_tables``, opt-in): when the extract fails inside one
  resource, it is extracted again without that resource, the others are normalised and loaded, and the
  run then fails naming each table left out (:class:`TablesLeftOut`).

No Prefect here: orchestration lives in ``utils/orchestration.py`` and reaches the runner only through
:func:`attempt`. Destination-specific tuning lives in ``utils/destinations.py``.
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
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.common.runtime.collector import NullCollector
from dlt.extract.exceptions import ResourceExtractionError
from dlt.extract.source import DltSource
from dlt.pipeline.exceptions import PipelineConfigMissing, PipelineStepFailed

from utils import metrics, vault_provider
from utils.destinations import held_open
from utils.progress import PROGRESS_LOGGER, progress_collector
from utils.report import RunReport, add_schema_changes, add_trace, describe_error, schema_snapshot

logger = logging.getLogger("data_pipelines.runner")

Step = Literal["sync", "extract", "normalize", "load"]


SourceFactory = Callable[[], DltSource | Any]

MAX_TABLES_LEFT_OUT = 10
"""Most resources one run leaves out: each costs an extract more, and past a few failing tables the
cause is rarely the tables (a role that lost its grants, a database going away)."""


class TablesLeftOut(RuntimeError):
    """Some tables failed and were left out of the run; every other table was loaded."""

    def __init__(self, pipeline_name: str, failures: dict[str, str]) -> None:
        self.failures = dict(failures)
        listed = "; ".join(f"{table}: {error}" for table, error in sorted(self.failures.items()))
        super().__init__(
            f"{pipeline_name}: {len(self.failures)} table(s) failed and were left out of this run, nothing"
            f" of them loaded and their cursors kept; every other table was loaded. {listed}"
        )


@dataclass(frozen=True)
class Attempt:
    """Who is running the pipeline: set by the orchestrator with :func:`attempt`, read by the runner."""

    key: str | None = None
    """Shared by every attempt of one run; ``None`` (a CLI call) makes every call a new run."""
    on_start: Callable[[dlt.Pipeline], None] | None = None
    """Called with the pipeline once dlt has set up its runtime (and its loggers), before any step."""


_ATTEMPT: ContextVar[Attempt | None] = ContextVar("data_pipelines_attempt", default=None)


@contextmanager
def attempt(key: str, *, on_start: Callable[[dlt.Pipeline], None] | None = None) -> Iterator[None]:
    """Run the ``with`` block as one attempt of the run ``key`` (see the module docstring)."""
    token = _ATTEMPT.set(Attempt(key, on_start))
    try:
        yield
    finally:
        _ATTEMPT.reset(token)


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
    failed_tables: dict[str, str] | None = None,
    **extract_kwargs: Any,
) -> RunReport:
    """Extract, normalise and load ``source_factory()`` with ``pipeline``, returning a report.

    Load packages a failed earlier run left behind are normalised and loaded first; see the module
    docstring for when the source is then read again. ``extract_kwargs`` go to ``pipeline.extract``
    (``write_disposition``, ``refresh``). Without pending packages, state and schemas are first synced
    from the destination when it holds a newer state than the local pipeline folder (as dlt's own
    ``run()`` does): an ephemeral worker then carries on from what was loaded instead of starting over.
    Raises dlt's ``PipelineStepFailed`` (with the report attached as ``run_report``) on failure.

    ``failed_tables`` (a dict, usually empty) turns on leaving out failing tables: a resource whose
    extraction fails (dlt's ``ResourceExtractionError`` names it) is added to it with its error, and the
    source is built and extracted again without it; the source factory may add tables too (resource
    name -> why), which are left out the same way. A failed extract commits no package and no state
    (dlt's ``extract`` rolls both back), so a table left out contributes nothing, not even its cursor.
    Once the others are loaded, the run fails at ``extract`` with :class:`TablesLeftOut`. Errors outside
    any resource (the source cannot be built, a connection refused to the whole database) fail the run
    as before; so do more than :data:`MAX_TABLES_LEFT_OUT` failing tables, and a failure that leaves
    nothing to extract (with that resource's own error). Only for merge, replace or incremental
    resources: a retry of such a run reads every table again, even after finishing a pending package.
    """
    vault_provider.register()  # the AWS Secrets Manager vault, when dlt's switch is on
    report = RunReport(
        pipeline_name=pipeline.pipeline_name,
        destination=pipeline.destination.destination_name if pipeline.destination else "none",
        dataset_name=pipeline.dataset_name,
    )
    if isinstance(pipeline.collector, NullCollector):  # `dlt.pipeline(progress=...)` keeps its own
        pipeline.collector = progress_collector()
    current = _ATTEMPT.get() or Attempt()
    if current.on_start is not None:
        current.on_start(pipeline)
    if failed_tables is not None:
        report.failed_tables = failed_tables  # filled as tables fail; shown whether the run fails or not
    with pipeline_lock(pipeline):
        started = dt.datetime.now(dt.UTC)
        if superseded := _superseded_packages(pipeline):
            logger.warning(
                "%s: dropping pending load package(s) %s: the destination holds a later load (another "
                "worker ran this pipeline since); carrying on from the destination's state instead",
                report.pipeline_name,
                ", ".join(superseded),
            )
            report.dropped_load_ids = superseded
            pipeline.drop()  # as a fresh worker: state and schemas come back from the destination
        before = schema_snapshot(pipeline)
        try:
            _run_steps(pipeline, source_factory, report, current.key, extract_kwargs, failed_tables)
        except PipelineStepFailed as exc:
            _report_failure(report, exc)
            raise
        finally:
            add_trace(report, pipeline, started)
            add_schema_changes(report, before, schema_snapshot(pipeline))
        metrics.record(pipeline, report)  # per-table load metrics into the dataset (utils/metrics.py)
    if failed_tables:  # the others are loaded: now the run fails, so that it is retried and alerted
        left_out = PipelineStepFailed(
            pipeline,
            "extract",
            None,  # type: ignore[arg-type]
            TablesLeftOut(report.pipeline_name, failed_tables),
            None,  # type: ignore[arg-type]
        )
        _report_failure(report, left_out)
        raise left_out
    logger.info("%s", report.to_markdown())
    return report


def _run_steps(
    pipeline: dlt.Pipeline,
    source_factory: SourceFactory,
    report: RunReport,
    run_key: str | None,
    extract_kwargs: dict[str, Any],
    failed_tables: dict[str, str] | None = None,
) -> None:
    if pipeline.config.restore_from_destination and not pipeline.dev_mode and not pipeline.has_pending_data:
        # As dlt's own run() does: on a fresh worker, state and schemas come back from the destination.
        # Not with pending packages: those are the newest truth, and dlt's sync would wipe them when
        # the first load never reached the destination. dlt does not trace this step, so it is timed here.
        synced = time.perf_counter()
        try:
            pipeline.sync_destination()
        finally:
            report.step_seconds["sync"] = time.perf_counter() - synced
    marker = Path(pipeline.working_dir) / "extracted_by_run"
    if pipeline.has_pending_data:
        report.resumed_load_ids = [
            *pipeline.list_extracted_load_packages(),
            *pipeline.list_normalized_load_packages(),
        ]
        logger.warning(
            "%s: finishing %d pending load package(s) first",
            report.pipeline_name,
            len(report.resumed_load_ids),
        )
        _normalize_and_load(pipeline)
        if run_key is not None and marker.is_file() and marker.read_text() == run_key:
            return  # a retry of the run that extracted them: never read the source twice
    while True:
        try:
            data = source_factory()
        except Exception as exc:  # missing config, bad options: report it like any extract failure
            raise PipelineStepFailed(pipeline, "extract", None, exc, None) from exc  # type: ignore[arg-type]
        if failed_tables:
            _leave_out(pipeline, data, failed_tables)
        if run_key is not None:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(run_key)
        try:
            pipeline.extract(data, **extract_kwargs)
            break
        except PipelineStepFailed as exc:
            if failed_tables is None:
                raise
            failing = _failing_resources(exc)
            if (
                not failing
                or set(failing) <= set(failed_tables)  # not one of the extracted resources
                or len(failed_tables) + len(failing) > MAX_TABLES_LEFT_OUT
            ):
                raise
            failed_tables.update(failing)
            if isinstance(data, DltSource) and not set(data.resources.selected) - set(failed_tables):
                raise  # nothing else to extract: the run fails with this error, as it always did
            logger.warning(
                "%s: extracting again without %s, which failed: %s",
                report.pipeline_name,
                ", ".join(failing),
                "; ".join(failing.values()),
            )
    if failed_tables and run_key is not None:
        # a retry of this run must read the left-out tables again, even if it first has a package to
        # finish: the others are merged or replaced again, which changes nothing
        marker.unlink(missing_ok=True)
    report.extracted = True
    _normalize_and_load(pipeline)


def _failing_resources(exc: PipelineStepFailed) -> dict[str, str]:
    """The resources whose extraction raised ``exc`` (dlt stops at the first; parallel extraction can
    report any one of several), with the root cause as people read it; empty when the error is outside
    any resource."""
    error: BaseException | None = exc.exception
    while error is not None and not isinstance(error, ResourceExtractionError):
        error = error.__cause__ or error.__context__
    if error is None:
        return {}
    root: BaseException = error
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    return {error.pipe_name: describe_error(root)}


def _leave_out(pipeline: dlt.Pipeline, data: Any, failed_tables: dict[str, str]) -> None:
    """Deselect the failed tables' resources of ``data``; fail when nothing is left to extract."""
    if not isinstance(data, DltSource):
        return
    for name in failed_tables:
        if name in data.resources:
            data.resources[name].selected = False
    if not data.resources.selected:
        raise PipelineStepFailed(
            pipeline,
            "extract",
            None,  # type: ignore[arg-type]
            TablesLeftOut(pipeline.pipeline_name, failed_tables),
            None,  # type: ignore[arg-type]
        )


def _superseded_packages(pipeline: dlt.Pipeline) -> list[str]:
    """Pending packages that a later completed load in the destination has superseded, if any.

    On a fleet, a worker killed mid-load keeps its package in its own pipeline folder while the next
    run, on another worker, reads the source again from the destination's state and loads it. Should
    the killed worker run the pipeline later, finishing its old package would load those rows a second
    time (append) or bring back old versions (merge, replace). The destination's completed loads tell:
    load ids are extraction timestamps, so a completed load of the packages' schema with a later id than
    every pending package was extracted after them. This holds whether or not that load wrote state (dlt
    stores state only when it changes, so a replace pipeline without a cursor often writes none).
    """
    if not pipeline.has_pending_data or pipeline.dev_mode or not pipeline.default_schema_name:
        return []
    pending = [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]
    schemas = {pipeline.get_load_package_info(load_id).schema_name for load_id in pending}
    newest = max((_newest_completed_load(pipeline, schema) or "0" for schema in schemas), key=float)
    if float(newest) <= max(float(load_id) for load_id in pending):
        return []
    return pending


def _newest_completed_load(pipeline: dlt.Pipeline, schema_name: str) -> str | None:
    """The newest load id of ``schema_name`` the destination records as completed (``_dlt_loads``,
    status 0), or None when it has none (nothing loaded yet).

    SQL destinations answer through ``pipeline.sql_client()``. The filesystem destination (S3) writes
    one ``_dlt_loads`` file per completed load, named ``<schema>__<load id>.jsonl``, and lists them
    with its client's ``list_table_files``; its SQL client is not used (it needs DuckDB secrets, which
    fail with this project's DuckDB).
    """
    loads_table = pipeline.default_schema.loads_table_name
    try:
        if pipeline.destination and pipeline.destination.destination_name == "filesystem":
            with pipeline.destination_client() as client:
                files = client.list_table_files(loads_table)  # type: ignore[attr-defined]
            names = (Path(str(file)).name.removesuffix(".jsonl").rsplit("__", 1) for file in files)
            return max(
                (load_id for schema, load_id in names if schema == schema_name), key=float, default=None
            )
        with pipeline.sql_client() as sql:
            loads = sql.make_qualified_table_name(loads_table)
            rows = sql.execute_sql(
                f"SELECT max(load_id) FROM {loads} WHERE status = 0 AND schema_name = %s", schema_name
            )
    except DestinationUndefinedEntity:  # nothing loaded yet: the dataset or its loads table is missing
        return None
    except PipelineConfigMissing:  # no destination configured
        return None
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


def _normalize_and_load(pipeline: dlt.Pipeline) -> None:
    pipeline.normalize()
    with held_open(pipeline.destination):
        pipeline.load()


def _report_failure(report: RunReport, exc: PipelineStepFailed) -> None:
    """Mark ``report`` failed at ``exc``'s step, attach it to ``exc`` and log the error."""
    report.status = "failed"
    report.failed_step = exc.step
    report.error = describe_error(exc.exception)
    exc.run_report = report  # type: ignore[attr-defined]
    logger.error("%s failed at %s: %s", report.pipeline_name, exc.step, report.error)


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
    vault_provider.register()  # before run() creates the pipeline and its destination
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
