"""HubSpot flow: daily incremental load of HubSpot CRM objects (merge on id).

uv run python flows/hubspot.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python flows/hubspot.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.orchestration import pipeline_flow, pipeline_task, run_load


@pipeline_task("load hubspot", tags=["dlt", "hubspot"])
def load_hubspot(full_refresh: bool = False, objects: list[str] | None = None) -> dict[str, Any]:
    from pipelines import hubspot

    return run_load(hubspot.run, full_refresh=full_refresh, objects=objects)


@pipeline_flow("hubspot")
def hubspot_flow(full_refresh: bool = False, objects: list[str] | None = None) -> dict[str, Any]:
    """Load what changed in HubSpot since the last successful load (everything on the first run)."""
    return load_hubspot(full_refresh=full_refresh, objects=objects)


if __name__ == "__main__":
    hubspot_flow()
