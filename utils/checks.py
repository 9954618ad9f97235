"""Per-table health checks: ``volume`` and ``schema`` judged on the load metrics in the warehouse.

:mod:`utils.metrics` keeps one row per table and load in the dataset's ``_pipeline_metrics``; this
module reads the recent rows back through dlt's SQL client (so any machine gives the same answer) and
judges the newest load of each table against the loads before it, with the thresholds of the
pipeline's declaration (``checks:`` in ``declarations/<name>.yaml``):

- ``volume``: rows loaded against the median of the earlier loads (at least ``min_history`` of them,
  at most ``window``). A load is a collapse or an explosion when it lies more than ``sensitivity``
  robust standard deviations (1.4826 x the median absolute deviation) from the median *and* more than
  ``min_change`` of the median away from it. ``empty_loads: normal`` leaves empty loads out.
- ``schema``: a column that held values in ``stable_loads`` loads in a row and in none since (NULL
  in every row, or missing from the source, which dlt loads as NULL), and a column the latest load
  added to the table.

``replication_slot`` judges a change-data-capture source's slot (:func:`replication_slot`, read by
:mod:`sources.products.slot`): the WAL it holds back on the source's disk.

``freshness`` (the newest load against the declared bound) stays in :mod:`utils.freshness`;
:func:`freshness_result` gives it the same shape. The flow that runs every check and alerts is
``flows/freshness.py``; ``python -m pipelines status`` shows them.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from declarations import Checks, ReplicationSlotCheck, SchemaCheck, VolumeCheck, declaration
from utils.filesystem_tables import is_filesystem, table_rows
from utils.freshness import Freshness
from utils.metrics import METRICS_TABLE
from utils.pg_replication import PLUGIN, SlotHealth, megabytes

State = Literal["ok", "warn", "fail"]
CheckName = Literal["freshness", "volume", "schema", "replication_slot"]
SEVERITY: Final[dict[str, int]] = {"ok": 0, "warn": 1, "fail": 2}
MAD_TO_SD: Final = 1.4826
"""The median absolute deviation times this estimates the standard deviation of normal data."""
HISTORY_ROWS: Final = 5000
"""Most metrics rows read per check (newest first): a window of loads for a few dozen tables."""


@dataclass(frozen=True)
class CheckResult:
    """One check of one table: what ``status --json`` lists and the alerts and lineage carry."""

    table: str | None
    """``None`` for ``freshness``, which is judged on the dataset's newest load, and for checks of
    the source (``replication_slot``)."""
    check: CheckName
    state: State
    detail: str
    figures: dict[str, Any] | None = None
    """Measured values for machines (``replication_slot``: bytes retained and not yet confirmed)."""

    def as_dict(self) -> dict[str, Any]:
        found = {"table": self.table, "check": self.check, "state": self.state, "detail": self.detail}
        return found if self.figures is None else {**found, "figures": self.figures}


@dataclass(frozen=True)
class LoadMetrics:
    """One metrics row: what one load wrote into one table."""

    load_id: str
    rows: int
    present: frozenset[str] | None
    new_columns: tuple[str, ...]
    new_table: bool


def worst(results: Iterable[CheckResult]) -> State:
    """The most severe state among ``results`` (``ok`` when there are none)."""
    states = [r.state for r in results]
    return max(states, key=SEVERITY.__getitem__) if states else "ok"


def freshness_result(freshness: Freshness) -> CheckResult:
    """The freshness check in the shape of the others: ``fail`` when stale or never loaded."""
    return CheckResult(None, "freshness", "fail" if freshness.stale else "ok", freshness.describe())


def history(pipeline: dlt.Pipeline) -> dict[str, list[LoadMetrics]]:
    """The recent metrics rows of each table of ``pipeline``'s dataset, oldest first (empty: none yet).

    Only rows of completed metrics loads count: a metrics load cut after its copy leaves rows that no
    load in ``_dlt_loads`` owns.
    """
    names = ["load_id", "table_name", "rows_loaded", "columns_present", "new_columns", "new_table"]
    rows = _file_history(pipeline, names) if is_filesystem(pipeline) else _sql_history(pipeline, names)
    found: dict[str, list[LoadMetrics]] = {}
    for load_id, table_name, rows_loaded, present, new_columns, new_table in reversed(rows):
        found.setdefault(str(table_name), []).append(
            LoadMetrics(
                load_id=str(load_id),
                rows=int(rows_loaded),
                present=None if present is None else frozenset(json.loads(present)),
                new_columns=tuple(json.loads(new_columns or "[]")),
                new_table=bool(new_table),
            )
        )
    return found


def _sql_history(pipeline: dlt.Pipeline, names: list[str]) -> list[tuple[Any, ...]]:
    """The newest metrics rows, newest first, from a SQL destination."""
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(METRICS_TABLE)
            columns = ", ".join(client.escape_column_name(name) for name in names)
            order = client.escape_column_name("load_id")
            completed = (
                f"{client.escape_column_name('_dlt_load_id')} IN"
                f" (SELECT {client.escape_column_name('load_id')}"
                f" FROM {client.make_qualified_table_name('_dlt_loads')} WHERE status = 0)"
            )
            rows = client.execute_sql(
                f"SELECT {columns} FROM {table} WHERE {completed} ORDER BY {order} DESC LIMIT {HISTORY_ROWS}"
            )
    except DatabaseUndefinedRelation:
        return []
    return [tuple(row) for row in rows or []]


def _file_history(pipeline: dlt.Pipeline, names: list[str]) -> list[tuple[Any, ...]]:
    """The newest metrics rows, newest first, from the filesystem destination's files (S3)."""
    loads = table_rows(pipeline, "_dlt_loads")
    completed = {row["load_id"] for row in loads if row.get("status") == 0}
    stored = [row for row in table_rows(pipeline, METRICS_TABLE) if row.get("_dlt_load_id") in completed]
    stored.sort(key=lambda row: float(row["load_id"]), reverse=True)
    return [tuple(row[name] for name in names) for row in stored[:HISTORY_ROWS]]


def pipeline_checks(pipeline: dlt.Pipeline, pipeline_name: str, freshness: Freshness) -> list[CheckResult]:
    """Freshness, then volume and schema per table; unreadable metrics are a failed check, not an error."""
    results = [freshness_result(freshness)]
    try:
        results += table_checks(pipeline, pipeline_name)
    except Exception as exc:  # the freshness result still stands
        reason = f"{type(exc).__name__}: {exc}"
        results.append(CheckResult(None, "volume", "fail", f"cannot read load metrics: {reason}"))
    return results


def table_checks(pipeline: dlt.Pipeline, pipeline_name: str | None = None) -> list[CheckResult]:
    """``volume`` and ``schema`` of every table with metrics, with the declaration's thresholds."""
    settings = declaration(pipeline_name or pipeline.pipeline_name).checks
    return judge(history(pipeline), settings)


def judge(loads_by_table: dict[str, list[LoadMetrics]], settings: Checks) -> list[CheckResult]:
    results: list[CheckResult] = []
    for table, loads in sorted(loads_by_table.items()):
        results.append(volume(table, loads, settings.volume))
        results.append(schema(table, loads, settings.schema_changes))
    return results


def volume(table: str, loads: list[LoadMetrics], settings: VolumeCheck) -> CheckResult:
    """The latest of ``loads`` (oldest first) against the earlier ones; see the module docstring."""
    latest, earlier = loads[-1], loads[:-1]
    if settings.empty_loads == "normal":
        if latest.rows == 0:
            return CheckResult(table, "volume", "ok", "latest load wrote no rows (normal for this pipeline)")
        earlier = [load for load in earlier if load.rows > 0]
    earlier = earlier[-settings.window :]
    if len(earlier) < settings.min_history:
        return CheckResult(
            table,
            "volume",
            "ok",
            f"{latest.rows:,} rows; not judged: {len(earlier)} earlier load(s), "
            f"{settings.min_history} needed",
        )
    counts = [load.rows for load in earlier]
    median = statistics.median(counts)
    if median == 0:  # a nested table most loads leave empty: no change relative to nothing
        return CheckResult(
            table, "volume", "ok", f"{latest.rows:,} rows; most of the last {len(counts)} loads had none"
        )
    spread = MAD_TO_SD * statistics.median(abs(count - median) for count in counts)
    low = min(median - settings.sensitivity * spread, median * (1 - settings.min_change))
    high = max(median + settings.sensitivity * spread, median * (1 + settings.min_change))
    expected = (
        f"expected {max(low, 0):,.0f}-{high:,.0f} (median {median:,.0f} of the last {len(counts)} loads)"
    )
    if latest.rows < low:
        return CheckResult(
            table,
            "volume",
            settings.severity,
            f"collapse: {latest.rows:,} rows in load {latest.load_id}; {expected}",
        )
    if latest.rows > high:
        return CheckResult(
            table,
            "volume",
            settings.severity,
            f"explosion: {latest.rows:,} rows in load {latest.load_id}; {expected}",
        )
    return CheckResult(table, "volume", "ok", f"{latest.rows:,} rows; {expected}")


def schema(table: str, loads: list[LoadMetrics], settings: SchemaCheck) -> CheckResult:
    """Columns that stopped arriving and columns that appeared in the latest of ``loads``."""
    ignored = {
        c.split(".", 1)[-1] for c in settings.ignore_columns if "." not in c or c.startswith(f"{table}.")
    }
    latest = loads[-1]
    if latest.rows == 0 or latest.present is None:
        reason = (
            "it wrote no rows" if latest.rows == 0 else "its files did not tell which columns held values"
        )
        return CheckResult(table, "schema", "ok", f"latest load not judged: {reason}")
    if latest.new_table:
        return CheckResult(table, "schema", "ok", "first load of the table")
    judged = [load for load in loads if load.rows > 0 and load.present is not None][-settings.window - 1 :]
    stopped: list[str] = []
    for column in sorted(set().union(*(load.present or () for load in judged[:-1])) - ignored):
        last = max(i for i, load in enumerate(judged) if column in (load.present or ()))
        if last == len(judged) - 1:
            continue  # arrived in the latest load
        run = judged[max(0, last - settings.stable_loads + 1) : last + 1]
        if len(run) == settings.stable_loads and all(column in (load.present or ()) for load in run):
            stopped.append(f"{column} (NULL since {len(judged) - 1 - last} load(s))")
    appeared = [column for column in latest.new_columns if column not in ignored]
    problems = []
    if stopped:
        problems.append("stopped arriving: " + ", ".join(stopped))
    if appeared:
        problems.append("new column(s): " + ", ".join(appeared))
    if not problems:
        return CheckResult(table, "schema", "ok", f"{len(latest.present)} column(s) arriving")
    return CheckResult(table, "schema", settings.severity, f"load {latest.load_id}: " + "; ".join(problems))


SLOT_FIX: Final = (
    "drop it with `uv run python -m tools.postgres_cdc drop`; the next run creates a new slot and"
    ' loads every published table again (docs/products.md, "Change data capture: set-up and operation")'
)


def replication_slot(
    health: SlotHealth | None, slot: str, settings: ReplicationSlotCheck, database: str | None = None
) -> CheckResult:
    """A replication slot's health: missing, of another database than ``database``, invalidated, of
    another plugin, or holding back more WAL than ``settings.max_retained_mb``."""
    if health is None:
        return CheckResult(
            None,
            "replication_slot",
            "warn",
            f"slot {slot} does not exist: the next run creates it and loads every published table"
            " again; `uv run python -m tools.postgres_cdc setup` creates it now",
        )
    figures = {
        "slot": slot,
        "retained_bytes": health.retained_bytes,
        "lag_bytes": health.lag_bytes,
        "active": health.active,
        "wal_status": health.wal_status,
        "max_retained_mb": settings.max_retained_mb,
    }
    if database is not None and health.database != database:
        detail = (
            f"slot {slot} belongs to database {health.database}, not {database}: set slot_name in"
            " [sources.products] to a name of this pipeline's own"
        )
        return CheckResult(None, "replication_slot", "fail", detail, figures)
    if health.lost:
        detail = (
            f"slot {slot} was invalidated (wal_status lost: the server removed WAL it needed, past"
            f" max_slot_wal_keep_size); {SLOT_FIX}"
        )
        return CheckResult(None, "replication_slot", "fail", detail, figures)
    if health.plugin != PLUGIN or health.slot_type != "logical":
        detail = (
            f"slot {slot} is a {health.slot_type} slot of plugin {health.plugin}, not a logical"
            f" {PLUGIN} slot: {SLOT_FIX}"
        )
        return CheckResult(None, "replication_slot", "fail", detail, figures)
    bound = settings.max_retained_mb * 2**20
    if health.retained_bytes is not None and health.retained_bytes > bound:
        detail = (
            f"slot {slot}: {health.describe()}; past the bound of {megabytes(int(bound))}: the source"
            " keeps this WAL on its disk until the pipeline runs and confirms the slot; run it, or drop"
            " the slot if the pipeline is not coming back"
        )
        return CheckResult(None, "replication_slot", settings.severity, detail, figures)
    detail = f"slot {slot}: {health.describe()} (bound {megabytes(int(bound))})"
    return CheckResult(None, "replication_slot", "ok", detail, figures)
