"""The checks flow: freshness per dataset, volume and schema per table, for every declared pipeline.

Every declared pipeline (``declarations/<name>.yaml``) is checked against its bound
(``declarations.freshness_bound``): how old its newest successful load may be before someone should
look (``freshness``, or derived from its schedules); the flow fails, and so alerts, when one is stale.
Each table's newest load is judged on the load metrics in the warehouse (``volume`` and ``schema``,
:mod:`utils.checks`, thresholds under ``checks:`` in the declaration): one that turns ``warn`` or
``fail`` alerts once per episode (:func:`utils.alerts.alert_check_episodes`). A pipeline that cannot
be checked (a bad declaration, an unreachable destination) fails its own checks; the others still
run. A pipeline may also check its source (``source_checks()`` in its module: products' replication
slot with ``change_capture = "logical"``), alerted the same way. Each run also publishes the
operator's status table (``python -m pipelines status``) as the table artefact ``pipeline-status``
and every check as ``pipeline-checks``.

    uv run python flows/freshness.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python flows/freshness.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import State

from declarations import DeclarationError, freshness_bound
from declarations import pipelines as declared
from pipelines import pipeline_module, source_checks
from utils.orchestration import pipeline_flow, pipeline_task


class StaleDataError(RuntimeError):
    """One or more datasets have no successful load within their freshness bound."""


@pipeline_task("check freshness", tags=["dlt", "freshness"])
def check_freshness(pipeline_name: str) -> dict[str, Any]:
    from utils import vault_provider
    from utils.checks import pipeline_checks
    from utils.freshness import check

    try:
        bound = freshness_bound(pipeline_name)
    except DeclarationError as exc:  # no retry can fix the file: fail this pipeline's checks only
        return cannot_check(pipeline_name, str(exc))
    vault_provider.register()  # the destination's credentials may live in the vault
    pipeline = pipeline_module(pipeline_name).create_pipeline()
    result = check(pipeline, bound)
    found = pipeline_checks(pipeline, pipeline_name, result) + source_checks(pipeline_name)
    checks = [c.as_dict() for c in found]
    return {"pipeline": pipeline_name, "stale": result.stale, "summary": result.describe(), "checks": checks}


def cannot_check(pipeline_name: str, reason: str) -> dict[str, Any]:
    """The result of a pipeline whose checks could not run: one failed check saying why."""
    summary = f"{pipeline_name}: cannot check: {reason}"
    return {
        "pipeline": pipeline_name,
        "stale": True,
        "summary": summary,
        "checks": [{"table": None, "check": "freshness", "state": "fail", "detail": summary}],
    }


@pipeline_flow("freshness")
def freshness_flow(pipelines: list[str] | None = None) -> list[dict[str, Any]]:
    """Check every pipeline's (or the named pipelines') newest successful load against its bound."""
    names = pipelines or declared()
    unknown = sorted(set(names) - set(declared()))
    if unknown:
        raise ValueError(f"not declared in declarations/: {', '.join(unknown)}")
    results = [_result(name, check_freshness(name, return_state=True)) for name in names]
    lines = ["| pipeline | status | detail |", "|---|---|---|"]
    lines += [f"| {r['pipeline']} | {'STALE' if r['stale'] else 'fresh'} | {r['summary']} |" for r in results]
    create_markdown_artifact(key="freshness-report", markdown="\n".join(lines), description="freshness")
    publish_status(names)
    publish_checks(results)
    stale = [r["summary"] for r in results if r["stale"]]
    if stale:
        raise StaleDataError("stale datasets: " + "; ".join(stale))
    return results


def _result(name: str, state: State[Any]) -> dict[str, Any]:
    """The task's result, or (after its last retry failed) a failed check of that pipeline alone."""
    if state.is_completed():
        result: dict[str, Any] = state.result()
        return result
    return cannot_check(name, state.message or str(state.name))


def publish_checks(results: list[dict[str, Any]]) -> None:
    """Every check as the table artefact ``pipeline-checks``; new warnings alert once per episode."""
    from utils.alerts import alert_check_episodes

    rows = [{"pipeline": r["pipeline"], **check} for r in results for check in r["checks"]]
    create_table_artifact(key="pipeline-checks", table=rows, description="Freshness, volume and schema")
    alert_check_episodes(rows, [r["pipeline"] for r in results])


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
