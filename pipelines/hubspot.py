"""HubSpot pipeline: HubSpot CRM objects -> Snowflake ``RAW.HUBSPOT`` (merge on ``id``, incremental).

uv run python -m pipelines.hubspot [--full-refresh] [--objects contacts,deals]
DLT__DESTINATION=duckdb uv run python -m pipelines.hubspot   # local warehouse instead
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from sources.hubspot import hubspot_source
from utils.destinations import get_destination
from utils.runner import RunReport, explicit, run_cli, run_pipeline

PIPELINE_NAME = "hubspot"
DATASET_NAME = "hubspot"


def create_pipeline() -> dlt.Pipeline:
    """The hubspot pipeline on its configured destination (Snowflake unless DLT__DESTINATION says)."""
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=get_destination("snowflake"),
        dataset_name=DATASET_NAME,
    )


def run(*, full_refresh: bool = False, objects: Sequence[str] | None = None) -> RunReport:
    """Load the changes since the last successful load (everything on the first run).

    ``full_refresh`` drops the selected objects' tables and cursors first and lists every record
    again. ``objects`` left as ``None`` come from ``[sources.hubspot] objects``.
    """
    options = explicit(objects=list(objects) if objects else None)
    counts: dict[str, int] = {}

    def source() -> dlt.sources.DltSource:
        return hubspot_source(**options, request_counts=counts)

    refresh = "drop_resources" if full_refresh else None
    try:
        report = run_pipeline(create_pipeline(), source, refresh=refresh)
    except PipelineStepFailed as exc:
        failed = getattr(exc, "run_report", None)
        if isinstance(failed, RunReport):
            failed.requests_by_object = dict(counts)
        raise
    report.requests_by_object = dict(counts)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.hubspot", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full-refresh", action="store_true", help="drop the tables and cursors and reload everything"
    )
    parser.add_argument("--objects", default=None, help="comma-separated CRM objects, e.g. contacts,deals")
    args = parser.parse_args(argv)
    objects = [o.strip() for o in args.objects.split(",") if o.strip()] if args.objects else None
    return run_cli(lambda: run(full_refresh=args.full_refresh, objects=objects))


if __name__ == "__main__":
    sys.exit(main())
