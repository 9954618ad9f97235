"""Benchmark: a 28-year exchange-rate backfill (1999-01-04..2026-11-20) into DuckDB and into S3.

uv run python benchmarks/exchange_rates.py                 # both destinations, one child process each
uv run python benchmarks/exchange_rates.py --destination s3 --quotes all

Everything runs on loopback: the Frankfurter look-alike in this process (so requests can be counted) and,
for S3, a moto server in a child process. For each destination it prints requests made, rows, wall time,
rows/s and the process's peak memory (ru_maxrss, which includes the look-alike), for the backfill, the
same backfill re-run (nothing to do) and a daily run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TODAY = dt.date(2026, 11, 20)
START = dt.date(1999, 1, 4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return moto, endpoint
        except OSError:
            time.sleep(0.1)
    moto.kill()
    raise RuntimeError("moto server did not start")


def run_one(destination: str, quotes: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-exchange-rates-"))
    os.chdir(REPO)  # .dlt/config.toml: layout and the exchange_rates normaliser settings
    os.environ.update(
        {
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "DLT_DATA_DIR": str(workdir / "dlt"),
            "SOURCES__EXCHANGE_RATES__AS_OF": TODAY.isoformat(),
        }
    )
    if quotes != "all":
        os.environ["SOURCES__EXCHANGE_RATES__QUOTES"] = (
            "[" + ",".join(f'"{q}"' for q in quotes.split(",")) + "]"
        )
    moto = None
    if destination == "duckdb":
        os.environ["DLT__DESTINATION"] = "duckdb"
        os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = str(workdir / "bench.duckdb")
    else:
        moto, endpoint = _start_moto()
        os.environ.update(
            {
                "DLT__DESTINATION": "filesystem",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "eu-west-1",
                "AWS_ENDPOINT_URL": endpoint,
                "DESTINATION__FILESYSTEM__BUCKET_URL": "s3://bench-landing",
            }
        )
        import boto3

        boto3.client("s3").create_bucket(
            Bucket="bench-landing", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )

    from pipelines import exchange_rates
    from tests.fakes.frankfurter import FakeFrankfurter

    fake = FakeFrankfurter(today=TODAY).start()
    os.environ["SOURCES__EXCHANGE_RATES__BASE_URL"] = fake.base_url
    try:
        for label, kwargs in (
            ("backfill 1999-2026", {"backfill": True, "start_date": START, "end_date": TODAY}),
            ("same backfill again", {"backfill": True, "start_date": START, "end_date": TODAY}),
            ("daily run", {}),
        ):
            fake.reset()
            started = time.perf_counter()
            report = exchange_rates.run(**kwargs)  # type: ignore[arg-type]
            wall = time.perf_counter() - started
            rows = report.total_rows
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            steps = ", ".join(f"{k} {v:.2f}s" for k, v in report.step_seconds.items())
            requests = len(fake.requests_to("/rates"))
            print(
                f"{destination:<7} {label:<20} requests {requests:>3}  rows {rows:>9,}  "
                f"wall {wall:6.2f} s  {rows / wall:>9,.0f} rows/s  peak RSS {peak_mb:6.0f} MB  ({steps})",
                flush=True,
            )
    finally:
        fake.stop()
        if moto is not None:
            moto.terminate()
            moto.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--destination", choices=["duckdb", "s3"], help="run one destination in this process")
    parser.add_argument("--quotes", default="all", help="comma-separated quotes, or 'all' (default)")
    args = parser.parse_args()
    if args.destination:
        run_one(args.destination, args.quotes)
        return
    for destination in ("duckdb", "s3"):  # a fresh process each, so peak memory is per destination
        subprocess.run(
            [sys.executable, __file__, "--destination", destination, "--quotes", args.quotes], check=True
        )


if __name__ == "__main__":
    main()
