"""An application's database changed between runs as applications change it - columns added and
widened, rows inserted, updated and hard-deleted, a table added, a keyless table left alone - and the
warehouse equal to the source after every run, on DuckDB and through the Snowflake emulator
(docs/products.md)."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines import products
from tests.fixtures.postgres import ProductsDb

APP = """
create table customers (id bigint primary key, email varchar(40) not null, credit numeric(10,2),
    visits smallint, active boolean, updated_at timestamptz default now());
insert into customers select g, 'c' || g || '@example.com', g * 1.25, g, g % 2 = 0, now()
    from generate_series(1, 30) g;
create table order_lines (order_id bigint, line int, amount numeric(12,2), status text,
    updated_at timestamptz default now(), primary key (order_id, line));
insert into order_lines select g / 3, g % 3, g * 10.5, 'open', now() from generate_series(1, 60) g;
create table settings (key text primary key, value text);
insert into settings values ('theme', 'dark'), ('locale', 'en-GB'), ('currency', 'GBP');
create table countries (code char(2), name text);
insert into countries values ('GB', 'United Kingdom'), ('FR', 'France'), ('DE', 'Germany');
"""

DAYS = [
    # day 2: an ordinary day of writes, a hard delete, a column added, a varchar widened
    """
    insert into customers select g, 'c' || g || '@example.com', g * 1.25, g, true, now()
        from generate_series(31, 40) g;
    update customers set credit = credit + 1, updated_at = now() + interval '1 minute' where id % 7 = 0;
    delete from customers where id in (3, 5, 8);
    delete from order_lines where order_id = 4;
    update order_lines set status = 'paid', updated_at = now() + interval '1 minute' where order_id = 2;
    alter table customers add column tier text, alter column email type varchar(200);
    update customers set tier = 'gold', email = repeat('long', 30) || '@example.com',
        updated_at = now() + interval '1 minute' where id = 10;
    update settings set value = 'light' where key = 'theme';
    """,
    # day 3: a migration widens numbers, a new table appears, a key-only table loses a row
    """
    alter table customers alter column credit type numeric(14,4), alter column visits type integer;
    update customers set credit = 1234567890.1234, visits = 70000, updated_at = now() + interval '2 minutes'
        where id = 12;
    create table coupons (id bigint primary key, code text, percent smallint,
        updated_at timestamptz default now());
    insert into coupons values (1, 'SPRING', 10), (2, 'SUMMER', 15);
    delete from settings where key = 'locale';
    insert into order_lines values (99, 1, 5, 'open', now() + interval '2 minutes');
    """,
    # day 4: deletes everywhere, a deleted key comes back, a column dropped in the source
    """
    delete from coupons where id = 1;
    delete from customers where id > 35;
    insert into customers (id, email, credit, visits, active, updated_at)
        values (3, 'back@example.com', 1, 1, true, now() + interval '3 minutes');
    delete from order_lines where order_id = 99 or (order_id = 10 and line = 1);
    alter table customers drop column active;
    """,
]
TABLES = ("customers", "order_lines", "settings", "countries")


def plain(value: Any) -> Any:
    """A value as both sides can be compared: timestamps in UTC, numbers as decimals."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return decimal.Decimal(str(value))
    if isinstance(value, decimal.Decimal):
        return value.normalize()
    return value


def source_rows(db: ProductsDb, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    engine = sa.create_engine(db.uri)
    try:
        with engine.connect() as con:
            result = con.execute(sa.text(f"select * from {table}"))
            columns = list(result.keys())
            rows = sorted(tuple(plain(v) for v in row) for row in result)
    finally:
        engine.dispose()
    return columns, rows


Reader = Callable[[str, list[str]], list[tuple[Any, ...]]]


@pytest.fixture(params=["duckdb", "snowflake"])
def read_warehouse(request: pytest.FixtureRequest) -> Reader:
    """Reads a table's rows from the destination this test runs on, for the source's columns."""
    if request.param == "duckdb":
        warehouse = request.getfixturevalue("warehouse")
        return lambda table, columns: warehouse.query(f"select {', '.join(columns)} from products.{table}")
    request.applymarker(pytest.mark.snowflake)
    snowflake = request.getfixturevalue("snowflake")
    return lambda table, columns: snowflake.query(
        f"select {', '.join(c.upper() for c in columns)} from {snowflake.table('products', table)}"
    )


def assert_equal(db: ProductsDb, read: Reader, tables: tuple[str, ...], day: int) -> None:
    for table in tables:
        columns, expected = source_rows(db, table)
        actual = sorted(tuple(plain(v) for v in row) for row in read(table, columns))
        assert actual == expected, f"day {day}: {table} differs from the source"


def test_the_warehouse_equals_the_source_after_every_day_of_an_applications_changes(
    products_db: ProductsDb, read_warehouse: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    products_db.execute("drop table products")
    products_db.execute(APP)
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["*"]')
    assert products.run().status == "succeeded"
    assert_equal(products_db, read_warehouse, TABLES, day=1)
    tables: tuple[str, ...] = TABLES
    for day, changes in enumerate(DAYS, start=2):
        products_db.execute(changes)
        if day == 3:
            tables = (*TABLES, "coupons")
        report = products.run()
        assert report.status == "succeeded", report.error
        assert_equal(products_db, read_warehouse, tables, day=day)
    assert products.run().status == "succeeded"
    assert_equal(products_db, read_warehouse, tables, day=len(DAYS) + 2)
