"""Prefect side of the shared runner: task retry policy, run reports as artefacts, logging.

Flows stay a few lines each: a task decorated with :func:`pipeline_task` calls :func:`run_load` with
its pipeline's ``run`` function (imported inside the task, so importing a flow stays cheap).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

from dlt.pipeline.exceptions import PipelineStepFailed
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.runtime import task_run

from utils.runner import RunReport

RETRIES: Final = 3
RETRY_DELAYS: Final[list[float]] = [10, 30, 90]
"""Exponential backoff between task attempts, in seconds."""
RETRY_JITTER: Final = 0.5
"""Each delay may grow by up to 50 % so that retries of many flows do not land at once."""

F = TypeVar("F", bound=Callable[..., Any])


def pipeline_task(name: str, *, tags: Iterable[str] = ()) -> Callable[[F], Any]:
    """Decorate a task that loads a pipeline: retries with exponential backoff and jitter."""
    return task(
        name=name,
        retries=RETRIES,
        retry_delay_seconds=RETRY_DELAYS,
        retry_jitter_factor=RETRY_JITTER,
        tags=list(tags),
    )


def run_load(run: Callable[..., RunReport], **params: Any) -> dict[str, Any]:
    """Run a pipeline's ``run(**params)`` inside a task and publish its report.

    On a retry of the same task (``run_count > 1``) the pipeline finishes the load packages the failed
    attempt left behind instead of reading the source again (see ``utils/runner.py``).
    """
    logger = get_run_logger()
    retrying = (task_run.run_count or 1) > 1
    if retrying:
        logger.warning("attempt %s: resuming pending load packages if there are any", task_run.run_count)
    try:
        report = run(retrying=retrying, **params)
    except PipelineStepFailed as exc:
        failed: RunReport | None = getattr(exc, "run_report", None)
        if failed is not None:
            publish_report(failed)
        raise
    publish_report(report)
    logger.info(
        "loaded %s rows into %s.%s", f"{report.total_rows:,}", report.destination, report.dataset_name
    )
    return report.as_dict()


def publish_report(report: RunReport) -> None:
    """Publish ``report`` as the run's markdown artefact (key ``<pipeline>-run-report``)."""
    key = re.sub(r"[^a-z0-9-]+", "-", f"{report.pipeline_name}-run-report".lower())
    create_markdown_artifact(
        key=key, markdown=report.to_markdown(), description=f"{report.pipeline_name} run"
    )
