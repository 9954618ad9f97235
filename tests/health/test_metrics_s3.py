"""exchange_rates on S3 (moto on loopback): the metrics land beside the rates, outside what Snowpipe reads."""

from __future__ import annotations

import io
from typing import Any

import pyarrow.parquet as pq

from pipelines import exchange_rates
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.aws import BUCKET
from tests.pipelines.test_exchange_rates_s3 import data_files, keys, load_id


def test_metrics_are_parquet_beside_the_rates_and_the_rates_are_unchanged(
    frankfurter: FakeFrankfurter, s3: Any
) -> None:
    report = exchange_rates.run(backfill=True, start_date="2026-11-02", end_date="2026-11-13")
    assert {load_id(key) for key in data_files(s3)} == set(report.load_ids), "rates/ holds data loads only"
    [metrics] = [key for key in keys(s3) if key.startswith("exchange-rates/_pipeline_metrics/")]
    assert metrics.endswith(".parquet")
    body = s3.get_object(Bucket=BUCKET, Key=metrics)["Body"].read()
    [row] = pq.read_table(io.BytesIO(body)).to_pylist()
    assert (row["pipeline_name"], row["table_name"], row["load_id"]) == (
        "exchange_rates",
        "rates",
        report.load_ids[0],
    )
    assert row["rows_loaded"] == report.rows_by_table["rates"] > 0 and row["destination"] == "filesystem"
    assert "rate" in row["columns_present"] and row["new_table"] is True


def test_status_freshness_and_checks_read_s3_without_dlts_sql_client(
    frankfurter: FakeFrankfurter, s3: Any
) -> None:
    """dlt's SQL client over S3 fails with DuckDB 2 (it attaches a secret through a removed call): the
    freshness check, status and the checks read the few files they need instead."""
    from pipelines._status import collect
    from utils.checks import history
    from utils.freshness import newest_load, rows_in_load

    first = exchange_rates.run(backfill=True, start_date="2026-11-02", end_date="2026-11-06")
    second = exchange_rates.run(backfill=True, start_date="2026-11-09", end_date="2026-11-13")
    pipeline = exchange_rates.create_pipeline()

    load = newest_load(pipeline)
    assert load is not None and (load.load_id, load.schema_name) == (second.load_ids[0], "exchange_rates")
    assert rows_in_load(pipeline, load) == second.rows_by_table["rates"] > 0
    assert [m.load_id for m in history(pipeline)["rates"]] == [first.load_ids[0], second.load_ids[0]]
    [status] = collect(["exchange_rates"])
    assert status.error is None and status.rows_in_last_load == second.rows_by_table["rates"]
