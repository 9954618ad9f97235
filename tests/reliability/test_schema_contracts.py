"""Schema contracts per table, chosen for what each table's consumers rely on (docs/reliability.md).

- ``exchange_rates.rates``: columns and types frozen - a contract with Snowpipe and downstream models;
- ``currencies.currencies``: new columns evolve, types frozen;
- ``hubspot.*``: everything evolves - custom properties arrive as columns
  (``tests/pipelines/test_hubspot.py::test_custom_properties_arrive_without_code_changes``) and a value
  that does not fit its type lands in a variant column (``test_bad_input.py``, ``hubspot-wrong-type-value``).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import currencies, exchange_rates, hubspot
from sources.currencies import currencies_source
from sources.exchange_rates import exchange_rates_source
from sources.exchange_rates import source as rates_source
from sources.hubspot import hubspot_source
from sources.hubspot.source import DEFAULT_OBJECTS
from sources.products import products_source
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse
from tests.reliability.scenarios import completed_loads, snapshot

pytestmark = pytest.mark.reliability


@pytest.fixture
def hubspot_fake(hubspot: FakeHubSpot) -> FakeHubSpot:
    return hubspot  # the fixture's name is taken here by the pipeline module


def contracts(source: Any) -> dict[str, Any]:
    return {name: r.compute_table_schema().get("schema_contract") for name, r in source.resources.items()}


def test_each_table_declares_its_contract(frankfurter: FakeFrankfurter, hubspot_fake: FakeHubSpot) -> None:
    frozen = {"tables": "evolve", "columns": "freeze", "data_type": "freeze"}
    assert contracts(exchange_rates_source()) == {"rates": frozen}
    assert contracts(currencies_source()) == {
        "currencies": {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}
    }
    evolve = {"tables": "evolve", "columns": "evolve", "data_type": "evolve"}
    assert contracts(hubspot_source()) == {o: evolve for o in DEFAULT_OBJECTS}
    history = hubspot_source(objects=["deals"], property_history={"deals": ["amount"]})
    assert contracts(history) == {"deals": evolve, "deals__property_history": evolve}


def assert_rejected(
    run: Any, warehouse: Warehouse, dataset: str, *words: str, marker: str = "freeze"
) -> None:
    before, loads = snapshot(warehouse, dataset), completed_loads(warehouse, dataset)
    with pytest.raises(PipelineStepFailed) as exc:
        run()
    assert exc.value.step in (
        "extract",
        "normalize",
    )  # Arrow tables are checked in extract, rows in normalise
    error = exc.value.run_report.error  # type: ignore[attr-defined]
    assert marker in error and all(w in error for w in words), error
    assert snapshot(warehouse, dataset) == before and completed_loads(warehouse, dataset) == loads


def column_types(warehouse: Warehouse, dataset: str, table: str) -> dict[str, str]:
    sql = "select column_name, data_type from information_schema.columns"
    sql += " where table_schema = ? and table_name = ?"
    return dict(warehouse.query(sql, dataset, table))


@pytest.mark.parametrize("change", ["new_column", "type_change"])
def test_exchange_rates_keeps_its_columns_and_types(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", json.dumps(["USD"]))
    exchange_rates.run(backfill=True, start_date="2026-11-02", end_date="2026-11-06")
    types = column_types(warehouse, "exchange_rates", "rates")
    flush = rates_source._Batch.flush

    def changed(self: Any) -> pa.Table:  # a change in the source's code, or in what it is fed
        table: pa.Table = flush(self)
        if change == "new_column":
            return table.append_column("source_note", pa.array(["x"] * len(table)))
        return table.set_column(3, "rate", table["rate"].cast(pa.string()))

    monkeypatch.setattr(rates_source._Batch, "flush", changed)
    if change == "new_column":  # frozen columns: rejected before anything is written
        assert_rejected(exchange_rates.run, warehouse, "exchange_rates", "rates", "source_note", "freeze")
    else:  # the declared types win: the text rates are cast back, no variant column appears
        exchange_rates.run()
        assert (
            warehouse.scalar("select count(*) from exchange_rates.rates where rate_date > '2026-11-06'") > 0
        )
    assert column_types(warehouse, "exchange_rates", "rates") == types


def test_currencies_rejects_a_value_that_does_not_fit_its_type(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sources.currencies import source as currencies_module

    currencies.run()
    rows_of = currencies_module._frankfurter_rows

    def changed(base_url: str, include_legacy: bool) -> list[dict[str, Any]]:  # e.g. a flag "sometimes"
        rows = rows_of(base_url, include_legacy)
        rows[0]["is_active"] = "sometimes"
        return rows

    monkeypatch.setattr(currencies_module, "_frankfurter_rows", changed)
    assert_rejected(currencies.run, warehouse, "currencies", "currencies", "is_active__v_text", "data_type")


def test_hubspot_evolves_a_type_change_into_a_variant_column(
    hubspot_fake: FakeHubSpot, warehouse: Warehouse
) -> None:
    ids = hubspot_fake.add("contacts", 3)
    hubspot.run(objects=["contacts"])
    hubspot_fake.modify("contacts", ids[:1], num_notes="a lot")  # a number property with a text value
    report = hubspot.run(objects=["contacts"])
    assert report.new_columns == {"contacts": ["num_notes__v_text"]}
    sql = "select num_notes, num_notes__v_text from hubspot.contacts where id = ?"
    assert warehouse.query(sql, str(ids[0])) == [(None, "a lot")]


def test_products_reject_a_type_change_and_take_a_new_column(
    products_db: ProductsDb, warehouse: Warehouse
) -> None:
    from pipelines import products

    assert contracts(products_source()) == {
        "products": {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}
    }
    products.run()
    products_db.execute("alter table public.products add column colour text")
    products_db.execute(
        "update public.products set colour = 'red', updated_at = updated_at + interval '1 day'"
    )
    assert products.run().new_columns == {"products": ["colour"]}  # evolution flows through

    products_db.execute("alter table public.products alter column stock type text using 'n/a'")
    products_db.execute("update public.products set updated_at = updated_at + interval '1 day'")
    # refused before extraction, naming the column, both types and the override that resolves it
    assert_rejected(
        products.run,
        warehouse,
        "products",
        "products.stock",
        "from bigint to text",
        '{"stock" = "bigint"}',
        marker="cannot be carried safely",
    )
    assert warehouse.scalar("select count(*) from products.products where stock is null") == 0
