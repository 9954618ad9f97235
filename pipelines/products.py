"""Products pipeline: PostgreSQL product tables -> Snowflake ``RAW.PRODUCTS`` (incremental merge).

uv run python -m pipelines.products [--full-refresh] [--start-date YYYY-MM-DD]
DLT__DESTINATION=duckdb uv run python -m pipelines.products   # local warehouse instead
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import dlt
import pendulum

from sources.products import products_source
from utils.destinations import get_destination
from utils.runner import RunReport, exit_cli, iso_date, run_cli, run_pipeline
from utils.schema_evolution import ColumnChange, carry_schema_changes

PIPELINE_NAME = "products"
DATASET_NAME = "products"


def create_pipeline() -> dlt.Pipeline:
    """The products pipeline on its configured destination (Snowflake unless DLT__DESTINATION says)."""
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=get_destination("snowflake"),
        dataset_name=DATASET_NAME,
    )


def run(*, full_refresh: bool = False, start_date: dt.date | str | None = None) -> RunReport:
    """Load rows changed since the last run (merge); settings come from ``[sources.products]``.

    ``full_refresh`` forgets the incremental cursor (dlt resets a resource's state on ``replace``)
    and reloads every live row with ``replace``: one transaction swaps the table's rows for the new
    ones (on Snowflake from the staging schema, on DuckDB straight from the run's files), so readers
    never see an empty table and a failed load keeps the last good rows; the table is not dropped, so
    Snowflake grants survive. The next run merges again.
    ``start_date`` re-reads rows changed on or after that date (UTC) up to now and merges them; on
    its own it leaves the daily cursor where it was, with ``full_refresh`` it is where the reload
    starts.
    """
    pipeline = create_pipeline()
    options: dict[str, Any] = {"write_disposition": "replace"} if full_refresh else {}
    if (
        pipeline.destination
        and pipeline.destination.destination_name == "snowflake"
        and dlt.config.get("sources.products.json_as_objects", bool) is not False
    ):
        options["json_as_objects"] = True  # JSON lands as VARIANT objects, not strings (docs/products.md)
    if start_date is not None:
        start = pendulum.parse(str(start_date), tz="UTC")
        options["initial_value"] = start
        if not full_refresh:
            options["end_value"] = pendulum.now("UTC")
    carried: list[ColumnChange] = []

    def source() -> Any:
        # built after the runner has synced state and schemas from the destination: the source's
        # column changes are compared with what is loaded, and carried (or refused) before extracting
        data = products_source(**options)
        carried.extend(carry_schema_changes(pipeline, data, replacing=full_refresh))
        return data

    report = run_pipeline(pipeline, source)
    report.notes += [f"column widened: {change}" for change in carried]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.products", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help=(
            "forget the cursor and reload every live row; one transaction swaps the rows (the tables"
            " are never left empty or dropped)"
        ),
    )
    parser.add_argument(
        "--start-date",
        type=iso_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="re-read rows changed on or after this date (UTC)",
    )
    args = parser.parse_args(argv)
    return run_cli(lambda: run(full_refresh=args.full_refresh, start_date=args.start_date))


if __name__ == "__main__":
    exit_cli(main())
