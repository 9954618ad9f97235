"""Hard deletes in PostgreSQL reach the warehouse through the key sweep (DuckDB; docs/products.md)."""

from __future__ import annotations

import pytest

from pipelines import products
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse

PRICES = """
create table prices (sku text, currency char(3), amount numeric(10, 4), updated_at timestamptz default now(),
    primary key (sku, currency));
insert into prices select 'sku' || g, c, g, now() from generate_series(1, 5) g, unnest(array['EUR', 'GBP']) c;
"""


@pytest.fixture
def prices(products_db: ProductsDb, monkeypatch: pytest.MonkeyPatch) -> ProductsDb:
    products_db.execute(PRICES)
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["products", "prices"]')
    return products_db


def ids(warehouse: Warehouse) -> list[int]:
    return [row[0] for row in warehouse.query("select id from products.products order by id")]


def test_rows_deleted_in_the_source_are_removed_and_the_cost_reported(
    prices: ProductsDb, warehouse: Warehouse
) -> None:
    products.run()
    prices.execute("delete from products where id in (3, 17)")
    prices.execute("delete from prices where sku = 'sku2' and currency = 'GBP' or sku = 'sku5'")
    report = products.run()
    assert ids(warehouse) == [i for i in range(1, 21) if i not in (3, 17)]
    assert sorted(warehouse.query("select sku, currency from products.prices")) == sorted(
        (f"sku{g}", c) for g in (1, 2, 3, 4) for c in ("EUR", "GBP") if (g, c) != (2, "GBP")
    ), "a composite key"
    sweeps = {note.split(":")[0]: note for note in report.notes if note.startswith("key sweep")}
    assert (
        "2 deleted in the source, removed (20 warehouse keys against 18 source keys"
        in sweeps["key sweep of products"]
    )
    assert "3 deleted in the source" in sweeps["key sweep of prices"]
    prices.add_products(3, 3)  # a key that comes back (with a new cursor value) is loaded again
    prices.execute("update products set updated_at = now() where id = 3")
    products.run()
    assert 3 in ids(warehouse)


def test_swept_rows_are_flagged_with_soft_delete_flag(
    prices: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__SOFT_DELETE", "flag")
    products.run()
    prices.execute("delete from products where id = 4")
    products.run()
    assert ids(warehouse) == list(range(1, 21))
    flagged = warehouse.query("select id from products.products where deleted_at is not null")
    assert flagged == [(4,)]


def test_the_sweep_keeps_its_cadence_and_can_be_switched_off(
    prices: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__KEY_SWEEP_HOURS", "24")
    products.run()
    prices.execute("delete from products where id = 5")
    report = products.run()
    assert any(note.startswith("key sweep skipped") for note in report.notes)
    assert 5 in ids(warehouse), "swept at most once a day"
    monkeypatch.setenv("SOURCES__PRODUCTS__KEY_SWEEP_HOURS", "0")
    monkeypatch.setenv("SOURCES__PRODUCTS__KEY_SWEEP", "false")
    assert not any("key sweep" in note for note in products.run().notes)
    assert 5 in ids(warehouse)
    monkeypatch.setenv("SOURCES__PRODUCTS__KEY_SWEEP", "true")
    products.run()
    assert 5 not in ids(warehouse)
