"""Lineage on the Prefect test harness: every load claims the tables it wrote as assets (utils/lineage.py).

For each pipeline's flow: one ``prefect.asset.materialization.succeeded`` event per destination table
written, keyed by the table's URI, with the declared upstream as related ``asset`` resources, the owner
and description as asset properties, and rows loaded that match the warehouse. A failed load claims
nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from prefect.states import State

import flows.currencies as currencies_flow
import flows.exchange_rates as exchange_rates_flow
import flows.hubspot as hubspot_flow
import flows.products as products_flow
from pipelines._catalogue import declaration
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.faults import Faults
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.prefect import asset_events, without_retry_delay
from tests.fixtures.warehouse import Warehouse

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
    return f"duckdb://{warehouse.path}/{dataset}/{table}"


def upstream(event: Any) -> set[str]:
    return {r.id for r in event.related if r.role == "asset"}


def assert_declared(event: Any, pipeline: str) -> None:
    """Owner and description from the pipeline's declaration; materialised by dlt."""
    spec = declaration(pipeline)
    assert event.resource["prefect.asset.description"] == spec.description
    assert json.loads(event.resource["prefect.asset.owners"]) == [spec.owner]
    assert ("dlt", "asset-materialized-by") in {(r.id, r.role) for r in event.related}


def test_currencies_claims_its_table(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    state: State[Any] = currencies_flow.currencies_flow(return_state=True)
    claims = succeeded(state, expect=1)
    key = duckdb_key(warehouse, "currencies", "currencies")
    assert set(claims) == {key}
    event = claims[key]
    assert upstream(event) == {"https://api.frankfurter.dev/v2/currencies"}
    assert_declared(event, "currencies")
    rows = warehouse.scalar("select count(*) from currencies.currencies")
    assert event.payload["rows_loaded"] == rows > 0
    assert event.payload["load_ids"] == state.result()["load_ids"] != []
    assert event.payload["new_table"] is True and event.resource["prefect.resource.name"] == "currencies.currencies"


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
