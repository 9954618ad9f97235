"""Lineage on the Prefect test harness: every load claims the tables it wrote as assets (utils/lineage.py).

For each pipeline's flow: one ``prefect.asset.materialization.succeeded`` event per destination table
written, keyed as prefect-dbt keys the same relation (``duckdb://<file stem>/<schema>/<table>``), with
the declared upstream as related ``asset`` resources, the owner and description as asset properties,
and rows loaded that match the warehouse. A failed load claims nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from prefect.states import State

import flows.currencies as currencies_flow
import flows.exchange_rates as exchange_rates_flow
import flows.hubspot as hubspot_flow
import flows.products as products_flow
from declarations import declaration
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.aws import Aws
from tests.fixtures.faults import Faults
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.prefect import asset_events, run_flow, without_retry_delay
from tests.fixtures.snowflake import CREDENTIALS_ENV, Snowflake
from tests.fixtures.warehouse import Warehouse
from utils.metrics import METRICS_TABLE

pytestmark = pytest.mark.usefixtures("prefect_harness")

SUCCEEDED = "prefect.asset.materialization.succeeded"


def succeeded(state: State[Any], expect: int) -> dict[str, Any]:
    """The run's succeeded materialisations by asset key (each key once)."""
    assert state.is_completed(), state.message
    events = [e for e in asset_events(state.state_details.flow_run_id, expect=expect) if e.event == SUCCEEDED]
    by_key = {e.resource.id: e for e in events}
    assert len(by_key) == len(events), f"a table was claimed twice: {[e.resource.id for e in events]}"
    return by_key


def duckdb_key(warehouse: Warehouse, dataset: str, table: str) -> str:
    """prefect-dbt's key for the relation dbt-duckdb renders: the catalog is the file's stem."""
    return f"duckdb://{warehouse.path.stem}/{dataset}/{table}"


def upstream(event: Any) -> set[str]:
    return {r.id for r in event.related if r.role == "asset"}


def assert_declared(event: Any, pipeline: str) -> None:
    """Owner and description from the pipeline's declaration; materialised by dlt."""
    spec = declaration(pipeline)
    assert event.resource["prefect.asset.description"] == spec.description
    assert json.loads(event.resource["prefect.asset.owners"]) == [spec.owner]
    assert ("dlt", "asset-materialized-by") in {(r.id, r.role) for r in event.related}


def test_currencies_claims_its_table(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    run = run_flow(currencies_flow.currencies_flow)
    claims = succeeded(run.state, expect=1)
    key = duckdb_key(warehouse, "currencies", "currencies")
    assert set(claims) == {key}
    event = claims[key]
    assert upstream(event) == {"https://api.frankfurter.dev/v2/currencies"}
    assert_declared(event, "currencies")
    rows = warehouse.scalar("select count(*) from currencies.currencies")
    assert event.payload["rows_loaded"] == rows > 0
    assert event.payload["load_ids"] == run.value["load_ids"] != []
    assert (
        event.payload["new_table"] is True
        and event.resource["prefect.resource.name"] == "currencies.currencies"
    )


def assert_claims_every_table(claims: dict[str, Any], warehouse: Warehouse, dataset: str) -> set[str]:
    """A first load: every data table in the warehouse is claimed once, with its row count."""
    tables = {t for t in warehouse.tables(dataset) if not t.startswith("_dlt") and t != METRICS_TABLE}
    assert tables and set(claims) == {duckdb_key(warehouse, dataset, t) for t in tables}
    for table in tables:
        rows = warehouse.scalar(f'select count(*) from {dataset}."{table}"')
        assert claims[duckdb_key(warehouse, dataset, table)].payload["rows_loaded"] == rows > 0, table
    return tables


def test_exchange_rates_claims_rates_on_backfill_and_daily_runs(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", '["USD", "GBP"]')
    backfill: State[Any] = exchange_rates_flow.exchange_rates_backfill_flow(
        start_date=dt.date(2026, 11, 2), end_date=dt.date(2026, 11, 13), return_state=True
    )
    claims = succeeded(backfill, expect=1)
    assert assert_claims_every_table(claims, warehouse, "exchange_rates") == {"rates"}
    [event] = claims.values()
    assert upstream(event) == set(declaration("exchange_rates").upstream)
    assert_declared(event, "exchange_rates")

    daily: State[Any] = exchange_rates_flow.exchange_rates_daily_flow(return_state=True)
    [event] = succeeded(daily, expect=1).values()
    total = warehouse.scalar("select count(*) from exchange_rates.rates")
    assert event.payload["rows_loaded"] == total - 2 * 10 > 0, "the daily run claims only its own rows"
    assert event.payload["new_table"] is False


def test_hubspot_claims_each_object_and_its_nested_tables(hubspot: FakeHubSpot, warehouse: Warehouse) -> None:
    ids = {
        name: hubspot.add(name, count) for name, count in [("contacts", 30), ("companies", 5), ("deals", 7)]
    }
    hubspot.associate("contacts", "companies", ids["contacts"][0], ids["companies"][0])
    hubspot.associate("deals", "contacts", ids["deals"][0], *ids["contacts"][:3])
    state: State[Any] = hubspot_flow.hubspot_flow(return_state=True)
    claims = succeeded(state, expect=5)  # three objects and two association tables
    tables = assert_claims_every_table(claims, warehouse, "hubspot")
    assert {"contacts", "companies", "deals"} < tables, "nested tables (associations) are claimed too"
    for event in claims.values():
        assert upstream(event) == set(declaration("hubspot").upstream)
        assert_declared(event, "hubspot")

    hubspot.modify("deals", ids["deals"][:2], dealstage="closedwon")
    again: State[Any] = hubspot_flow.hubspot_flow(objects=["deals"], return_state=True)
    claims = succeeded(again, expect=1)
    assert duckdb_key(warehouse, "hubspot", "contacts") not in claims, "a table not written is not claimed"
    assert claims[duckdb_key(warehouse, "hubspot", "deals")].payload["rows_loaded"] == 2


def test_products_claims_its_table_with_the_database_upstream(
    products_db: ProductsDb, warehouse: Warehouse
) -> None:
    state: State[Any] = products_flow.products_daily_flow(return_state=True)
    claims = succeeded(state, expect=1)
    assert assert_claims_every_table(claims, warehouse, "products") == {"products"}
    [event] = claims.values()
    credentials = sa.make_url(products_db.uri)
    host = credentials.host or credentials.query["host"]
    assert upstream(event) == {f"postgres://{host}/{credentials.database}/public/products"}
    assert "@" not in str(upstream(event)), "no user or password in the key"
    assert_declared(event, "products")

    nothing_new: State[Any] = products_flow.products_daily_flow(return_state=True)
    assert succeeded(nothing_new, expect=0) == {}, "a run that wrote no rows claims nothing"


@pytest.mark.snowflake
def test_snowflake_keys_name_database_schema_and_table_as_prefect_dbt_does(
    frankfurter: FakeFrankfurter, snowflake: Snowflake
) -> None:
    state: State[Any] = currencies_flow.currencies_flow(return_state=True)
    [(key, event)] = succeeded(state, expect=1).items()
    database = snowflake.database.upper()
    assert key == f"snowflake://{database}/{snowflake.dataset('currencies')}/CURRENCIES"
    assert os.environ[CREDENTIALS_ENV + "HOST"].lower() not in key.lower(), "no account in the key"
    assert event.payload["rows_loaded"] == snowflake.count("currencies", "currencies") > 0
    assert event.resource["prefect.resource.name"] == f"{snowflake.dataset('currencies')}.CURRENCIES"
    text = event.model_dump_json()
    for secret in ("USERNAME", "PRIVATE_KEY", "PRIVATE_KEY_PASSPHRASE"):
        if value := os.environ.get(CREDENTIALS_ENV + secret):
            assert value not in text, f"{secret} leaked into the event"


def test_s3_keys_name_the_bucket_dataset_and_table(
    frankfurter: FakeFrankfurter, aws: Aws, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = "lineage-landing-test"
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": aws.region})
    monkeypatch.setenv("DLT__DESTINATION", "filesystem")
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", f"s3://{bucket}")
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", '["USD", "GBP"]')
    state: State[Any] = exchange_rates_flow.exchange_rates_backfill_flow(
        start_date=dt.date(2026, 11, 2), end_date=dt.date(2026, 11, 6), return_state=True
    )
    [(key, event)] = succeeded(state, expect=1).items()
    assert key == f"s3://{bucket}/exchange-rates/rates"
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="exchange-rates/rates/")
    files = [o["Key"] for page in pages for o in page.get("Contents", [])]
    rows = sum(
        pq.read_metadata(io.BytesIO(s3.get_object(Bucket=bucket, Key=f)["Body"].read())).num_rows
        for f in files
    )
    assert event.payload["rows_loaded"] == rows == 2 * 5


def test_a_retry_that_finishes_the_failed_attempts_package_claims_its_rows(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_retry_delay(monkeypatch, currencies_flow, "load_currencies")
    faults.fail_load()
    run = run_flow(currencies_flow.currencies_flow)
    assert run.value["extracted"] is False, "the retry only loaded the pending package"
    claims = succeeded(run.state, expect=1)
    assert assert_claims_every_table(claims, warehouse, "currencies") == {"currencies"}


def test_a_failed_load_claims_nothing(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_retry_delay(monkeypatch, currencies_flow, "load_currencies")
    faults.fail_load(times=10)
    state: State[Any] = currencies_flow.currencies_flow(return_state=True)
    assert state.is_failed()
    events = asset_events(state.state_details.flow_run_id)
    assert [e.event for e in events if e.event == SUCCEEDED] == []
    assert warehouse.tables("currencies") <= {"_dlt_version", "_dlt_loads", "_dlt_pipeline_state"}
