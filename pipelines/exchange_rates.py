"""Exchange rates pipeline: daily rates -> S3 (parquet, append) -> Snowpipe -> ``RAW.EXCHANGE_RATES.RATES``.

uv run python -m pipelines.exchange_rates                                        # latest (daily run)
uv run python -m pipelines.exchange_rates --backfill --start-date 1999-01-04 [--end-date 2026-11-20]
DLT__DESTINATION=duckdb uv run python -m pipelines.exchange_rates                # local warehouse instead

Files land under ``<bucket_url>/exchange-rates/rates/<YYYY>/<MM>/<DD>/<load_id>.<file_id>.parquet``
(``[destination.filesystem]`` in ``.dlt/config.toml``); ``snowflake/exchange_rates.sql`` ingests them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import dlt

from sources.exchange_rates import exchange_rates_source
from utils.destinations import get_destination
from utils.runner import RunReport, explicit, iso_date, run_cli, run_pipeline

PIPELINE_NAME = "exchange_rates"
DATASET_NAME = "exchange_rates"
BUCKET_PREFIX = "exchange-rates"
"""The first folder of the S3 object layout, a contract with the Snowpipe stage: on the filesystem
destination the dataset keeps this name verbatim (dlt would otherwise normalise it to snake case)."""


def create_pipeline() -> dlt.Pipeline:
    """The pipeline on S3 via dlt's filesystem destination (unless DLT__DESTINATION says otherwise).

    Bucket URL, credentials and object layout come from ``[destination.filesystem]`` config.
    """
    destination = get_destination("filesystem", enable_dataset_name_normalization=False)
    on_s3 = destination.destination_name == "filesystem"
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=destination,
        dataset_name=BUCKET_PREFIX if on_s3 else DATASET_NAME,
    )


def run(
    *,
    backfill: bool = False,
    start_date: str | dt.date | None = None,
    end_date: str | dt.date | None = None,
) -> RunReport:
    """Load the latest rates (dates after the last loaded one), or backfill ``start_date``..``end_date``.

    Either way only dates not loaded before are requested and written. State is first restored from the
    destination, so a fresh worker carries on where the last successful load stopped.
    """
    options = explicit(
        mode="backfill" if backfill else "latest",
        start_date=str(start_date) if start_date else None,
        end_date=str(end_date) if end_date else None,
    )
    return run_pipeline(create_pipeline(), lambda: exchange_rates_source(**options))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.exchange_rates", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--backfill", action="store_true", help="load a date range instead of the latest")
    parser.add_argument("--start-date", type=iso_date, help="first date of the backfill (YYYY-MM-DD)")
    parser.add_argument("--end-date", type=iso_date, help="last date of the backfill (default: today)")
    args = parser.parse_args(argv)
    if args.backfill and args.start_date is None:
        parser.error("--backfill needs --start-date YYYY-MM-DD")
    if not args.backfill and (args.start_date or args.end_date):
        parser.error("--start-date/--end-date only apply with --backfill")
    if args.start_date and args.end_date and args.start_date > args.end_date:
        parser.error("--start-date must be on or before --end-date")
    return run_cli(lambda: run(backfill=args.backfill, start_date=args.start_date, end_date=args.end_date))


if __name__ == "__main__":
    sys.exit(main())
