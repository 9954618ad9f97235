"""The products pipeline into Snowflake (emulator, or a real account with SNOWFLAKE_TESTS=real):
incremental merge, soft deletes, types as Snowflake sees them, and a fresh worker restoring state."""

from __future__ import annotations

import decimal
import json
from typing import Any

import pytest

from pipelines import products
from sources.products import products_source
from tests.fixtures.postgres import (
    TYPE_CASES,
    EverythingDb,
    ProductsDb,
    mismatches,
    null_check_sql,
)
from tests.fixtures.snowflake import Snowflake
from utils.runner import run_pipeline

pytestmark = pytest.mark.snowflake


def test_merge_updates_and_removes_soft_deleted_rows(products_db: ProductsDb, snowflake: Snowflake) -> None:
    first = products.run()
    assert first.destination == "snowflake" and first.rows_by_table == {"products": 20}
    products_db.execute("update products set price = 1.23, updated_at = now() where id in (3, 7)")
    products_db.execute("update products set deleted_at = now(), updated_at = now() where id = 5")
    products_db.add_products(21, 22)
    assert products.run().rows_by_table == {"products": 5}
    assert snowflake.assert_unique("products", "products", "id") == 21  # 22 rows, 5 soft-deleted
    table = snowflake.table("products", "products")
    assert snowflake.scalar(f"select price from {table} where id = 7") == decimal.Decimal("1.23")
    assert snowflake.scalar(f"select count(*) from {table} where id = 5") == 0


def test_types_land_as_snowflake_types(products_db: ProductsDb, snowflake: Snowflake) -> None:
    products.run()
    types = snowflake.columns("products", "products")
    assert types["PRICE"] == "NUMBER" and types["ID"] == "NUMBER" and types["IS_ACTIVE"] == "BOOLEAN"
    assert types["LAUNCHED_ON"] == "DATE" and types["UPDATED_AT"].startswith("TIMESTAMP")
    assert types["SKU"] == "TEXT" and types["ATTRIBUTES"] == "VARIANT" and types["TAGS"] == "VARIANT"


def test_a_fresh_worker_reads_only_changes_after_restoring_from_snowflake(
    products_db: ProductsDb, snowflake: Snowflake
) -> None:
    products.run()
    snowflake.restore_from_destination(products.create_pipeline)
    products_db.execute("update products set stock = 0, updated_at = now() where id in (1, 2, 3)")
    report = products.run()
    assert report.rows_by_table == {"products": 3}, "the cursor came back from Snowflake"
    assert snowflake.assert_unique("products", "products", "id") == 20


def test_json_columns_land_as_variant_objects_queryable_by_path(
    products_db: ProductsDb, snowflake: Snowflake
) -> None:
    """Snowflake keeps parquet JSON text as a VARIANT string (the emulator does too, patch 5), so
    ``attributes:colour`` would be NULL; JSON columns travel as jsonl and land as objects."""
    products.run()
    table = snowflake.table("products", "products")
    assert snowflake.scalar(f"select attributes:colour::string from {table} where id = 3") == "red"
    assert snowflake.scalar(f"select attributes:size::int from {table} where id = 3") == 3
    assert snowflake.scalar(f"select attributes:nested.ok::boolean from {table} where id = 3") is True
    assert snowflake.scalar(f"select tags[0]::string from {table} where id = 3") == "tag3"
    assert snowflake.scalar(f"select sizes[1]::int from {table} where id = 3") == 4
    products_db.execute(
        'update products set attributes = \'{"colour": "blue"}\', updated_at = now() where id = 3'
    )
    assert products.run().rows_by_table == {"products": 1}
    assert snowflake.scalar(f"select attributes:colour::string from {table} where id = 3") == "blue"


def snowflake_row(snowflake: Snowflake, row_id: int) -> dict[str, Any]:
    columns = [case.column for case in TYPE_CASES]
    table = snowflake.table("products", "everything")
    values = snowflake.query(f"select {', '.join(columns)} from {table} where id = {row_id}")[0]
    return dict(zip(columns, values, strict=True))


def test_every_type_loads_readable_on_the_first_and_later_runs(
    everything_db: EverythingDb, snowflake: Snowflake
) -> None:
    """Every type loads on the first run, no override needed: the table stays on Arrow and parquet
    (NaN and infinity included, which JSON rows could not carry), its JSON parsed by Snowflake."""
    assert products.run().rows_by_table == {"everything": 2}
    table = snowflake.table("products", "everything")
    types = snowflake.columns("products", "everything")
    found = mismatches(
        types, snowflake_row(snowflake, 1), snowflake.query(null_check_sql(table, 2))[0], "snowflake"
    )
    assert found == [], "\n".join(found)
    assert snowflake.scalar(f"select c_jsonb:n.ok::boolean from {table} where id = 1") is True
    assert snowflake.scalar(f"select c_inet_array[1]::string from {table} where id = 1") == "10.1.0.0/16"
    everything_db.add_row(3)
    everything_db.execute("alter table everything add column c_new_range tstzrange")
    everything_db.execute(
        "update everything set c_new_range = '[2026-03-01 00:00+00,)', updated_at = now() where id = 1"
    )
    report = products.run()
    assert report.rows_by_table == {"everything": 2} and report.new_columns == {"everything": ["c_new_range"]}
    types = snowflake.columns("products", "everything")
    assert (
        mismatches(
            types, snowflake_row(snowflake, 3), snowflake.query(null_check_sql(table, 2))[0], "snowflake"
        )
        == []
    )
    assert types["C_NEW_RANGE"] == "TEXT"
    assert snowflake.scalar(f"select c_new_range from {table} where id = 1") == '["2026-03-01 00:00:00+00",)'
    assert snowflake.assert_unique("products", "everything", "id") == 3


def test_a_table_loaded_before_as_parquet_switches_to_json_objects(
    products_db: ProductsDb, snowflake: Snowflake
) -> None:
    """RAW.PRODUCTS tables loaded before JSON travelled as jsonl keep loading: the columns dlt adds to
    jsonl rows (``_dlt_id``, ``_dlt_load_id``) join the existing table as nullable columns."""
    report = run_pipeline(products.create_pipeline(), lambda: products_source())  # the parquet route
    assert report.rows_by_table == {"products": 20}
    products_db.execute(
        'update products set attributes = \'{"colour": "green"}\', updated_at = now() where id = 2'
    )
    assert products.run().rows_by_table == {"products": 1}
    table = snowflake.table("products", "products")
    assert snowflake.scalar(f"select attributes:colour::string from {table} where id = 2") == "green"
    assert snowflake.assert_unique("products", "products", "id") == 20


def test_json_as_objects_can_be_switched_off_for_speed(
    products_db: ProductsDb, snowflake: Snowflake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``json_as_objects = false`` keeps parquet: JSON lands as a VARIANT string, as dlt documents."""
    monkeypatch.setenv("SOURCES__PRODUCTS__JSON_AS_OBJECTS", "false")
    products.run()
    table = snowflake.table("products", "products")
    assert snowflake.scalar(f"select attributes:colour::string from {table} where id = 3") is None
    assert "colour" in snowflake.scalar(f"select attributes::string from {table} where id = 3")  # the text
    assert "_DLT_ID" not in snowflake.columns("products", "products")


def test_json_scalars_and_nulls_land_as_values_on_merge_and_replace(
    products_db: ProductsDb, snowflake: Snowflake
) -> None:
    """A jsonb that is a bare scalar lands as that scalar (a JSON string whose text looks like an
    object stays a string: parsed once), JSON null and SQL NULL as NULL, a number past 64 bits as
    that number; on merge, and on the full refresh's replace."""
    values = {1: "false", 2: '"red"', 3: "42.5", 4: "null", 5: '"{\\"a\\": 1}"', 6: '{"n": 1e20}'}
    update = "update products set attributes = cast(:value as jsonb), updated_at = now() where id = :id"
    for row_id, value in values.items():
        products_db.execute(update, id=row_id, value=value)
    products_db.execute("update products set attributes = null, tags = null where id = 7")
    table = snowflake.table("products", "products")
    for full_refresh in (False, True):
        assert products.run(full_refresh=full_refresh).rows_by_table == {"products": 20}
        loaded = dict(snowflake.query(f"select id, attributes from {table} where id <= 7"))
        parsed = {row_id: None if text is None else json.loads(text) for row_id, text in loaded.items()}
        expected = {row_id: json.loads(value) for row_id, value in values.items()}
        assert parsed == {**expected, 4: None, 6: {"n": 100000000000000000000}, 7: None}
        assert snowflake.scalar(f"select count(*) from {table} where id = 7 and tags is null") == 1
        assert snowflake.scalar(f"select attributes:n::string from {table} where id = 6") is not None


def test_a_table_loaded_by_the_json_row_route_switches_back_to_parquet(
    products_db: ProductsDb, snowflake: Snowflake
) -> None:
    """The JSON-row route (until 2026-12-07) left ``file_format: jsonl`` on the table's schema, which
    dlt keeps; the source says parquet outright, so the next run is parquet, its JSON parsed."""
    source = products_source(json_as_objects=True)
    source.resources["products"].apply_hints(file_format="jsonl")  # as the JSON-row route hinted it
    run_pipeline(products.create_pipeline(), lambda: source)
    products_db.execute(
        'update products set attributes = \'{"colour": "green"}\', updated_at = now() where id = 2'
    )
    report = products.run()
    assert report.rows_by_table == {"products": 1}
    package = products.create_pipeline().get_load_package_info(report.load_ids[-1])
    jobs = package.jobs["completed_jobs"]
    formats = {j.job_file_info.file_format for j in jobs if j.job_file_info.table_name == "products"}
    assert formats == {"parquet", "sql"}  # the rows, and the merge
    table = snowflake.table("products", "products")
    assert snowflake.scalar(f"select attributes:colour::string from {table} where id = 2") == "green"
    assert snowflake.assert_unique("products", "products", "id") == 20
