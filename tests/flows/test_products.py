"""The products flows under Prefect's test harness: daily incremental, manual full refresh, retries."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.states import State

import flows.products as flow_module
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.prefect import artifacts, run_flow, task_runs, without_retry_delay
from tests.fixtures.warehouse import Warehouse

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_daily_flow_merges_changes_and_full_refresh_reloads(
    products_db: ProductsDb, warehouse: Warehouse
) -> None:
    first = run_flow(flow_module.products_daily_flow)
    assert first.state.is_completed() and first.value["rows_by_table"] == {"products": 20}
    assert [a.key for a in artifacts(first.id)] == ["products-run-report"]

    products_db.execute("update products set stock = 0, updated_at = now() where id = 3")
    again = run_flow(flow_module.products_daily_flow)
    assert again.value["rows_by_table"] == {"products": 1}
    assert warehouse.scalar("select stock from products.products where id = 3") == 0

    products_db.execute("delete from products where id > 10")
    full = run_flow(flow_module.products_full_refresh_flow)
    assert full.state.is_completed() and full.value["rows_by_table"] == {"products": 10}
    assert warehouse.scalar("select count(*) from products.products") == 10


def test_unreachable_database_fails_the_flow_after_retries(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_retry_delay(monkeypatch, flow_module, "load_products")
    monkeypatch.setenv(
        "SOURCES__PRODUCTS__CREDENTIALS",
        "postgresql://dlt_reader:secret-x@127.0.0.1:1/shop_db",  # pragma: allowlist secret
    )
    state: State[Any] = flow_module.products_daily_flow(return_state=True)
    assert state.is_failed()
    [(task_run, states)] = task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == 4, "the first attempt and three retries"
    assert [s.name for s in states].count("Retrying") == 3 and states[-1].is_failed()
    message = str(state.message)
    assert "could not connect to PostgreSQL" in message and '"shop_db" on 127.0.0.1:1' in message, message
    assert "secret-x" not in message
    assert warehouse.tables("products") == set()


def test_a_table_left_out_fails_the_flow_after_retries_and_the_others_load_once(
    products_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every attempt loads the readable tables (merged: once each) and fails naming the other."""
    without_retry_delay(monkeypatch, flow_module, "load_products")
    products_db.execute("create table regions (code text, opened date)")
    products_db.execute("insert into regions values ('north', '2020-01-01'), ('west', 'infinity')")
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["*"]')
    state: State[Any] = flow_module.products_daily_flow(return_state=True)
    assert state.is_failed()
    [(task_run, _states)] = task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == 4, "retried like any failure, so it alerts when the retries are spent"
    message = str(state.message)
    assert "1 table(s) failed and were left out" in message and "regions" in message, message
    assert warehouse.scalar("select count(*) from products.products") == 20
    assert warehouse.scalar("select count(distinct id) from products.products") == 20
    assert "regions" not in warehouse.tables("products")
