"""Prefect side of the shared runner: retry policy, single flight, run reports, logs and alerts.

Flows stay a few lines each: a flow decorated with :func:`pipeline_flow` calls a task decorated with
:func:`pipeline_task`, which calls :func:`run_load` with its pipeline's ``run`` function (imported
inside the task, so importing a flow stays cheap). Everything operational happens here:

- retries: 3 per task, exponential backoff ``[10, 30, 90]`` s with jitter; a retry resumes the load
  packages the failed attempt left behind instead of reading the source again;
- single flight: one Prefect global concurrency limit per pipeline (``dlt-pipeline-<name>``, one slot),
  shared by every deployment of that pipeline; a second run waits for the slot; the slot is a
  :data:`LEASE_SECONDS` lease, so a run that dies holding it frees it within about a minute;
- run report: a table artefact ``<pipeline>-run-report`` per run, on success and on failure (rows
  and new columns per table; status, duration per step and any error in its description);
- progress: a run that lasts longer than :data:`PROGRESS_AFTER_SECONDS` (a backfill, a first or full
  load) publishes a progress artefact ``<pipeline>-progress`` that moves to 100 % as the steps finish;
- logs: dlt's and the runner's loggers are routed into the Prefect run log;
- lineage: a successful load claims the destination tables it wrote as Prefect assets, keyed by
  their URIs, with the declaration's upstream as dependencies (:mod:`utils.lineage`);
- alerts: a flow that fails after its tasks' last retry calls :func:`utils.alerts.alert_on_failure`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, Final, TypeVar
from uuid import UUID

import dlt
from dlt.common.runtime.collector import Collector
from dlt.pipeline.exceptions import PipelineStepFailed
from prefect import flow, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger
from prefect.runtime import task_run

from utils import lineage, vault_provider
from utils.alerts import alert_on_failure
from utils.runner import PipelineBusyError, RunReport, attempt, failed_report

RETRIES: Final = 3
RETRY_DELAYS: Final[list[float]] = [10, 30, 90]
"""Exponential backoff between task attempts, in seconds."""
RETRY_JITTER: Final = 0.5
"""Each delay may grow by up to 50 % so that retries of many flows do not land at once."""
LOCK_TIMEOUT_SECONDS: float = 4 * 3600
"""How long a run waits for another run of the same pipeline to finish before it gives up."""
LEASE_SECONDS: Final = 60.0
"""The single-flight slot is a lease the holder renews every 45 s (Prefect renews at 75 %). A run whose
process dies (a SIGKILLed worker, a lost container) stops renewing, and the Prefect server's repossessor
service frees the slot once the lease expires: within about 75 s here, rather than Prefect's default
300 s lease (60 s is the shortest the API accepts). ``tests/fleet/test_fleet.py`` measures it."""
EXTRA_LOGGERS: Final = ("dlt", "data_pipelines")
PROGRESS_AFTER_SECONDS: float = 30.0
"""A run publishes a progress artefact once it has lasted this long: daily loads of a few seconds
stay with their one report, backfills and large loads show how far they are."""
PROGRESS_PUBLISH_SECONDS: float = 2.0
"""At most one progress update per this many seconds (each is one API call)."""
STEP_SPAN: Final[dict[str, tuple[float, float]]] = {
    "extract": (0.0, 60.0),
    "normalize": (60.0, 80.0),
    "load": (80.0, 100.0),
}
"""Where each dlt step sits on the 0-100 % scale. Within a step the share done is what dlt counts
against a known total: resources finished (extract), files normalised, load jobs completed."""
STEP_COUNTERS: Final = {"extract": "Resources", "normalize": "Files", "load": "Jobs"}

F = TypeVar("F", bound=Callable[..., Any])


def pipeline_flow(name: str, *, description: str | None = None) -> Callable[[F], Any]:
    """Decorate a pipeline flow: logs of prints, and an alert when the run finally fails."""
    return flow(
        name=name,
        description=description,
        log_prints=True,
        on_failure=[alert_on_failure],
        on_crashed=[alert_on_failure],
    )


def pipeline_task(name: str, *, tags: Iterable[str] = ()) -> Callable[[F], Any]:
    """Decorate a task that loads a pipeline: retries with exponential backoff and jitter."""
    return task(
        name=name,
        retries=RETRIES,
        retry_delay_seconds=RETRY_DELAYS,
        retry_jitter_factor=RETRY_JITTER,
        retry_condition_fn=retry_unless_busy,
        tags=list(tags),
    )


def retry_unless_busy(task: Any, task_run: Any, state: Any) -> bool:
    """Retry any failure except "another run of this pipeline holds it": that one changed nothing,
    and a retry would only wait for the slot again."""
    return not isinstance(state.result(raise_on_failure=False), PipelineBusyError)


def lock_name(pipeline_name: str) -> str:
    """The global concurrency limit that keeps runs of one pipeline from overlapping."""
    return f"dlt-pipeline-{pipeline_name}".replace("_", "-")


def run_load(run: Callable[..., RunReport], **params: Any) -> dict[str, Any]:
    """Run a pipeline's ``run(**params)`` inside a task, alone, and publish its report.

    The pipeline name is taken from ``run``'s module (``pipelines.<name>``). Every attempt of the task
    is one run to the runner (the task run's id is the :func:`utils.runner.attempt` key), so a retry
    finishes the load packages the failed attempt left behind instead of reading the source again.
    Once the load has succeeded, the tables it wrote are materialised as Prefect assets (a nested
    ``materialise <pipeline> tables`` task run; see :mod:`utils.lineage`).
    """
    vault_provider.register()  # before run() creates the pipeline and its destination
    logger = get_run_logger()
    pipeline_name = run.__module__.rsplit(".", 1)[-1]
    if (task_run.run_count or 1) > 1:
        logger.warning("attempt %s: resuming pending load packages if there are any", task_run.run_count)
    started: list[dlt.Pipeline] = []

    def on_start(pipeline: dlt.Pipeline) -> None:
        started.append(pipeline)
        on_pipeline_start(pipeline)

    with single_flight(pipeline_name), attempt(str(task_run.id), on_start=on_start):
        try:
            report = run(**params)
        except PipelineStepFailed as exc:
            failed = failed_report(exc)
            if failed is not None:
                publish_report(failed)
            raise
    publish_report(report)
    ProgressArtifact.finish_current()
    if started:
        lineage.materialise(report, started[-1])
    logger.info(
        "loaded %s rows into %s.%s", f"{report.total_rows:,}", report.destination, report.dataset_name
    )
    return report.as_dict()


@contextlib.contextmanager
def single_flight(pipeline_name: str) -> Iterator[None]:
    """Hold the pipeline's one-slot global concurrency limit, creating it on first use."""
    name = lock_name(pipeline_name)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(
                concurrency(
                    name,
                    occupy=1,
                    timeout_seconds=LOCK_TIMEOUT_SECONDS,
                    lease_duration=LEASE_SECONDS,
                    strict=True,  # also: lease renewal failing stops the run rather than risk overlap
                )
            )
        except TimeoutError:
            raise PipelineBusyError(
                f"pipeline {pipeline_name} is already running (concurrency limit {name!r} stayed busy "
                f"for {LOCK_TIMEOUT_SECONDS:.0f} s); this run did not start and changed nothing"
            ) from None
        yield


def artifact_key(pipeline_name: str, kind: str) -> str:
    """``<pipeline>-<kind>`` in the lower-case letters, digits and dashes Prefect accepts."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{pipeline_name}-{kind}".lower())


def publish_report(report: RunReport) -> None:
    """Publish ``report`` as the run's table artefact (key ``<pipeline>-run-report``).

    One row per table (rows loaded, new columns); the description holds the status, destination,
    load ids, duration per step and any error, which the UI shows above the table.
    """
    rows = report.table_rows() or [{"table": "(no rows)", "rows": 0, "new columns": ""}]
    create_table_artifact(
        key=artifact_key(report.pipeline_name, "run-report"),
        table=rows,
        description=report.summary_markdown(),
    )


class ProgressArtifact(Collector):
    """Mirrors a run's progress into a Prefect progress artefact, passing every update on to ``inner``.

    The artefact is created (at the progress so far) once the run has lasted
    :data:`PROGRESS_AFTER_SECONDS`, updated at most every :data:`PROGRESS_PUBLISH_SECONDS`, and set to
    100 % by :func:`run_load` when the run succeeds; a failed run leaves it where it stopped.
    """

    def __init__(self, inner: Collector, pipeline_name: str) -> None:
        self.inner = inner
        self.pipeline_name = pipeline_name
        self.step = ""
        self.started = time.monotonic()
        self.percent = 0.0
        self.artifact_id: UUID | None = None
        self._published_at = 0.0
        self._done = 0
        self._total = 0

    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        self.inner.update(name, inc, total, inc_total, message, label)  # type: ignore[arg-type]
        if name == STEP_COUNTERS.get(self._kind()) and not label:
            self._done += inc
            self._total = max(self._total, total or 0) + (inc_total or 0)
            if self._total:
                low, high = STEP_SPAN[self._kind()]
                self._advance(low + (high - low) * min(1.0, self._done / self._total))
        self._publish()

    def _kind(self) -> str:
        return self.step.split(" ", 1)[0].lower()

    def _start(self, step: str) -> None:
        self.inner(step).__enter__()
        self._done = self._total = 0
        if self._kind() in STEP_SPAN:
            self._advance(STEP_SPAN[self._kind()][0])
        self._publish()

    def _stop(self) -> None:
        self.inner.__exit__(None, None, None)  # type: ignore[arg-type]  # ends the step started above
        if self._kind() in STEP_SPAN:
            self._advance(STEP_SPAN[self._kind()][1] if self._kind() != "load" else 99.0)
        self._publish(force=True)

    def _advance(self, percent: float) -> None:
        self.percent = max(self.percent, percent)

    def _publish(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.artifact_id is None:
            if now - self.started < PROGRESS_AFTER_SECONDS:
                return
            self.artifact_id = create_progress_artifact(  # type: ignore[assignment]
                progress=0.0,
                key=artifact_key(self.pipeline_name, "progress"),
                description=f"{self.pipeline_name}: share of extract, normalise and load done",
            )
            self._published_at = 0.0
        if force or now - self._published_at >= PROGRESS_PUBLISH_SECONDS:
            update_progress_artifact(self.artifact_id, self.percent)  # type: ignore[arg-type]
            self._published_at = now

    @classmethod
    def track(cls, pipeline: dlt.Pipeline) -> None:
        """Wrap ``pipeline``'s collector when it runs inside a Prefect task (a runner start hook)."""
        if TaskRunContext.get() is None:
            _CURRENT_PROGRESS.set(None)
            return
        current = cls(pipeline.collector, pipeline.pipeline_name)
        _CURRENT_PROGRESS.set(current)
        pipeline.collector = current

    @classmethod
    def finish_current(cls) -> None:
        """Set the current run's progress artefact, if it has one, to 100 %."""
        current = _CURRENT_PROGRESS.get()
        _CURRENT_PROGRESS.set(None)
        if current is not None:
            current.percent = 100.0
            if current.artifact_id is not None:
                update_progress_artifact(current.artifact_id, 100.0)


_CURRENT_PROGRESS: ContextVar[ProgressArtifact | None] = ContextVar("current_progress", default=None)


def on_pipeline_start(pipeline: dlt.Pipeline) -> None:
    """What the runner calls once dlt has set the pipeline up: its logs and progress go to Prefect."""
    route_logs_to_prefect()
    ProgressArtifact.track(pipeline)


def route_logs_to_prefect(*_: Any) -> None:
    """Send dlt's and our loggers to the Prefect run log, as PREFECT_LOGGING_EXTRA_LOGGERS would.

    Prefect reads that setting only when it is first imported, and dlt replaces its logger's handlers
    whenever its runtime settings change, so the runner calls this once dlt has set up each pipeline.
    """
    handlers = logging.getLogger("prefect.extra").handlers
    for name in EXTRA_LOGGERS:
        logger = logging.getLogger(name)
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
    ours = logging.getLogger("data_pipelines")  # dlt's own level follows [runtime] log_level
    if ours.level == logging.NOTSET:
        ours.setLevel(logging.INFO)
