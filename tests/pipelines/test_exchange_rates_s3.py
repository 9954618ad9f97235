"""The exchange_rates pipeline into S3 (a real moto server on loopback), the way production runs it."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import exchange_rates
from tests.fakes.frankfurter import FakeFrankfurter, is_working_day
from tests.fixtures.aws import BUCKET
from tests.fixtures.warehouse import Warehouse
from utils.destinations import REPO_ROOT

LAYOUT = re.compile(r"^exchange-rates/rates/\d{4}/\d{2}/\d{2}/(?P<load_id>[0-9.]+)\.[0-9a-z]+\.parquet$")
COLUMNS = ["rate_date", "base_currency", "quote_currency", "rate", "provider", "loaded_at", "_dlt_load_id"]


def keys(s3: Any) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def data_files(s3: Any) -> list[str]:
    return [key for key in keys(s3) if key.startswith("exchange-rates/rates/")]


def load_id(key: str) -> str:
    match = LAYOUT.match(key)
    assert match, f"{key} is not under the documented layout"
    return match["load_id"]


def read_rates(s3: Any) -> pa.Table:
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        for key in data_files(s3)
    ]
    return pa.concat_tables(tables)


def assert_unique(table: pa.Table) -> int:
    keys_ = set(
        zip(
            *(table.column(c).to_pylist() for c in ("rate_date", "base_currency", "quote_currency")),
            strict=True,
        )
    )
    assert len(keys_) == table.num_rows, "a (date, base, quote) landed in S3 twice"
    return table.num_rows


def test_files_land_under_the_documented_layout_as_parquet(frankfurter: FakeFrankfurter, s3: Any) -> None:
    report = exchange_rates.run(backfill=True, start_date="2023-01-01", end_date="2024-12-31")
    working_days = sum(is_working_day(dt.date(2023, 1, 1) + dt.timedelta(days=n)) for n in range(731))
    assert report.destination == "filesystem" and report.status == "succeeded"
    files = data_files(s3)
    assert files and all(LAYOUT.match(key) for key in files), files
    assert {load_id(key) for key in files} == set(report.load_ids)
    assert any(key.startswith("exchange-rates/_dlt_loads/") for key in keys(s3))
    table = read_rates(s3)
    assert table.column_names == COLUMNS
    assert table.schema.field("rate_date").type == pa.date32()
    assert table.schema.field("rate").type == pa.float64()
    assert pa.types.is_timestamp(table.schema.field("loaded_at").type)
    assert table.schema.field("loaded_at").type.tz == "UTC"
    assert assert_unique(table) == report.rows_by_table["rates"] == 3 * working_days


def test_reruns_and_daily_runs_add_no_duplicate_rows(frankfurter: FakeFrankfurter, s3: Any) -> None:
    exchange_rates.run(backfill=True, start_date="2026-06-01", end_date="2026-09-30")
    first = assert_unique(read_rates(s3))
    exchange_rates.run(backfill=True, start_date="2026-01-01", end_date="2026-10-31")  # overlaps the first
    exchange_rates.run(backfill=True, start_date="2026-01-01", end_date="2026-10-31")  # the same again
    exchange_rates.run()  # daily: November so far
    exchange_rates.run()  # daily again: nothing new
    table = read_rates(s3)
    total = assert_unique(table)
    assert total > first
    assert max(table.column("rate_date").to_pylist()) == frankfurter.latest
    assert len({load_id(key) for key in data_files(s3)}) == 3, "runs with nothing new write no file"


def test_a_fresh_worker_carries_on_from_the_state_in_s3(
    frankfurter: FakeFrankfurter, s3: Any, warehouse: Warehouse
) -> None:
    exchange_rates.run(backfill=True, start_date="2026-10-01", end_date="2026-11-13")
    before = assert_unique(read_rates(s3))
    warehouse.wipe_pipelines()  # an ephemeral worker: no local pipeline folder
    frankfurter.reset()
    exchange_rates.run()
    assert [r.param("from") for r in frankfurter.requests_to("/rates")] == ["2026-11-14"]
    assert assert_unique(read_rates(s3)) == before + 3 * 5


def test_the_snowpipe_ddl_matches_the_files(frankfurter: FakeFrankfurter, s3: Any) -> None:
    """fakesnow has no CREATE PIPE and reads external stages through DuckDB's httpfs (not available
    offline), so the pipe is checked against the real files instead: columns, path and layout."""
    exchange_rates.run(backfill=True, start_date="2026-11-02", end_date="2026-11-06")
    sql = (REPO_ROOT / "snowflake" / "exchange_rates.sql").read_text()
    selected = re.findall(r"\$1:(\w+)::", sql)
    assert selected == read_rates(s3).column_names == COLUMNS
    stage_url = re.search(r"URL = 's3://[^/]+/(?P<prefix>[^']*)'", sql)
    assert stage_url and stage_url["prefix"] == "exchange-rates/"
    assert "FROM @RAW.EXCHANGE_RATES.LANDING/rates/" in sql and "AUTO_INGEST = TRUE" in sql
    config = (REPO_ROOT / ".dlt" / "config.toml").read_text()
    assert 'layout = "{table_name}/{YYYY}/{MM}/{DD}/{load_id}.{file_id}.{ext}"' in config
