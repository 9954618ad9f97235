"""What one pipeline run did: the :class:`RunReport` that flows publish and CLIs print.

Built from what dlt already records: step durations, row counts and load ids from the steps dlt traced
(``pipeline.last_trace``), new tables and columns from the pipeline's schemas before and after the run,
and the failing step and error. ``utils/runner.py`` fills it in; ``utils/orchestration.py`` publishes it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import dlt
from dlt.common.pipeline import LoadInfo, NormalizeInfo


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
    dropped_load_ids: list[str] = field(default_factory=list)
    """Pending packages dropped because a later load (another worker's) superseded them."""
    step_seconds: dict[str, float] = field(default_factory=dict)
    new_tables: list[str] = field(default_factory=list)
    new_columns: dict[str, list[str]] = field(default_factory=dict)
    extracted: bool = False
    notes: list[str] = field(default_factory=list)
    """What else a pipeline did that readers should know (columns widened, deleted keys swept)."""
    failed_tables: dict[str, str] = field(default_factory=dict)
    """Tables left out of the run because reading them failed (or their schema change was refused),
    with why; every other table was loaded (``utils/runner.py``)."""
    failed_step: str | None = None
    error: str | None = None
    requests_by_object: dict[str, int] = field(default_factory=dict)
    """API requests the source sent, by what they read (filled by pipelines whose source counts them)."""

    @property
    def total_rows(self) -> int:
        """Rows loaded into data tables (dlt's own ``_dlt_*`` bookkeeping tables excluded)."""
        return sum(self.rows_by_table.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy, used as the flow task's result."""
        return {**dataclasses.asdict(self), "total_rows": self.total_rows}

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
        if self.dropped_load_ids:
            lines.append(f"- dropped superseded packages: {', '.join(self.dropped_load_ids)}")
        if not self.extracted and self.status == "succeeded":
            lines.append("- source not read again: this run only finished pending packages")
        if self.step_seconds:
            steps = ", ".join(f"{step} {secs:.2f} s" for step, secs in self.step_seconds.items())
            lines.append(f"- duration: {steps}")
        if self.new_tables:
            lines.append(f"- new tables: {', '.join(self.new_tables)}")
        for table, columns in self.new_columns.items():
            lines.append(f"- new columns in `{table}`: {', '.join(columns)}")
        if self.requests_by_object:
            counts = ", ".join(f"{name} {n:,}" for name, n in sorted(self.requests_by_object.items()))
            lines.append(f"- requests: {sum(self.requests_by_object.values()):,} ({counts})")
        lines += [f"- {note}" for note in self.notes]
        lines += [
            f"- **table failed, left out**: `{table}`: {why}" for table, why in self.failed_tables.items()
        ]
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


def add_trace(report: RunReport, pipeline: dlt.Pipeline, since: dt.datetime) -> None:
    """Step durations, row counts and load ids of this run, from the steps dlt traced since ``since``.

    dlt merges separate ``extract``/``normalize``/``load`` calls into ``last_trace``, keeping earlier
    runs' steps too, hence the time filter.
    """
    trace = pipeline.last_trace
    for step in trace.steps if trace else []:
        if step.started_at < since:
            continue
        if step.finished_at is not None:
            seconds = (step.finished_at - step.started_at).total_seconds()
            report.step_seconds[step.step] = report.step_seconds.get(step.step, 0.0) + seconds
        if isinstance(step.step_info, NormalizeInfo):
            for table, rows in step.step_info.row_counts.items():
                if not table.startswith("_dlt"):
                    report.rows_by_table[table] = report.rows_by_table.get(table, 0) + rows
        elif isinstance(step.step_info, LoadInfo):
            report.load_ids += [
                p.load_id for p in step.step_info.load_packages if p.load_id not in report.load_ids
            ]


def schema_snapshot(pipeline: dlt.Pipeline) -> dict[str, set[str]]:
    """Data tables and their columns across the pipeline's schemas (dlt's own tables left out)."""
    snapshot: dict[str, set[str]] = {}
    for schema in pipeline.schemas.values():
        for table in schema.data_tables():
            snapshot[str(table["name"])] = {c for c in table.get("columns", {}) if not c.startswith("_dlt")}
    return snapshot


def add_schema_changes(report: RunReport, before: dict[str, set[str]], after: dict[str, set[str]]) -> None:
    for table, columns in sorted(after.items()):
        if table not in before:
            report.new_tables.append(table)
        elif added := sorted(columns - before[table]):
            report.new_columns[table] = added
