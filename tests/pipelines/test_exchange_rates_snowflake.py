"""exchange_rates loaded by dlt straight into Snowflake (emulator, or a real account with
SNOWFLAKE_TESTS=real): the same append-without-duplicates guarantees as on S3.

Production lands files in S3 for Snowpipe; the emulator cannot run the pipe's COPY from an external
stage (no CREATE PIPE, and its external stages need DuckDB's httpfs extension, which is not available
offline), so that part is checked against the real parquet files in tests/pipelines/test_exchange_rates_s3.py.
"""

from __future__ import annotations

import pytest

from pipelines import exchange_rates
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.snowflake import Snowflake

pytestmark = pytest.mark.snowflake
KEY = ("rate_date", "base_currency", "quote_currency")


def test_overlapping_backfills_append_each_rate_once(
    frankfurter: FakeFrankfurter, snowflake: Snowflake
) -> None:
    first = exchange_rates.run(backfill=True, start_date="2026-10-01", end_date="2026-10-31")
    assert first.destination == "snowflake" and first.rows_by_table["rates"] > 0
    exchange_rates.run(backfill=True, start_date="2026-10-15", end_date="2026-11-13")
    rows = snowflake.assert_unique("exchange_rates", "rates", *KEY)
    rates = snowflake.table("exchange_rates", "rates")
    days = snowflake.scalar(f"select count(distinct rate_date) from {rates}")
    assert days == 32  # working days from 1 October to 13 November 2026 (no TARGET holidays in it)
    assert rows == first.rows_by_table["rates"] * days // 22
    types = snowflake.columns("exchange_rates", "rates")
    assert types["RATE_DATE"] == "DATE" and types["RATE"] == "FLOAT"


def test_a_fresh_worker_only_loads_new_dates(frankfurter: FakeFrankfurter, snowflake: Snowflake) -> None:
    exchange_rates.run(backfill=True, start_date="2026-11-02", end_date="2026-11-13")
    before = snowflake.count("exchange_rates", "rates")
    snowflake.restore_from_destination(exchange_rates.create_pipeline)
    frankfurter.reset()
    report = exchange_rates.run()  # the daily run on a new worker: only the days after 13 November
    assert [r.param("from") for r in frankfurter.requests_to("/rates")] == ["2026-11-14"]
    assert snowflake.count("exchange_rates", "rates") == before + report.rows_by_table["rates"]
    snowflake.assert_unique("exchange_rates", "rates", *KEY)
