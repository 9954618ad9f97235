"""Freshness check: fails, and so alerts, when a dataset's newest successful load is too old.

Every declared pipeline (``declarations/<name>.yaml``) is checked against its bound
(``declarations.freshness_bound``): how old its newest successful load may be before someone should
look (``freshness``, or derived from its schedules). Each run also publishes the operator's
status table (``python -m pipelines status``) as the table artefact ``pipeline-status``.

    uv run python flows/freshness.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python flows/freshness.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from declarations import freshness_bound
from declarations import pipelines as declared
from pipelines import pipeline_module
from utils.orchestration import pipeline_flow, pipeline_task


class StaleDataError(RuntimeError):
    """One or more datasets have no successful load within their freshness bound."""


@pipeline_task("check freshness", tags=["dlt", "freshness"])
def check_freshness(pipeline_name: str) -> dict[str, Any]:
    from utils import vault_provider
    from utils.freshness import check

    vault_provider.register()  # the destination's credentials may live in the vault
    result = check(pipeline_module(pipeline_name).create_pipeline(), freshness_bound(pipeline_name))
    return {"pipeline": pipeline_name, "stale": result.stale, "summary": result.describe()}


@pipeline_flow("freshness")
def freshness_flow(pipelines: list[str] | None = None) -> list[dict[str, Any]]:
    """Check every pipeline's (or the named pipelines') newest successful load against its bound."""
    names = pipelines or declared()
    unknown = sorted(set(names) - set(declared()))
    if unknown:
        raise ValueError(f"not declared in declarations/: {', '.join(unknown)}")
    results = [check_freshness(name) for name in names]
    lines = ["| pipeline | status | detail |", "|---|---|---|"]
    lines += [f"| {r['pipeline']} | {'STALE' if r['stale'] else 'fresh'} | {r['summary']} |" for r in results]
    create_markdown_artifact(key="freshness-report", markdown="\n".join(lines), description="freshness")
    publish_status(names)
    stale = [r["summary"] for r in results if r["stale"]]
    if stale:
        raise StaleDataError("stale datasets: " + "; ".join(stale))
    return results


def publish_status(names: list[str]) -> None:
    """The operator's status table (``python -m pipelines status``) as the artefact ``pipeline-status``."""
    from pipelines._status import artifact_rows, collect

    create_table_artifact(
        key="pipeline-status",
        table=artifact_rows(collect(names)),
        description="Every pipeline: owner, schedule, last successful load, rows, freshness, last failure",
    )


if __name__ == "__main__":
    freshness_flow()
