"""Every pipeline's declaration: owner, kind, schedules, freshness, upstream and the tables it writes.

One YAML file per pipeline in ``declarations/`` is the only place a pipeline is named for orchestration
and governance. Everything else derives from it: the deployments in ``prefect.yaml`` (``python -m
tools.deployments``), the freshness check, ``python -m pipelines status``, the vault ``check``, the
reliability scenarios' list, the lineage assets and ``docs/lineage.md``. YAML rather than Python: it is
data that generators and people read, the scaffolder renders it from a template, and it keeps
orchestration out of the pipeline modules; the model below types and checks it. Resource facts (write
disposition, keys) stay where dlt declares them, on the resources.

This package sits below every layer (flows, pipelines, sources, utils, tools): it imports none of
them, so any of them may read a declaration. Each file is read on first use, on its own: a bad
declaration fails its own pipeline with :class:`DeclarationError` naming the file and field, and
leaves the others running.
"""

from __future__ import annotations

import datetime as dt
import itertools
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DECLARATIONS: Final = Path(__file__).resolve().parent
RETRY_ROOM: Final = dt.timedelta(hours=6)
"""Added to a schedule's longest gap when a declaration sets no ``freshness``: a late run and its
retries (10, 30 and 90 s apart, plus the load itself) fit comfortably."""


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str
    timezone: str

    @field_validator("cron")
    @classmethod
    def _parses(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression")
        return value


class Deployment(BaseModel):
    """One Prefect deployment of the pipeline's flow module (``flows/<pipeline>.py``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    flow: str
    """The flow function's name in ``flows/<pipeline>.py``."""
    description: str
    cadence: Literal["hourly", "daily", "weekly", "monthly", "manual"]
    schedule: Schedule | None = None
    """``None``: run by hand only."""
    parameters: dict[str, Any] = Field(default_factory=dict)


class VolumeCheck(BaseModel):
    """The ``volume`` check: is the latest load's row count in line with the table's recent loads?"""

    model_config = ConfigDict(extra="forbid")

    severity: Literal["warn", "fail"] = "warn"
    """The state a collapse or an explosion gets."""
    min_history: int = Field(default=7, ge=1)
    """Earlier loads (with rows, see ``empty_loads``) needed before any judgement."""
    window: int = Field(default=30, ge=2)
    """How many earlier loads the median and spread are taken over."""
    sensitivity: float = Field(default=3.0, gt=0)
    """How many robust standard deviations (1.4826 x the median absolute deviation) from the median."""
    min_change: float = Field(default=0.2, ge=0)
    """And at least this share of the median (0.2: 20 %), so steady tables do not warn on small moves."""
    empty_loads: Literal["judge", "normal"] = "judge"
    """``normal``: a load that wrote no rows (a holiday without rates) is neither judged nor history."""


class SchemaCheck(BaseModel):
    """The ``schema`` check: a column that stopped arriving, or a column that appeared."""

    model_config = ConfigDict(extra="forbid")

    severity: Literal["warn", "fail"] = "warn"
    stable_loads: int = Field(default=3, ge=1)
    """A column "stopped arriving" when it held values in each of this many loads in a row and in
    none since (every load since then NULL in every row)."""
    window: int = Field(default=30, ge=2)
    """How many earlier loads are looked at."""
    ignore_columns: list[str] = Field(default_factory=list)
    """Columns (``table.column`` or ``column`` for every table) that come and go by nature."""


class ReplicationSlotCheck(BaseModel):
    """The ``replication_slot`` check of a source read by change data capture (products with
    ``change_capture = "logical"``): how much WAL its slot may hold back on the source's disk."""

    model_config = ConfigDict(extra="forbid")

    severity: Literal["warn", "fail"] = "warn"
    """The state a slot past ``max_retained_mb`` gets (an invalidated slot always fails)."""
    max_retained_mb: float = Field(default=1024, gt=0)
    """WAL the slot may retain (``pg_current_wal_lsn() - restart_lsn``), in MB, before it warns: a
    day's WAL of a busy database is often a few GB, so raise it there rather than silence it."""


class Checks(BaseModel):
    """Thresholds of the per-table health checks (docs/operations.md, "Checks"); every key optional."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    volume: VolumeCheck = Field(default_factory=lambda: VolumeCheck())
    schema_changes: SchemaCheck = Field(default_factory=lambda: SchemaCheck(), alias="schema")
    replication_slot: ReplicationSlotCheck = Field(default_factory=lambda: ReplicationSlotCheck())


class Declaration(BaseModel):
    """What orchestration and governance need to know about one pipeline."""

    model_config = ConfigDict(extra="forbid")

    name: str
    owner: str
    description: str
    kind: Literal["api", "database", "saas"]
    tags: list[str] = Field(default_factory=list)
    upstream: list[str]
    """What it reads, as URIs: an API's base URL and endpoint, ``postgres://{host}/{database}/<schema>/
    <table>`` (``{host}`` and ``{database}`` are filled from the source's credentials at run time)."""
    destination: Literal["snowflake", "filesystem", "duckdb"]
    """The production destination (``DLT__DESTINATION`` overrides it for every pipeline at once)."""
    dataset: str
    tables: list[str]
    """The root tables it writes (dlt adds child tables for nested data)."""
    freshness: dt.timedelta | None = None
    """How old the newest successful load may be; derived from the schedules when not set."""
    deployments: list[Deployment]
    checks: Checks = Field(default_factory=lambda: Checks())
    """Volume and schema check thresholds; defaults when left out."""

    @property
    def freshness_bound(self) -> dt.timedelta:
        """``freshness``, or the longest gap between two scheduled runs plus :data:`RETRY_ROOM`."""
        if self.freshness is not None:
            return self.freshness
        gaps = [_longest_gap(d.schedule) for d in self.deployments if d.schedule is not None]
        if not gaps:
            raise ValueError(f"{self.name}: no scheduled deployment, so declare `freshness`")
        return min(gaps) + RETRY_ROOM

    @property
    def schedules(self) -> list[Schedule]:
        return [d.schedule for d in self.deployments if d.schedule is not None]


def _longest_gap(schedule: Schedule, weeks: int = 5) -> dt.timedelta:
    """The longest time between two runs of ``schedule`` over the next few weeks (cron in UTC terms)."""
    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday: the result does not depend on today
    runs = croniter(schedule.cron, start)
    times = [runs.get_next(dt.datetime) for _ in range(weeks * 7 * 24 + 1)]
    times = [t for t in times if t <= start + dt.timedelta(weeks=weeks)] or times[:2]
    return max(b - a for a, b in itertools.pairwise(times))


class DeclarationError(ValueError):
    """A declaration file that does not parse or validate; the message names the file and field."""


def pipelines() -> list[str]:
    """Every declared pipeline's name (one per ``declarations/<name>.yaml``), sorted."""
    return sorted(path.stem for path in DECLARATIONS.glob("*.yaml"))


@cache
def declaration(name: str) -> Declaration:
    """The declaration of pipeline ``name``.

    Raises :class:`KeyError` listing the known pipelines for an unknown name, and
    :class:`DeclarationError` naming the file and each bad field for a file that does not validate.
    """
    path = DECLARATIONS / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(pipelines())}")
    try:
        found = Declaration.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise DeclarationError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise DeclarationError(f"{path}: {problems}") from None
    if found.name != name:
        raise DeclarationError(f"{path}: name: declares {found.name!r}; the file must be {found.name}.yaml")
    return found


def _describe(error: Any) -> str:
    """One validation error as ``field.path: message (got value)``."""
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    got = error.get("input")
    shown = f" (got {got!r})" if isinstance(got, str | int | float | bool) else ""
    return f"{where}: {error['msg']}{shown}"


def declarations() -> dict[str, Declaration]:
    """Every declaration by pipeline name; the first bad file raises (generators must see them all)."""
    return {name: declaration(name) for name in pipelines()}


def freshness_bound(name: str) -> dt.timedelta:
    """How old pipeline ``name``'s newest successful load may be (the freshness check and ``status``)."""
    try:
        return declaration(name).freshness_bound
    except ValueError as exc:
        if isinstance(exc, DeclarationError):
            raise
        raise DeclarationError(f"{DECLARATIONS / f'{name}.yaml'}: freshness: {exc}") from None


def owner(name: str) -> str:
    return declaration(name).owner


def schedules(name: str) -> list[str]:
    """``<cron> <time zone>`` of each scheduled deployment of ``name``."""
    return [f"{s.cron} {s.timezone}" for s in declaration(name).schedules]
