"""Currencies pipeline: currency reference data -> Snowflake ``RAW.CURRENCIES`` (replace).

uv run python -m pipelines.currencies [--include-legacy] [--provider openexchangerates]
DLT__DESTINATION=duckdb uv run python -m pipelines.currencies   # local warehouse instead
"""

from __future__ import annotations

import argparse
import sys

import dlt

from sources.currencies import currencies_source
from utils.destinations import get_destination
from utils.runner import RunReport, explicit, run_cli, run_pipeline

PIPELINE_NAME = "currencies"
DATASET_NAME = "currencies"


def create_pipeline() -> dlt.Pipeline:
    """The currencies pipeline on its configured destination (Snowflake unless DLT__DESTINATION says)."""
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=get_destination("snowflake"),
        dataset_name=DATASET_NAME,
    )


def run(*, provider: str | None = None, include_legacy: bool | None = None) -> RunReport:
    """Load the currency list; arguments left as ``None`` come from ``[sources.currencies]`` config."""
    options = explicit(provider=provider, include_legacy=include_legacy)
    return run_pipeline(create_pipeline(), lambda: currencies_source(**options))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.currencies", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--provider", choices=["frankfurter", "openexchangerates"], default=None)
    parser.add_argument(
        "--include-legacy", action="store_true", default=None, help="also load legacy currencies"
    )
    args = parser.parse_args(argv)
    return run_cli(lambda: run(provider=args.provider, include_legacy=args.include_legacy))


if __name__ == "__main__":
    sys.exit(main())
