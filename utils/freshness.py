"""How fresh is a dataset: the newest successful load recorded in the destination's ``_dlt_loads``.

Reads the destination, not the local pipeline folder, so it gives the same answer on any machine.
The bounds per pipeline and the flow that alerts on stale datasets live in ``flows/freshness.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation


@dataclass(frozen=True)
class Freshness:
    pipeline_name: str
    destination: str
    dataset_name: str
    last_load: dt.datetime | None
    bound: dt.timedelta
    checked_at: dt.datetime

    @property
    def age(self) -> dt.timedelta | None:
        return None if self.last_load is None else self.checked_at - self.last_load

    @property
    def stale(self) -> bool:
        age = self.age
        return age is None or age > self.bound

    def describe(self) -> str:
        if self.last_load is None:
            return f"{self.dataset_name} ({self.destination}): never loaded (bound {_human(self.bound)})"
        return (
            f"{self.dataset_name} ({self.destination}): last successful load {self.last_load:%Y-%m-%d %H:%M} "
            f"UTC, {_human(self.age or dt.timedelta())} ago (bound {_human(self.bound)})"
        )


def last_successful_load(pipeline: dlt.Pipeline) -> dt.datetime | None:
    """When the newest completed load package of ``pipeline``'s dataset was recorded, in UTC."""
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("_dlt_loads")
            rows = client.execute_sql(f"SELECT MAX(inserted_at) FROM {table} WHERE status = 0")
    except DatabaseUndefinedRelation:
        return None
    value = rows[0][0] if rows else None
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def check(pipeline: dlt.Pipeline, bound: dt.timedelta, now: dt.datetime | None = None) -> Freshness:
    return Freshness(
        pipeline_name=pipeline.pipeline_name,
        destination=pipeline.destination.destination_name if pipeline.destination else "none",
        dataset_name=pipeline.dataset_name,
        last_load=last_successful_load(pipeline),
        bound=bound,
        checked_at=now or dt.datetime.now(dt.UTC),
    )


def _human(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
