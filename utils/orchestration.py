"""Prefect side of the shared runner: retry policy, single flight, run reports, logs and alerts.

Flows stay a few lines each: a flow decorated with :func:`pipeline_flow` calls a task decorated with
:func:`pipeline_task`, which calls :func:`run_load` with its pipeline's ``run`` function (imported
inside the task, so importing a flow stays cheap). Everything operational happens here:

- retries: 3 per task, exponential backoff ``[10, 30, 90]`` s with jitter; a retry resumes the load
  packages the failed attempt left behind instead of reading the source again;
- single flight: one Prefect global concurrency limit per pipeline (``dlt-pipeline-<name>``, one slot),
  shared by every deployment of that pipeline; a second run waits for the slot; the slot is a
  :data:`LEASE_SECONDS` lease, so a run that dies holding it frees it within about a minute;
- run report: a markdown artefact ``<pipeline>-run-report`` per run, on success and on failure;
- logs: dlt's and the runner's loggers are routed into the Prefect run log;
- alerts: a flow that fails after its tasks' last retry calls :func:`utils.alerts.alert_on_failure`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

from dlt.pipeline.exceptions import PipelineStepFailed
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.logging import get_run_logger
from prefect.runtime import task_run

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
    """
    logger = get_run_logger()
    pipeline_name = run.__module__.rsplit(".", 1)[-1]
    if (task_run.run_count or 1) > 1:
        logger.warning("attempt %s: resuming pending load packages if there are any", task_run.run_count)
    with single_flight(pipeline_name), attempt(str(task_run.id), on_start=route_logs_to_prefect):
        try:
            report = run(**params)
        except PipelineStepFailed as exc:
            failed = failed_report(exc)
            if failed is not None:
                publish_report(failed)
            raise
    publish_report(report)
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


def publish_report(report: RunReport) -> None:
    """Publish ``report`` as the run's markdown artefact (key ``<pipeline>-run-report``)."""
    key = re.sub(r"[^a-z0-9-]+", "-", f"{report.pipeline_name}-run-report".lower())
    create_markdown_artifact(
        key=key, markdown=report.to_markdown(), description=f"{report.pipeline_name} run"
    )


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
