"""The products pipeline end to end: a real PostgreSQL -> dlt (ADBC) -> DuckDB, queried back."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
from pathlib import Path

import dlt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dlt.destinations.job_client_impl import SqlLoadJob
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import products
from sources.products import ProductsDatabaseError, products_source
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse
from tests.fuzz.outcomes import root_cause

CANARY = "pg-canary-password-5d1e"


def rows(warehouse: Warehouse, sql: str = "select id from products.products order by id") -> list[int]:
    return [r[0] for r in warehouse.query(sql)]


def test_full_load(products_db: ProductsDb, warehouse: Warehouse) -> None:
    report = products.run()
    assert report.status == "succeeded" and report.destination == "duckdb"
    assert report.rows_by_table == {"products": 20}
    assert report.new_tables == ["products"]
    assert rows(warehouse) == list(range(1, 21))


def test_incremental_reads_only_changed_rows_and_merges_updates(
    products_db: ProductsDb, warehouse: Warehouse
) -> None:
    products.run()
    products_db.execute("update products set price = 1.23, updated_at = now() where id in (3, 7)")
    products_db.add_products(21, 22)
    report = products.run()
    assert report.rows_by_table == {"products": 4}  # extracted: 2 updates + 2 new rows, nothing else
    assert rows(warehouse) == list(range(1, 23))
    assert warehouse.scalar("select count(distinct id) from products.products") == 22
    assert warehouse.scalar("select price from products.products where id = 7") == decimal.Decimal("1.23")
    assert products.run().rows_by_table == {}  # nothing changed: nothing read


def test_lag_window_rereads_recent_rows(
    products_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__LAG_SECONDS", str(3 * 86400))  # three days
    products.run()
    # rows 17 to 20 have a cursor >= the last value (row 20) minus three days: read again, merged
    assert products.run().rows_by_table == {"products": 4}
    assert warehouse.scalar("select count(*) from products.products") == 20


def test_soft_deleted_rows_are_removed(products_db: ProductsDb, warehouse: Warehouse) -> None:
    products_db.execute("update products set deleted_at = now() - interval '1 day' where id = 2")
    products.run()
    assert 2 not in rows(warehouse)
    products_db.execute("update products set deleted_at = now(), updated_at = now() where id = 5")
    assert products.run().rows_by_table == {"products": 1}
    assert rows(warehouse) == [i for i in range(1, 21) if i not in (2, 5)]
    products.run(full_refresh=True)  # a full refresh leaves soft-deleted rows out too
    assert rows(warehouse) == [i for i in range(1, 21) if i not in (2, 5)]


def test_soft_deleted_rows_can_be_flagged_instead(
    products_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__SOFT_DELETE", "flag")
    products.run()
    products_db.execute("update products set deleted_at = now(), updated_at = now() where id = 5")
    products.run()
    assert rows(warehouse) == list(range(1, 21))
    assert rows(warehouse, "select id from products.products where deleted_at is not null") == [5]


def test_every_type_round_trips(products_db: ProductsDb, warehouse: Warehouse) -> None:
    products_db.execute(
        "insert into products values (100, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'Ünïcode ✓ \"quoted\"',"
        ' 9999999999.99, \'EUR\', -5, false, \'{"a": [1, 2.5, null], "b": {"c": "d"}}\', \'{x,"y z"}\','
        " '{}', '2024-02-29', '2026-06-30 23:59:59.123456+02', null)"
    )
    products_db.execute(
        "insert into products (id, sku, name) values (101, 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'nulls')"
    )
    products.run()
    types = dict(
        warehouse.query(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = 'products' and table_name = 'products'"
        )
    )
    assert types["price"] == "DECIMAL(12,2)"
    assert types["updated_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["launched_on"] == "DATE"
    assert types["is_active"] == "BOOLEAN"
    assert types["attributes"] == types["tags"] == types["sizes"] == "JSON"
    assert types["id"] == "BIGINT" and types["name"] == types["sku"] == "VARCHAR"
    row = warehouse.query(
        "select sku, name, price, currency, stock, is_active, attributes, tags, sizes, launched_on,"
        " updated_at from products.products where id = 100"
    )[0]
    sku, name, price, currency, stock, is_active, attributes, tags, sizes, launched_on, updated_at = row
    assert sku == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert name == 'Ünïcode ✓ "quoted"'
    assert price == decimal.Decimal("9999999999.99")
    assert (currency, stock, is_active) == ("EUR", -5, False)
    assert json.loads(attributes) == {"a": [1, 2.5, None], "b": {"c": "d"}}
    assert json.loads(tags) == ["x", "y z"] and json.loads(sizes) == []
    assert launched_on == dt.date(2024, 2, 29)
    assert updated_at == dt.datetime(2026, 6, 30, 21, 59, 59, 123456, tzinfo=dt.UTC)
    assert warehouse.scalar("select attributes.b.c from products.products where id = 100") == '"d"'
    nulls = warehouse.query(
        "select price, currency, stock, is_active, attributes, tags, launched_on"
        " from products.products where id = 101"
    )
    assert nulls == [(None,) * 7]


def test_a_new_source_column_flows_through(products_db: ProductsDb, warehouse: Warehouse) -> None:
    products.run()
    products_db.execute("alter table products add column weight_kg numeric(8, 3)")
    products_db.execute("update products set weight_kg = 1.5, updated_at = now() where id = 4")
    report = products.run()
    assert report.new_columns == {"products": ["weight_kg"]}
    weight = warehouse.scalar("select weight_kg from products.products where id = 4")
    assert weight == decimal.Decimal("1.500")
    assert warehouse.scalar("select count(*) from products.products where weight_kg is null") == 19


def test_empty_table_loads_nothing_then_picks_up_rows(products_db: ProductsDb, warehouse: Warehouse) -> None:
    products_db.execute("delete from products")
    report = products.run()
    assert report.status == "succeeded" and report.total_rows == 0
    products_db.add_products(1, 3)
    assert products.run().rows_by_table == {"products": 3}
    assert rows(warehouse) == [1, 2, 3]


def test_null_cursor_rows_are_loaded_on_every_run(products_db: ProductsDb, warehouse: Warehouse) -> None:
    products_db.execute("update products set updated_at = null where id in (4, 9)")
    assert products.run().rows_by_table == {"products": 20}
    products_db.execute("update products set name = 'renamed' where id = 9")  # cursor still NULL
    assert products.run().rows_by_table == {"products": 2}  # only the NULL-cursor rows, re-read
    assert warehouse.scalar("select name from products.products where id = 9") == "renamed"
    assert warehouse.scalar("select count(*) from products.products") == 20


def test_null_cursor_rows_can_be_excluded(
    products_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__NULL_CURSOR", "exclude")
    products_db.execute("update products set updated_at = null where id in (4, 9)")
    assert products.run().rows_by_table == {"products": 18}
    assert 4 not in rows(warehouse)


def test_start_date_rereads_from_a_date_without_moving_the_cursor(
    products_db: ProductsDb, warehouse: Warehouse
) -> None:
    products.run()
    report = products.run(start_date="2026-01-18")  # rows 17..20 were updated on or after that day
    assert report.rows_by_table == {"products": 4}
    products_db.add_products(21, 21)
    assert products.run().rows_by_table == {"products": 1}
    assert warehouse.scalar("select count(*) from products.products") == 21


def test_full_refresh_reloads_everything_and_restarts_the_cursor(
    products_db: ProductsDb, warehouse: Warehouse
) -> None:
    products.run()
    products_db.execute("delete from products where id = 1")  # a hard delete: only a full refresh sees it
    report = products.run(full_refresh=True)
    assert report.rows_by_table == {"products": 19}
    assert rows(warehouse) == list(range(2, 21))
    products_db.execute("update products set updated_at = now() where id = 2")
    assert products.run().rows_by_table == {"products": 1}


def test_a_full_refresh_that_fails_to_load_keeps_the_last_good_rows(
    products_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap empties the table, then reads the run's files into it, in one transaction: a file that
    cannot be read once the table is empty rolls the whole swap back; the retry reads the files."""
    products.run()
    products_db.execute("delete from products where id > 10")
    hidden: list[Path] = []
    swap = SqlLoadJob.run

    def hide_a_file_then_swap(job: SqlLoadJob) -> None:
        if not hidden:
            package = Path(job._file_path).parent.parent  # the job runs from started_jobs/
            parquet = next((package / "completed_jobs").glob("products.*.parquet"))
            hidden.extend([parquet, parquet.rename(parquet.with_suffix(".hidden"))])
        swap(job)

    monkeypatch.setattr(SqlLoadJob, "run", hide_a_file_then_swap)
    with pytest.raises(PipelineStepFailed) as failed:
        products.run(full_refresh=True)
    assert failed.value.step == "load" and "No files found" in str(failed.value)
    assert rows(warehouse) == list(range(1, 21))  # the emptied table was rolled back
    hidden[1].rename(hidden[0])
    report = products.run(full_refresh=True)
    assert report.resumed_load_ids, "the retry finished the failed load from its files"
    assert rows(warehouse) == list(range(1, 11))


def test_tables_with_their_own_keys_and_cursors(
    products_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    products_db.execute(
        "create table prices (sku text, currency char(3), amount numeric(10, 4), changed_at timestamptz,"
        " primary key (sku, currency))"
    )
    products_db.execute("insert into prices values ('a', 'EUR', 1.5, now()), ('a', 'GBP', 1.25, now())")
    monkeypatch.setenv(
        "SOURCES__PRODUCTS__TABLES",
        json.dumps(
            ["products", {"name": "prices", "primary_key": ["sku", "currency"], "cursor": "changed_at"}]
        ),
    )
    assert products.run().rows_by_table == {"products": 20, "prices": 2}
    products_db.execute(
        "update prices set amount = 2, changed_at = now() + interval '1 hour' where currency = 'GBP'"
    )
    assert products.run().rows_by_table == {"prices": 1}
    assert warehouse.query("select currency, amount from products.prices order by currency") == [
        ("EUR", decimal.Decimal("1.5000")),
        ("GBP", decimal.Decimal("2.0000")),
    ]


def test_connection_failure_names_host_and_database_never_the_password(
    warehouse: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(
        "SOURCES__PRODUCTS__CREDENTIALS", f"postgresql://dlt_reader:{CANARY}@127.0.0.1:1/shop_db"
    )
    with pytest.raises(PipelineStepFailed) as exc:
        products.run()
    assert exc.value.step == "extract"
    report = exc.value.run_report  # type: ignore[attr-defined]
    assert "could not connect to PostgreSQL" in report.error
    assert '"shop_db" on 127.0.0.1:1' in report.error and "dlt_reader" in report.error
    assert CANARY not in str(exc.value) and CANARY not in report.error and CANARY not in report.to_markdown()
    assert products.main([]) == 1
    captured = capsys.readouterr()
    assert "shop_db" in captured.err and "127.0.0.1" in captured.err
    assert CANARY not in captured.out + captured.err + caplog.text
    assert warehouse.tables("products") == set()


def assert_refused_at_extract(failed: PipelineStepFailed, warehouse: Warehouse) -> None:
    """The run failed at extract with the source's typed error, leaving nothing pending or loaded."""
    assert failed.step == "extract" and not products.create_pipeline().has_pending_data
    assert isinstance(root_cause(failed), ProductsDatabaseError)
    assert warehouse.tables("products") == set()


def test_infinity_fails_the_run_naming_the_column_and_a_text_override_loads_it(
    products_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's ``infinity`` has no date in Arrow or the warehouses: the run fails at extract naming
    the column, with nothing pending; the override docs/products.md gives then loads it as text."""
    products_db.execute("update products set launched_on = 'infinity' where id = 3")
    with pytest.raises(PipelineStepFailed, match="column launched_on: PostgreSQL's infinity") as failed:
        products.run()
    assert_refused_at_extract(failed.value, warehouse)
    tables = [{"name": "products", "columns": {"launched_on": "text"}}]
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", json.dumps(tables))
    assert products.run().rows_by_table == {"products": 20}
    assert warehouse.scalar("select launched_on from products.products where id = 3") == "infinity"


def test_the_snowflake_route_hands_over_every_value_as_the_duckdb_route_does(
    products_db: ProductsDb, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The Snowflake route (``json_as_objects``) keeps Arrow and parquet, JSON as PostgreSQL's text and
    arrays as ``to_json`` text (Snowflake parses both as it merges). The JSON-row route it replaced
    failed here: a date past 9999 (Python has none), a bare JSON scalar (dlt took it for a variant
    column), a JSON integer past 64 bits and JSON nested past 252 levels (dlt's jsonl writer)."""
    monkeypatch.setenv("SOURCES__PRODUCTS__JSON_AS_OBJECTS", "true")
    products_db.execute("update products set launched_on = '12026-01-01' where id = 3")
    values = {1: "false", 2: '"red"', 3: "42.5", 4: "null", 5: '{"n": 1e20}', 6: "[" * 3000 + "]" * 3000}
    update = "update products set attributes = cast(:value as jsonb), updated_at = now() where id = :id"
    for row_id, value in values.items():
        products_db.execute(update, id=row_id, value=value)
    pipeline = dlt.pipeline("json_text", pipelines_dir=str(tmp_path), destination="duckdb")
    pipeline.extract(products_source(json_as_objects=True))
    info = pipeline.normalize()
    (job,) = [
        j
        for j in pipeline.get_load_package_info(info.loads_ids[0]).jobs["new_jobs"]
        if j.job_file_info.table_name == "products"
    ]
    assert job.job_file_info.file_format == "parquet"
    table = pq.read_table(job.file_path)
    rows = {row["id"]: row for row in table.select(["id", "attributes", "tags", "sizes"]).to_pylist()}
    printed = {1: "false", 2: '"red"', 3: "42.5", 4: "null", 5: '{"n": 100000000000000000000}'}
    assert {i: rows[i]["attributes"] for i in printed} == printed  # jsonb's own text, scalars included
    assert rows[6]["attributes"] == "[" * 3000 + "]" * 3000
    assert json.loads(rows[3]["tags"]) == ["tag3", "all"] and json.loads(rows[3]["sizes"]) == [3, 4]
    launched = dict(
        zip(table["id"].to_pylist(), table["launched_on"].cast(pa.string()).to_pylist(), strict=True)
    )
    assert launched[3] == "12026-01-01"


def test_cli_flags(products_db: ProductsDb, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]) -> None:
    assert products.main([]) == 0
    assert "## products: succeeded" in capsys.readouterr().out
    assert products.main(["--full-refresh", "--start-date", "2026-01-20"]) == 0
    assert "| products | 2 |" in capsys.readouterr().out  # rows 19 and 20 changed on or after the date
    with pytest.raises(SystemExit):
        products.main(["--start-date", "yesterday"])


def test_parquet_files_are_rotated_for_parallel_copy(
    products_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrow batches are written to parquet at extract: ``[sources.products.data_writer]`` rotates them."""
    monkeypatch.setenv("SOURCES__PRODUCTS__CHUNK_SIZE", "5")
    monkeypatch.setenv("SOURCES__PRODUCTS__DATA_WRITER__FILE_MAX_ITEMS", "10")
    report = products.run()
    package = products.create_pipeline().get_load_package_info(report.load_ids[0])
    files = [
        job
        for job in package.jobs["completed_jobs"]
        if job.job_file_info.table_name == "products" and job.job_file_info.file_format == "parquet"
    ]
    # 20 rows in batches of 5, a new file after every 10 rows: each file a slice, together every row once
    ids = [pq.read_table(job.file_path, columns=["id"]).column("id").to_pylist() for job in files]
    assert len(files) >= 2 and all(0 < len(chunk) <= 10 for chunk in ids), [len(c) for c in ids]
    every = [i for chunk in ids for i in chunk]
    assert sorted(every) == list(range(1, 21)), "the files split the rows without losing or repeating one"
    assert warehouse.scalar("select count(distinct id) from products.products") == 20
