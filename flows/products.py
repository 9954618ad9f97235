"""Products flows: daily incremental merge of the product tables, and a manual full refresh.

uv run python flows/products.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python flows/products.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.orchestration import pipeline_flow, pipeline_task, run_load


@pipeline_task("load products", tags=["dlt", "products"])
def load_products(full_refresh: bool = False, start_date: str | None = None) -> dict[str, Any]:
    from pipelines import products

    return run_load(products.run, full_refresh=full_refresh, start_date=start_date)


@pipeline_flow("products-daily")
def products_daily_flow(start_date: str | None = None) -> dict[str, Any]:
    """Merge product rows changed since the last run (``start_date``, YYYY-MM-DD, re-reads from a date)."""
    return load_products(start_date=start_date)


@pipeline_flow("products-full-refresh")
def products_full_refresh_flow() -> dict[str, Any]:
    """Reload every live product row and restart the incremental cursor (run by hand)."""
    return load_products(full_refresh=True)


if __name__ == "__main__":
    products_daily_flow()
