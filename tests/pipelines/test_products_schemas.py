"""Several PostgreSQL schemas in one products source (pgserver -> DuckDB): same-named tables load into
distinct warehouse tables, each equal to its source, with their own cursors, sweeps and schema changes
(docs/products.md, "Several schemas")."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import products
from sources.products.catalogue import LoadPlan, TableSettingError, refuse_collisions
from sources.products.source import WAREHOUSE_NAMING
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse

BILLING = """
create table public.invoices (id bigint primary key, amount numeric(10,2), updated_at timestamptz not null);
insert into public.invoices values (1, 10, '2026-01-01'), (2, 20, '2026-01-02');
create schema billing;
create table billing.invoices (id bigint primary key, amount numeric(10,2), currency text,
    updated_at timestamptz not null);
insert into billing.invoices values (1, 100, 'EUR', '2026-01-01'), (2, 200, 'GBP', '2026-01-02'),
    (3, 300, 'USD', '2026-01-03');
create table billing.plans (code text, price numeric(6,2));
insert into billing.plans values ('basic', 5), ('pro', 15);
create table billing.audit (id bigint primary key);
"""


@pytest.fixture
def billing(products_db: ProductsDb, monkeypatch: pytest.MonkeyPatch) -> ProductsDb:
    products_db.execute(BILLING)
    monkeypatch.setenv("SOURCES__PRODUCTS__SCHEMA", '["public", "billing"]')
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["invoices", "products", "billing.*"]')
    monkeypatch.setenv("SOURCES__PRODUCTS__EXCLUDE", '["billing.audit"]')
    return products_db


def source_rows(db: ProductsDb, sql: str) -> list[tuple[Any, ...]]:
    import sqlalchemy as sa

    engine = sa.create_engine(db.uri)
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(sa.text(sql))]
    engine.dispose()
    return rows


def assert_equal_to_source(db: ProductsDb, warehouse: Warehouse) -> None:
    pairs = {
        "invoices": "select id, amount from public.invoices order by id",
        "billing__invoices": "select id, amount from billing.invoices order by id",
        "billing__plans": "select code, price from billing.plans order by code",
    }
    for table, sql in pairs.items():
        columns = sql.split(" from ")[0].removeprefix("select ")
        assert warehouse.query(f"select {columns} from products.{table} order by 1") == source_rows(
            db, sql
        ), table


def test_same_named_tables_of_two_schemas_load_into_two_tables(
    billing: ProductsDb, warehouse: Warehouse
) -> None:
    first = products.run()
    assert sorted(first.new_tables) == ["billing__invoices", "billing__plans", "invoices", "products"]
    assert first.rows_by_table == {"products": 20, "invoices": 2, "billing__invoices": 3, "billing__plans": 2}
    assert "billing__audit" not in warehouse.tables("products"), "a schema-qualified exclude"
    assert_equal_to_source(billing, warehouse)

    # each table keeps its own cursor, sweep and schema changes
    billing.execute("insert into public.invoices values (3, 30, '2026-02-01')")
    billing.execute("update billing.invoices set amount = 250, updated_at = '2026-02-01' where id = 2")
    billing.execute("delete from billing.invoices where id = 1")
    billing.execute("alter table billing.invoices alter column amount type numeric(14,4)")
    second = products.run()
    assert second.status == "succeeded"
    assert second.rows_by_table == {"invoices": 1, "billing__invoices": 1, "billing__plans": 2}
    assert any("billing__invoices.amount: decimal(10,2) -> decimal(14,4)" in note for note in second.notes)
    assert any("key sweep of billing__invoices: 1 deleted" in note for note in second.notes), second.notes
    assert_equal_to_source(billing, warehouse)
    assert warehouse.scalar("select amount from products.billing__invoices where id = 2") == decimal.Decimal(
        "250.0000"
    )
    state = products.create_pipeline().state["sources"]["products"]["resources"]
    assert {"invoices", "billing__invoices"} <= set(state)

    # a refused change names the table as the settings do, and the resource dlt drops
    billing.execute("alter table billing.invoices alter column amount type numeric(8,1)")
    with pytest.raises(PipelineStepFailed) as failure:
        products.run()
    why = failure.value.run_report.failed_tables["billing__invoices"]  # type: ignore[attr-defined]
    assert '{name = "billing.invoices", columns = {"amount" = "decimal(14,4)"}}' in why, why
    assert "dlt pipeline products drop billing__invoices`" in why


def test_one_schema_keeps_todays_names(products_db: ProductsDb, warehouse: Warehouse) -> None:
    """The default (a single schema as a string): names exactly as before."""
    products_db.execute(BILLING)
    report = products.run()
    assert report.rows_by_table == {"products": 20}
    assert warehouse.tables("products") >= {"products"}


def test_two_tables_that_would_share_a_warehouse_table_are_refused(
    billing: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    billing.execute("create table public.billing__plans (code text)")
    billing.execute("insert into public.billing__plans values ('x')")
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["invoices", "products", "billing__plans", "billing.*"]')
    with pytest.raises(PipelineStepFailed) as failure:
        products.run()
    error = failure.value.run_report.error  # type: ignore[attr-defined]
    assert failure.value.step == "extract" and "billing__plans" in error
    assert "public.billing__plans and billing.plans" in error or "billing.plans and public" in error
    assert warehouse.tables("products") == set()


def test_names_that_normalise_alike_in_one_schema_are_refused() -> None:
    """Today's single schema too: "Order Items" and order_items would share one warehouse table."""
    plans = [
        LoadPlan("Order Items", "table", ("id",), None, None),
        LoadPlan("order_items", "table", ("id",), None, None),
    ]
    with pytest.raises(TableSettingError, match=r"public\.Order Items and public\.order_items"):
        refuse_collisions(plans, WAREHOUSE_NAMING.normalize_tables_path)
