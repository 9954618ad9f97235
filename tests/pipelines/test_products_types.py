"""Every built-in PostgreSQL type through the products pipeline into DuckDB: the type map of
docs/products.md, row by row (tests/fixtures/postgres.py, ``TYPE_CASES``), on a first run, an
incremental run and with a column of an exotic type added between runs."""

from __future__ import annotations

import decimal
import json
from typing import Any

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import products
from tests.fixtures.postgres import TYPE_CASES, EverythingDb, mismatches, null_check_sql
from tests.fixtures.warehouse import Warehouse


def duckdb_types(warehouse: Warehouse, table: str = "everything") -> dict[str, str]:
    return dict(
        warehouse.query(
            "select column_name, data_type from information_schema.columns"
            f" where table_schema = 'products' and table_name = '{table}'"
        )
    )


def duckdb_row(warehouse: Warehouse, row_id: int) -> dict[str, Any]:
    columns = [case.column for case in TYPE_CASES]
    values = warehouse.query(f"select {', '.join(columns)} from products.everything where id = {row_id}")[0]
    return dict(zip(columns, values, strict=True))


def test_every_type_loads_readable_on_the_first_and_later_runs(
    everything_db: EverythingDb, warehouse: Warehouse
) -> None:
    assert products.run().rows_by_table == {"everything": 2}
    assert (
        mismatches(
            duckdb_types(warehouse),
            duckdb_row(warehouse, 1),
            warehouse.query(null_check_sql("products.everything", 2))[0],
            "duckdb",
        )
        == []
    )
    everything_db.add_row(3)
    everything_db.execute("update everything set c_text = 'changed', updated_at = now() where id = 1")
    assert products.run().rows_by_table == {"everything": 2}  # incremental: rows 1 and 3
    assert (
        mismatches(
            duckdb_types(warehouse),
            duckdb_row(warehouse, 3),
            warehouse.query(null_check_sql("products.everything", 2))[0],
            "duckdb",
        )
        == []
    )
    assert warehouse.scalar("select c_text from products.everything where id = 1") == "changed"


def test_a_new_column_of_an_exotic_type_flows_through(
    everything_db: EverythingDb, warehouse: Warehouse
) -> None:
    products.run()
    everything_db.execute(
        "alter table everything add column c_new_range tstzrange, add column c_new_ips inet[]"
    )
    everything_db.execute(
        "update everything set c_new_range = '[2026-03-01 00:00+00,)', c_new_ips = '{::1,10.0.0.0/8}',"
        " updated_at = now() where id = 1"
    )
    report = products.run()
    assert sorted(report.new_columns["everything"]) == ["c_new_ips", "c_new_range"]
    row = warehouse.query("select c_new_range, c_new_ips from products.everything where id = 1")[0]
    assert row[0] == '["2026-03-01 00:00:00+00",)' and json.loads(row[1]) == ["::1", "10.0.0.0/8"]
    assert duckdb_types(warehouse)["c_new_range"] == "VARCHAR"


def test_every_value_of_a_plain_numeric_loads_exactly_as_text(
    everything_db: EverythingDb, warehouse: Warehouse
) -> None:
    """An unconstrained ``numeric`` holds any scale, ``NaN`` and ``Infinity``: it loads as PostgreSQL's
    text form by default (it used to fail the run: "does not fit decimal128(38, 9)")."""
    everything_db.add_row(3, values=False)
    everything_db.add_row(4, values=False)
    everything_db.add_row(5, values=False)
    everything_db.execute("update everything set c_numeric = 'NaN' where id = 2")
    everything_db.execute("update everything set c_numeric = 1::numeric / 7 where id = 3")
    everything_db.execute("update everything set c_numeric = '-Infinity' where id = 4")
    everything_db.execute("update everything set c_numeric = 1e60 + 0.000000000001 where id = 5")
    products.run()
    assert duckdb_types(warehouse)["c_numeric"] == "VARCHAR"
    assert warehouse.query("select id, c_numeric from products.everything order by id") == [
        (1, "15.25"),
        (2, "NaN"),
        (3, "0.14285714285714285714"),
        (4, "-Infinity"),
        (5, "1000000000000000000000000000000000000000000000000000000000000.000000000001"),
    ]


def test_a_plain_numeric_loaded_as_a_decimal_before_keeps_loading_as_one(
    everything_db: EverythingDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warehouses loaded when plain ``numeric`` became ``decimal(38,9)`` keep that column type: the new
    default gives way to the recorded one rather than refusing a type change nobody made."""
    monkeypatch.setenv(
        "SOURCES__PRODUCTS__TABLES", '[{"name": "everything", "columns": {"c_numeric": "decimal(38,9)"}}]'
    )
    products.run()  # as the old default loaded it
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["everything"]')
    everything_db.execute("update everything set c_numeric = 2.5, updated_at = now() where id = 1")
    assert products.run().rows_by_table == {"everything": 1}
    assert duckdb_types(warehouse)["c_numeric"] == "DECIMAL(38,9)"
    assert warehouse.scalar("select c_numeric from products.everything where id = 1") == decimal.Decimal(
        "2.5"
    )


def test_column_overrides_choose_double_or_a_decimal(
    everything_db: EverythingDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = {"c_numeric": "decimal(20,4)", "c_money": "double", "c_interval": "text", "c_oid": "text"}
    monkeypatch.setenv(
        "SOURCES__PRODUCTS__TABLES", json.dumps([{"name": "everything", "columns": overrides}])
    )
    products.run()
    types = duckdb_types(warehouse)
    assert (types["c_numeric"], types["c_money"], types["c_oid"]) == ("DECIMAL(20,4)", "DOUBLE", "VARCHAR")
    row = warehouse.query("select c_numeric, c_money, c_oid from products.everything where id = 1")[0]
    assert row == (decimal.Decimal("15.2500"), 1234.56, "4294967295")
    monkeypatch.setenv(
        "SOURCES__PRODUCTS__TABLES", '[{"name": "everything", "columns": {"c_numeric": "float"}}]'
    )
    with pytest.raises(PipelineStepFailed, match=r"everything.columns.c_numeric = 'float': use text, double"):
        products.run()
