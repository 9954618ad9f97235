"""Exchange rates flows: the daily load of new ECB reference rates, and a parameterised backfill.

uv run python flows/exchange_rates.py     # the daily flow, once
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python flows/exchange_rates.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.orchestration import pipeline_flow, pipeline_task, run_load


@pipeline_task("load latest exchange rates", tags=["dlt", "exchange_rates"])
def load_latest_rates() -> dict[str, Any]:
    from pipelines import exchange_rates

    return run_load(exchange_rates.run)


@pipeline_task("backfill exchange rates", tags=["dlt", "exchange_rates"])
def backfill_rates(start_date: dt.date, end_date: dt.date | None = None) -> dict[str, Any]:
    from pipelines import exchange_rates

    return run_load(exchange_rates.run, backfill=True, start_date=start_date, end_date=end_date)


@pipeline_flow("exchange-rates-daily")
def exchange_rates_daily_flow() -> dict[str, Any]:
    """Load the rates published since the last successful load (nothing twice)."""
    return load_latest_rates()


@pipeline_flow("exchange-rates-backfill")
def exchange_rates_backfill_flow(start_date: dt.date, end_date: dt.date | None = None) -> dict[str, Any]:
    """Load ``start_date``..``end_date`` (default: today), skipping dates already loaded."""
    if end_date is not None and start_date > end_date:
        raise ValueError(f"start_date {start_date} is after end_date {end_date}")
    return backfill_rates(start_date=start_date, end_date=end_date)


if __name__ == "__main__":
    exchange_rates_daily_flow()
