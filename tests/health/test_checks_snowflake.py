"""The load metrics and checks through dlt's Snowflake destination (the fakesnow emulator by default)."""

from __future__ import annotations

import json

import pytest

from pipelines import products
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.snowflake import Snowflake
from utils.checks import table_checks

pytestmark = pytest.mark.snowflake


def test_a_dropped_column_warns_on_snowflake(products_db: ProductsDb, snowflake: Snowflake) -> None:
    for _ in range(3):
        products_db.execute("update products set updated_at = clock_timestamp() where id <= 4")
        products.run()
    products_db.execute("alter table products drop column currency")
    products_db.execute("update products set updated_at = clock_timestamp() where id <= 4")
    report = products.run()

    metrics = snowflake.table("products", "_pipeline_metrics")
    [(rows, present)] = snowflake.query(
        f"select rows_loaded, columns_present from {metrics} where load_id = %s and table_name = 'products'",
        report.load_ids[0],
    )
    assert rows == 4 and "attributes" in json.loads(present) and "currency" not in json.loads(present)
    assert snowflake.scalar(f"select count(*) from {metrics}") == 4, "one row per load"
    results = {r.check: r for r in table_checks(products.create_pipeline()) if r.table == "products"}
    assert results["schema"].state == "warn", results
    assert "stopped arriving: currency (NULL since 1 load(s))" in results["schema"].detail
    assert "not judged: 3 earlier load(s)" in results["volume"].detail
