"""exchange_rates loaded by dlt straight into Snowflake (emulator, or a real account with
SNOWFLAKE_TESTS=real): the same append-without-duplicates guarantees as on S3.

Production lands files in S3 for Snowpipe; the emulator cannot run the pipe's COPY from an external
stage (no CREATE PIPE, and its external stages need DuckDB's httpfs extension, which is not available
offline), so that part is checked against the real parquet files in tests/pipelines/test_exchange_rates_s3.py.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines import exchange_rates
from tests.fakes.frankfurter import FakeFrankfurter, is_working_day
from tests.fixtures.snowflake import Snowflake

pytestmark = pytest.mark.snowflake
KEY = ("rate_date", "base_currency", "quote_currency")


def published(fake: FakeFrankfurter, first: str, last: str) -> set[tuple[dt.date, str]]:
    """Every (day, quote) the look-alike publishes against EUR from ``first`` to ``last``: the expected
    contents of the table, counted from the source rather than from the run's own report."""
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    days = [start + dt.timedelta(n) for n in range((end - start).days + 1)]
    return {
        (day, c.iso_code)
        for day in days
        if is_working_day(day)
        for c in fake.currencies.values()
        if c.iso_code != "EUR" and c.start <= day <= (c.end or fake.latest)
    }


def loaded(snowflake: Snowflake) -> set[tuple[dt.date, str]]:
    rates = snowflake.table("exchange_rates", "rates")
    return set(snowflake.query(f"select rate_date, quote_currency from {rates}"))


def test_overlapping_backfills_append_each_rate_once(
    frankfurter: FakeFrankfurter, snowflake: Snowflake
) -> None:
    first = exchange_rates.run(backfill=True, start_date="2026-10-01", end_date="2026-10-31")
    assert first.destination == "snowflake"
    exchange_rates.run(backfill=True, start_date="2026-10-15", end_date="2026-11-13")
    rows = snowflake.assert_unique("exchange_rates", "rates", *KEY)
    expected = published(frankfurter, "2026-10-01", "2026-11-13")
    assert len({day for day, _ in expected}) == 32  # working days, 1 October to 13 November 2026
    assert loaded(snowflake) == expected and rows == len(expected)
    types = snowflake.columns("exchange_rates", "rates")
    assert types["RATE_DATE"] == "DATE" and types["RATE"] == "FLOAT"


def test_a_fresh_worker_only_loads_new_dates(frankfurter: FakeFrankfurter, snowflake: Snowflake) -> None:
    exchange_rates.run(backfill=True, start_date="2026-11-02", end_date="2026-11-13")
    before = snowflake.count("exchange_rates", "rates")
    snowflake.restore_from_destination(exchange_rates.create_pipeline)
    frankfurter.reset()
    exchange_rates.run()  # the daily run on a new worker: only the days after 13 November
    assert [r.param("from") for r in frankfurter.requests_to("/rates")] == ["2026-11-14"]
    new = published(frankfurter, "2026-11-14", frankfurter.latest.isoformat())
    assert new and snowflake.count("exchange_rates", "rates") == before + len(new)
    assert loaded(snowflake) == published(frankfurter, "2026-11-02", frankfurter.latest.isoformat())
    snowflake.assert_unique("exchange_rates", "rates", *KEY)
