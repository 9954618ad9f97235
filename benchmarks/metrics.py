"""Benchmark: what recording the load metrics (utils/metrics.py) adds to a run, side by side.

uv run python benchmarks/metrics.py [--rows 1000] [--runs 6]

Alternates runs of the shared runner with and without the metrics recording (the latter with
``utils.metrics.record`` replaced by a no-op) into a temporary DuckDB file, each a merge of ``--rows``
small rows, and prints the median wall time of each (the first run of each left out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="metrics-bench-")
    os.environ.update(
        {
            "DLT_DATA_DIR": f"{folder}/dlt",
            "DLT__DESTINATION": "duckdb",
            "DESTINATION__DUCKDB__CREDENTIALS": f"{folder}/warehouse.duckdb",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
    )
    import dlt

    from utils import metrics, runner
    from utils.destinations import get_destination

    record = metrics.record

    def source() -> Any:
        rows = [{"id": i, "name": f"item {i}", "value": i * 1.5} for i in range(args.rows)]
        return dlt.resource(rows, name="items", write_disposition="merge", primary_key="id")

    seconds: dict[str, list[float]] = {"with metrics": [], "without": []}
    for _ in range(args.runs):
        for mode in seconds:
            metrics.record = record if mode == "with metrics" else (lambda pipeline, report: None)
            name = "bench_" + mode.split()[0]
            pipeline = dlt.pipeline(
                pipeline_name=name, destination=get_destination("duckdb"), dataset_name=name
            )
            started = time.perf_counter()
            runner.run_pipeline(pipeline, source)
            seconds[mode].append(time.perf_counter() - started)
    for mode, times in seconds.items():
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(f"{mode:>13}: median {statistics.median(times[1:]):.2f} s ({shown})")


if __name__ == "__main__":
    main()
