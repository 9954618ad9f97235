"""One status line per pipeline: is everything loaded, and when did each pipeline last succeed?

Reads each pipeline's destination (its ``_dlt_loads`` and stored schema, through dlt, so the answer is
the same on any machine) and, when a Prefect API is configured, the newest finished run of each
pipeline's load task. ``python -m pipelines status`` prints it; the freshness flow publishes it as a
table artefact.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import declarations as catalogue
from pipelines import pipeline_module, source_checks
from utils.checks import CheckResult, pipeline_checks, worst
from utils.freshness import Freshness, human, newest_load, rows_in_load
from utils.runner import describe_error

logger = logging.getLogger("data_pipelines.status")

COLUMNS = (
    ("pipeline", "pipeline"),
    ("owner", "owner"),
    ("schedule", "schedule"),
    ("destination", "destination"),
    ("last_load", "last load (UTC)"),
    ("age", "age"),
    ("rows", "rows"),
    ("bound", "bound"),
    ("state", "state"),
    ("last_failure", "last failure"),
    ("checks", "checks"),
)


@dataclass
class PipelineStatus:
    """What ``status`` shows for one pipeline (``--json`` gives these fields)."""

    pipeline: str
    owner: str
    schedules: list[str]
    destination: str
    dataset: str
    last_load: dt.datetime | None
    age_seconds: float | None
    rows_in_last_load: int | None
    bound_seconds: float
    state: str
    """``fresh``, ``STALE`` (older than the bound or never loaded) or ``UNKNOWN`` (unreadable)."""
    last_failure: str | None
    error: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    """Each check as ``{table, check, state, detail}``: freshness, then volume and schema per table."""

    @property
    def stale(self) -> bool:
        return self.state != "fresh"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_load"] = self.last_load.isoformat() if self.last_load else None
        return data

    def row(self) -> dict[str, str]:
        """The line's cells as text, keyed like :data:`COLUMNS`."""
        age = human(dt.timedelta(seconds=self.age_seconds)) if self.age_seconds is not None else "-"
        failure = self.last_failure or ("cannot read destination: " + self.error if self.error else "")
        return {
            "pipeline": self.pipeline,
            "owner": self.owner,
            "schedule": "; ".join(self.schedules) or "manual",
            "destination": f"{self.destination}:{self.dataset}",
            "last_load": f"{self.last_load:%Y-%m-%d %H:%M}" if self.last_load else "never",
            "age": age,
            "rows": f"{self.rows_in_last_load:,}" if self.rows_in_last_load is not None else "-",
            "bound": human(dt.timedelta(seconds=self.bound_seconds)),
            "state": self.state,
            "last_failure": failure or "-",
            "checks": checks_cell(self.checks),
        }


def pipeline_status(name: str, now: dt.datetime | None = None) -> PipelineStatus:
    """One pipeline's destination as a :class:`PipelineStatus` (:func:`collect` adds Prefect's view)."""
    now = now or dt.datetime.now(dt.UTC)
    bound = catalogue.freshness_bound(name)
    pipeline = pipeline_module(name).create_pipeline()
    status = PipelineStatus(
        pipeline=name,
        owner=catalogue.owner(name),
        schedules=catalogue.schedules(name),
        destination=pipeline.destination.destination_name if pipeline.destination else "none",
        dataset=pipeline.dataset_name,
        last_load=None,
        age_seconds=None,
        rows_in_last_load=None,
        bound_seconds=bound.total_seconds(),
        state="STALE",
        last_failure=None,
    )
    try:
        load = newest_load(pipeline)
        if load is not None:
            status.last_load = load.inserted_at
            status.age_seconds = (now - load.inserted_at).total_seconds()
            status.state = "fresh" if now - load.inserted_at <= bound else "STALE"
            status.rows_in_last_load = rows_in_load(pipeline, load)
    except Exception as exc:  # one unreadable destination must not hide the others
        status.state = "UNKNOWN"
        status.error = describe_error(exc)
    status.checks = [c.as_dict() for c in _checks(name, pipeline, status, bound, now)]
    return status


def _checks(
    name: str, pipeline: Any, status: PipelineStatus, bound: dt.timedelta, now: dt.datetime
) -> list[CheckResult]:
    """Freshness as the status line judged it, then volume and schema per table (utils/checks.py),
    then the source's own checks (products' replication slot), read even when the destination is not."""
    if status.state == "UNKNOWN":
        results = [CheckResult(None, "freshness", "fail", f"cannot read destination: {status.error}")]
    else:
        freshness = Freshness(name, status.destination, status.dataset, status.last_load, bound, now)
        results = pipeline_checks(pipeline, name, freshness)
    return results + source_checks(name)


def checks_cell(checks: list[dict[str, Any]]) -> str:
    """The worst state and the checks that have it: ``warn: products volume``."""
    state = worst(CheckResult(**c) for c in checks)
    if state == "ok":
        return "ok" if checks else "-"
    names = [f"{_subject(c)} {c['check']}" for c in checks if c["state"] == state]
    return f"{state}: {', '.join(names)}"


def _subject(check: dict[str, Any]) -> str:
    """What a check judged: its table, the dataset (freshness) or the source (replication slot)."""
    return check["table"] or ("dataset" if check["check"] == "freshness" else "source")


def unreadable_status(name: str, exc: Exception) -> PipelineStatus:
    """The line of a pipeline whose declaration (or module) cannot be read: only its own line fails."""
    error = describe_error(exc)
    return PipelineStatus(
        pipeline=name,
        owner="?",
        schedules=[],
        destination="?",
        dataset="?",
        last_load=None,
        age_seconds=None,
        rows_in_last_load=None,
        bound_seconds=0.0,
        state="UNKNOWN",
        last_failure=None,
        error=error,
        checks=[CheckResult(None, "freshness", "fail", f"cannot check: {error}").as_dict()],
    )


def _status_or_error(name: str, now: dt.datetime | None) -> PipelineStatus:
    try:
        return pipeline_status(name, now)
    except Exception as exc:  # a bad declaration fails its own line, not the command
        return unreadable_status(name, exc)


def collect(names: list[str] | None = None, now: dt.datetime | None = None) -> list[PipelineStatus]:
    """The status of every pipeline (or of ``names``), in catalogue order."""
    statuses = [_status_or_error(name, now) for name in names or catalogue.pipelines()]
    failures = last_failures([s.pipeline for s in statuses])
    for status in statuses:
        status.last_failure = failures[status.pipeline]
    return statuses


def last_failures(names: list[str]) -> dict[str, str | None]:
    """For each pipeline whose newest finished load-task run failed (when a Prefect API is configured):
    when, its state and message. Pipelines with no API, no runs or a successful newest run map to None."""
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, get_current_settings, temporary_settings

    found: dict[str, str | None] = dict.fromkeys(names)
    if not get_current_settings().api.url:
        return found
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
        TaskRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import TaskRunSort

    finished = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    try:
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}), get_client(sync_client=True) as client:
            for name in names:
                runs = client.read_task_runs(
                    task_run_filter=TaskRunFilter(
                        tags=TaskRunFilterTags(all_=["dlt", name]),
                        state=TaskRunFilterState(type=TaskRunFilterStateType(any_=finished)),
                    ),
                    sort=TaskRunSort.EXPECTED_START_TIME_DESC,
                    limit=1,
                )
                state = runs[0].state if runs else None
                state = newer_crash(client, name, state)
                if state is not None and not state.is_completed():
                    message = " ".join((state.message or "").split())
                    found[name] = f"{state.timestamp:%Y-%m-%d %H:%M} UTC {state.name}: {message}"[:300]
    except Exception as exc:  # the warehouse still answers when Prefect does not
        logger.warning("cannot read runs from Prefect (%s): last failures not shown", describe_error(exc))
    return found


def newer_crash(client: Any, name: str, task_state: Any) -> Any:
    """The newest finished flow run of ``name``'s deployments when it crashed after ``task_state``:
    a run whose process or machine was lost (marked ``Crashed`` by the worker or by the zombie
    automation, ``tools/automations.py``) never finishes its load task, so only its flow run tells."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    finished = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["dlt", name]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=finished)),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    state = runs[0].state if runs else None
    if state is None or not state.is_crashed():
        return task_state
    return state if task_state is None or state.timestamp > task_state.timestamp else task_state


def render_text(statuses: list[PipelineStatus]) -> str:
    """A plain-text table, one line per pipeline, columns padded to fit (no terminal codes)."""
    rows = [dict(COLUMNS)] + [s.row() for s in statuses]
    widths = {key: max(len(row[key]) for row in rows) for key, _ in COLUMNS}
    lines = ["  ".join(row[key].ljust(widths[key]) for key, _ in COLUMNS).rstrip() for row in rows]
    lines += source_lines(statuses)
    return "\n".join(lines) + "\n"


def source_lines(statuses: list[PipelineStatus]) -> list[str]:
    """Below the table, each source check in full (``products replication_slot warn: slot ...: 1,200.0
    MB of WAL retained, ...``): its figures do not fit a column."""
    found = [
        f"{s.pipeline} {c['check']} {c['state']}: {c['detail']}"
        for s in statuses
        for c in s.checks
        if c["table"] is None and c["check"] != "freshness" and c["check"] != "volume"
    ]
    return ["", *found] if found else []


def render_json(statuses: list[PipelineStatus]) -> str:
    return json.dumps([s.as_dict() for s in statuses], indent=2) + "\n"


def artifact_rows(statuses: list[PipelineStatus]) -> list[dict[str, str]]:
    """The same table for a Prefect table artefact: one dict per pipeline, headers as keys."""
    return [{header: s.row()[key] for key, header in COLUMNS} for s in statuses]
