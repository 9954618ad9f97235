"""A pipeline's Snowflake route beside its DuckDB route (``products.py --destination snowflake``,
``hubspot_routes.py``).

Both routes run the pipeline (``pipelines.products``, say) exactly as production does, one fresh
process per run, on the same source data: the DuckDB route (``DLT__DESTINATION=duckdb``) whole, the
Snowflake route with credentials pointing at an unreachable host and ``RESTORE_FROM_DESTINATION=false``,
so extract and normalise run for real and the run stops when load first connects. Reported per route,
medians over ``--repeats`` rounds (one run of each route per round): extract, normalise, their sum and
its ratio to the DuckDB route's, the whole process's wall time (the Snowflake run's includes the failed
connection), the peak memory of the process tree, and the size and format of the files handed to the
loader.
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

UNREACHABLE: Final = (
    "snowflake://user:password@127.0.0.1:1/RAW?warehouse=LOADING&role=LOADER"  # pragma: allowlist secret
)
"""Port 1 on loopback refuses at once: the run fails at its first connection, in load."""

RUN: Final = """
import importlib, json, os, pathlib, sys
pipeline = importlib.import_module(os.environ["ROUTE_PIPELINE"])  # pipelines.products, say

try:
    pipeline.run(**json.loads(os.environ.get("ROUTE_RUN_OPTIONS", "{}")))
    failed = ""
except Exception as exc:  # the Snowflake route stops at load, by design of the measurement
    failed = f"{type(exc).__name__}: {str(exc)[:160]}"
trace = pipeline.create_pipeline().last_trace
steps = {s.step: (s.finished_at - s.started_at).total_seconds() for s in trace.steps if s.finished_at}
files = [  # the data tables' load job files (<table>.<file id>.<retry>.<format>), not dlt's or the SQL
    p for p in pathlib.Path(os.environ["DLT_DATA_DIR"]).rglob("*.*.*.*")
    if p.is_file() and "load" in p.parts and p.suffix != ".sql" and not p.name.startswith("_dlt")
]
print(json.dumps({
    "steps": steps,
    "failed": failed,
    "bytes": sum(p.stat().st_size for p in files),
    "formats": sorted({p.name.split(".")[-1] for p in files}),
}))
"""
"""One run in a fresh process: a pipeline module's ``run()`` as its CLI runs it, then its trace's step
times and the files the run wrote for its tables, as one JSON line."""


@dataclass
class Route:
    name: str
    env: dict[str, str]
    results: list[dict[str, Any]] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)

    def median(self, step: str) -> float:
        return statistics.median(r["steps"].get(step, float("nan")) for r in self.results)

    @property
    def work(self) -> float:
        """Median of extract + normalise: the client's own work before any byte reaches the warehouse."""
        return statistics.median(r["steps"]["extract"] + r["steps"]["normalize"] for r in self.results)


def routes(env: dict[str, str], work: Path, pipeline: str = "pipelines.products") -> list[Route]:
    """The DuckDB route and the Snowflake route of ``pipeline``, each from ``env``."""
    common = {**env, "ROUTE_PIPELINE": pipeline, "DLT_DATA_DIR": str(work / "dlt")}
    return [
        Route(
            "duckdb route",
            {
                **common,
                "DLT__DESTINATION": "duckdb",
                "DESTINATION__DUCKDB__CREDENTIALS": str(work / "r.duckdb"),
            },
        ),
        Route(
            "snowflake route (stops at load)",
            {
                **common,
                "DLT__DESTINATION": "snowflake",
                "RESTORE_FROM_DESTINATION": "false",
                "DESTINATION__SNOWFLAKE__CREDENTIALS": UNREACHABLE,
            },
        ),
    ]


def run_round(measure: Callable[..., Any], candidates: list[Route], work: Path) -> None:
    """One fresh run of each route (no pipeline state, no warehouse file, no package left over)."""
    for route in candidates:
        shutil.rmtree(work / "dlt", ignore_errors=True)
        (work / "r.duckdb").unlink(missing_ok=True)
        run = measure(["uv", "run", "python", "-c", RUN], route.env)
        result = json.loads(run.stdout.strip().splitlines()[-1])
        if route.env["DLT__DESTINATION"] == "duckdb" and result["failed"]:
            raise RuntimeError(f"the DuckDB route failed: {result['failed']}")
        if route.env["DLT__DESTINATION"] == "snowflake" and "load" not in result["failed"]:
            raise RuntimeError(f"the Snowflake route did not stop at load: {result['failed'] or 'it loaded'}")
        route.results.append(result)
        route.peaks.append(run.peak_mb)
        route.walls.append(run.wall)


def render(candidates: list[Route]) -> str:
    base = candidates[0].work
    lines = [
        f"{'route':<34} {'extract s':>9} {'normalise s':>11} {'sum s':>7} {'ratio':>6} {'wall s':>7}"
        f" {'peak MB':>8} {'files MB':>9} formats",
        "(medians; ratio: extract + normalise over the DuckDB route's; wall: the whole process, the"
        " Snowflake run's ending at its refused connection; files: what the run wrote for its tables)",
    ]
    for route in candidates:
        formats = sorted({f for r in route.results for f in r["formats"]})
        lines.append(
            f"{route.name:<34} {route.median('extract'):>9.2f} {route.median('normalize'):>11.2f}"
            f" {route.work:>7.2f} {route.work / base:>5.2f}x {statistics.median(route.walls):>7.2f}"
            f" {max(route.peaks):>8.0f} {statistics.median(r['bytes'] for r in route.results) / 2**20:>9.1f}"
            f" {','.join(formats)}"
        )
    return "\n".join(lines)
