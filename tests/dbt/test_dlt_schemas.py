"""The dlt schemas committed under ``dbt/dlt_schemas/`` are the ones the pipelines build.

``tools/dbt_sources.py`` renders the dbt sources from those files, so that rendering is deterministic
and offline. Here each pipeline loads from the look-alike API or database into a fresh DuckDB, as in
every other test, and its schema's tables (nested ones included) and columns (type, nullable, primary
key) must equal the committed file's. After a deliberate change to a source, rewrite the files in dlt's
export format and regenerate the sources:

    UPDATE_DLT_SCHEMAS=1 uv run pytest tests/dbt/test_dlt_schemas.py -n0 && uv run python -m tools.deployments
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from dlt.common.schema import Schema

from pipelines import pipeline_module
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse
from tools import dbt_sources

UPDATE: bool = os.environ.get("UPDATE_DLT_SCHEMAS") == "1"


def built_schema(name: str, load: Callable[[], object] | None = None) -> Schema:
    """Load pipeline ``name`` (``run()``, or ``load``) and return the schema its pipeline now holds."""
    module = pipeline_module(name)
    report = load() if load else module.run()
    assert getattr(report, "status", None) == "succeeded", report
    return module.create_pipeline().default_schema


def compare(name: str, built: Schema) -> None:
    path = dbt_sources.schema_path(name)
    committed = dbt_sources.load_schema(name) if path.is_file() else None
    if committed is not None and dbt_sources.shape(committed) == dbt_sources.shape(built):
        return
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dbt_sources.export_schema(built), encoding="utf-8")
        return
    assert committed is not None, f"{path} is missing"
    assert dbt_sources.shape(built) == dbt_sources.shape(committed), (
        f"{name}'s dlt schema changed: see this module's docstring to rewrite {path.name}"
    )


def test_currencies(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    compare("currencies", built_schema("currencies"))


def test_exchange_rates(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", '["USD", "GBP"]')
    module = pipeline_module("exchange_rates")
    backfill = lambda: module.run(backfill=True, start_date="2026-11-02", end_date="2026-11-06")  # noqa: E731
    compare("exchange_rates", built_schema("exchange_rates", backfill))


def test_hubspot(hubspot: FakeHubSpot, warehouse: Warehouse) -> None:
    """Every default object, each with the associations that make dlt's nested tables."""
    ids = {name: hubspot.add(name, 3) for name in ("contacts", "companies", "deals")}
    hubspot.associate("contacts", "companies", ids["contacts"][0], ids["companies"][0])
    hubspot.associate("deals", "contacts", ids["deals"][0], ids["contacts"][0])
    hubspot.associate("deals", "companies", ids["deals"][0], ids["companies"][0])
    compare("hubspot", built_schema("hubspot"))


def test_products(products_db: ProductsDb, warehouse: Warehouse) -> None:
    compare("products", built_schema("products"))
