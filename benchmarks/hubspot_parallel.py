"""Parallel extraction of HubSpot objects: wall time of a full load, objects one by one vs at once.

Starts the HubSpot look-alike on 127.0.0.1 with a realistic round trip per request, loads contacts,
companies and deals into temporary DuckDB files twice - ``parallel = false`` and ``true`` - with
HubSpot's real client-side limits, and prints requests, wall time, rows/s and the speed-up. The
objects share one rate limiter, so parallelism only pays until the app's request budget is the limit.

    uv run python -m benchmarks.hubspot_parallel [--records 3000] [--latency 0.15]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from tests.fakes.hubspot import FakeHubSpot

OBJECTS = ("contacts", "companies", "deals")


def load(fake: FakeHubSpot, work: Path, parallel: bool) -> tuple[float, int, int]:
    from pipelines import hubspot

    label = "parallel" if parallel else "sequential"
    os.environ.update(
        {
            "SOURCES__HUBSPOT__PARALLEL": str(parallel).lower(),
            "DESTINATION__DUCKDB__CREDENTIALS": str(work / f"{label}.duckdb"),
            "DLT_DATA_DIR": str(work / label),
        }
    )
    latency = fake.latency
    fake.reset()
    fake.latency = latency
    started = time.perf_counter()
    report = hubspot.run(objects=list(OBJECTS))
    wall = time.perf_counter() - started
    rows = sum(report.rows_by_table.get(o, 0) for o in OBJECTS)
    return wall, rows, len(fake.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3_000, help="records per object")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds per request round trip")
    args = parser.parse_args()

    fake = FakeHubSpot().start()
    fake.burst_limit, fake.search_limit = 100, 5  # the look-alike throttles like HubSpot would
    for name in OBJECTS:
        fake.add(name, args.records)
    fake.latency = args.latency
    work = Path(tempfile.mkdtemp(prefix="hubspot-parallel-"))
    os.environ.update(
        {
            "SOURCES__HUBSPOT__BASE_URL": fake.base_url,
            "SOURCES__HUBSPOT__API_KEY": fake.token,
            "DLT__DESTINATION": "duckdb",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
    )
    print(
        f"HubSpot look-alike: {len(OBJECTS)} objects x {args.records:,} records, "
        f"{args.latency * 1000:.0f} ms per request, limits 100 per 10 s"
    )
    results = {}
    for parallel in (False, True):
        wall, rows, requests = load(fake, work, parallel)
        results[parallel] = wall
        label = "parallel" if parallel else "sequential"
        print(
            f"{label:<11} rows {rows:>7,}  requests {requests:>4}  wall {wall:6.1f} s  "
            f"{rows / wall:8,.0f} rows/s  max in flight {fake.max_in_flight}  throttled {fake.throttled}"
        )
    print(
        f"speed-up {results[False] / results[True]:.2f}x; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"
    )
    fake.stop()


if __name__ == "__main__":
    main()
