"""Currencies flow: weekly reload of currency reference data (replace).

uv run python flows/currencies.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python flows/currencies.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.orchestration import pipeline_flow, pipeline_task, run_load


@pipeline_task("load currencies", tags=["dlt", "currencies"])
def load_currencies(include_legacy: bool | None = None) -> dict[str, Any]:
    from pipelines import currencies

    return run_load(currencies.run, include_legacy=include_legacy)


@pipeline_flow("currencies")
def currencies_flow(include_legacy: bool | None = None) -> dict[str, Any]:
    """Reload the currency list into the raw layer."""
    return load_currencies(include_legacy=include_legacy)


if __name__ == "__main__":
    currencies_flow()
