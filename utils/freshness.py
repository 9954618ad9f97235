"""How fresh is a dataset: the newest successful load recorded in the destination's ``_dlt_loads``.

Reads the destination, not the local pipeline folder, so it gives the same answer on any machine.
The bounds per pipeline live in ``declarations/__init__.py``; ``flows/freshness.py`` alerts on stale
datasets and ``python -m pipelines status`` shows them all.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from utils import filesystem_tables
from utils.metrics import METRICS_SCHEMA


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
            return f"{self.dataset_name} ({self.destination}): never loaded (bound {human(self.bound)})"
        return (
            f"{self.dataset_name} ({self.destination}): last successful load {self.last_load:%Y-%m-%d %H:%M} "
            f"UTC, {human(self.age or dt.timedelta())} ago (bound {human(self.bound)})"
        )


@dataclass(frozen=True)
class LoadRecord:
    """One completed load package as the destination's ``_dlt_loads`` records it."""

    load_id: str
    schema_name: str
    inserted_at: dt.datetime


def newest_load(pipeline: dlt.Pipeline) -> LoadRecord | None:
    """The newest completed data load package of ``pipeline``'s dataset (``status = 0``), times in UTC."""
    if filesystem_tables.is_filesystem(pipeline):  # S3: its SQL client fails (utils/filesystem_tables.py)
        loads = [
            row
            for row in filesystem_tables.table_rows(pipeline, "_dlt_loads")
            if row.get("status") == 0 and row.get("schema_name") != METRICS_SCHEMA
        ]
        if not loads:
            return None
        newest = max(loads, key=lambda row: dt.datetime.fromisoformat(str(row["inserted_at"])))
        inserted = dt.datetime.fromisoformat(str(newest["inserted_at"]))
        inserted = inserted if inserted.tzinfo else inserted.replace(tzinfo=dt.UTC)
        return LoadRecord(str(newest["load_id"]), str(newest["schema_name"]), inserted.astimezone(dt.UTC))
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("_dlt_loads")
            rows = client.execute_sql(
                f"SELECT load_id, schema_name, inserted_at FROM {table} WHERE status = 0 "
                "AND schema_name <> %s ORDER BY inserted_at DESC LIMIT 1",
                METRICS_SCHEMA,  # a metrics load (utils/metrics.py) describes a data load, is none
            )
    except DatabaseUndefinedRelation:
        return None
    if not rows:
        return None
    load_id, schema_name, value = rows[0]
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return LoadRecord(str(load_id), str(schema_name), value.astimezone(dt.UTC))


def last_successful_load(pipeline: dlt.Pipeline) -> dt.datetime | None:
    """When the newest completed load package of ``pipeline``'s dataset was recorded, in UTC."""
    load = newest_load(pipeline)
    return None if load is None else load.inserted_at


def rows_in_load(pipeline: dlt.Pipeline, load: LoadRecord) -> int:
    """Rows the load package ``load`` wrote into the dataset's root tables (nested tables left out).

    The tables come from the schema version stored in the destination, so this answers on a machine
    without the pipeline's local folder. One ``COUNT(*) ... WHERE _dlt_load_id = ...`` per table.
    """
    with pipeline.destination_client(load.schema_name) as job_client:
        stored = job_client.get_stored_schema(load.schema_name)  # type: ignore[attr-defined]
    if stored is None:
        return 0
    schema = dlt.Schema.from_dict(json.loads(stored.schema))
    if filesystem_tables.is_filesystem(pipeline):
        return sum(
            filesystem_tables.rows_in_files(pipeline, str(table["name"]), load.load_id)
            for table in schema.data_tables()
        )
    total = 0
    with pipeline.sql_client(load.schema_name) as client:
        column = client.escape_column_name("_dlt_load_id")
        for table in schema.data_tables():
            if "_dlt_load_id" not in table.get("columns", {}):
                continue
            name = client.make_qualified_table_name(str(table["name"]))
            try:
                rows = client.execute_sql(f"SELECT COUNT(*) FROM {name} WHERE {column} = %s", load.load_id)
            except DatabaseUndefinedRelation:  # declared but never created: no rows yet
                continue
            total += int(rows[0][0]) if rows else 0
    return total


def check(pipeline: dlt.Pipeline, bound: dt.timedelta, now: dt.datetime | None = None) -> Freshness:
    return Freshness(
        pipeline_name=pipeline.pipeline_name,
        destination=pipeline.destination.destination_name if pipeline.destination else "none",
        dataset_name=pipeline.dataset_name,
        last_load=last_successful_load(pipeline),
        bound=bound,
        checked_at=now or dt.datetime.now(dt.UTC),
    )


def human(delta: dt.timedelta) -> str:
    """``5.2 h`` under two days, ``3.1 days`` from then on."""
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
