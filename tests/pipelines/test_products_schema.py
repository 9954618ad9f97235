"""The products pipeline on an application-shaped database that changes between runs (DuckDB):
discovery of every table, keys and cursors, keyless tables, refused settings, and source column
changes carried into the warehouse or refused before anything loads (docs/products.md)."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import products
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse

APP_SCHEMA = """
create table countries (code char(2), name varchar(40));
insert into countries values ('GB', 'United Kingdom'), ('FR', 'France'), ('DE', 'Germany');
create table "Order Items" ("Order Id" bigint, "line" int, "select" text, qty smallint, amount numeric(10,2),
    "updated_at" timestamptz default now(), primary key ("Order Id", "line"));
insert into "Order Items" values (1, 1, 'a', 2, 9.99), (1, 2, 'b', 1, 0.5), (2, 1, 'c', 5, 100);
create table events (id bigint, happened_on date not null, kind text, primary key (id, happened_on))
    partition by range (happened_on);
create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01');
create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');
insert into events values (1, '2025-06-01', 'x'), (2, '2026-06-01', 'y');
create table settings (key text primary key, value text);
insert into settings values ('a', '1'), ('b', '2');
create view recent_events as select id, kind from events where happened_on >= '2026-01-01';
create table audit_log (id bigint primary key, note text);
insert into audit_log values (1, 'x');
"""


@pytest.fixture
def app_db(products_db: ProductsDb, monkeypatch: pytest.MonkeyPatch) -> ProductsDb:
    """An application's schema beside ``products``, every table of it selected with ``"*"``."""
    products_db.execute(APP_SCHEMA)
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["*"]')
    monkeypatch.setenv("SOURCES__PRODUCTS__EXCLUDE", '["audit_*"]')
    return products_db


def count(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.scalar(f'select count(*) from products."{table}"'))


def test_every_table_of_the_schema_loads_and_a_keyless_table_never_doubles(
    app_db: ProductsDb, warehouse: Warehouse
) -> None:
    first = products.run()
    assert first.rows_by_table == {
        "countries": 3,
        "order_items": 3,
        "events": 2,
        "settings": 2,
        "products": 20,
    }, "tables, a partitioned table (rows in its partitions), quoted names; no views, no audit_log"
    for _ in range(2):
        products.run()
    assert count(warehouse, "countries") == 3, "a table without a key is replaced, never appended"
    assert count(warehouse, "order_items") == 3 and count(warehouse, "settings") == 2
    assert warehouse.query('select "order_id", line, "select" from products.order_items order by 1, 2') == [
        (1, 1, "a"),
        (1, 2, "b"),
        (2, 1, "c"),
    ]
    # a key without a cursor (settings) is merged in full: an update arrives, nothing doubles
    app_db.execute("update settings set value = '3' where key = 'b'")
    app_db.execute("update countries set name = 'Deutschland' where code = 'DE'")
    products.run()
    assert warehouse.query("select key, value from products.settings order by key") == [
        ("a", "1"),
        ("b", "3"),
    ]
    assert warehouse.query("select name from products.countries order by name") == [
        ("Deutschland",),
        ("France",),
        ("United Kingdom",),
    ]


def test_a_table_created_between_runs_is_loaded_and_reported(
    app_db: ProductsDb, warehouse: Warehouse
) -> None:
    products.run()
    app_db.execute("create table coupons (id bigint primary key, code text, updated_at timestamptz)")
    app_db.execute("insert into coupons values (1, 'SAVE', now()), (2, 'MORE', now())")
    report = products.run()
    assert report.new_tables == ["coupons"] and report.rows_by_table["coupons"] == 2
    assert "- new tables: coupons" in report.to_markdown()


def test_views_load_when_asked_and_replace_without_a_declared_key(
    app_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__VIEWS", "true")
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["recent_*"]')
    products.run()
    products.run()
    assert count(warehouse, "recent_events") == 1


def test_settings_that_cannot_be_honoured_are_refused_before_anything_loads(
    app_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = {
        json.dumps(["*", {"name": "countries", "cursor": "name"}]): "countries has no primary key",
        json.dumps([{"name": "settings", "primary_key": ["id"]}]): "settings.primary_key names id",
        json.dumps([{"name": "settings", "cursor": "changed"}]): "settings.cursor names changed",
        json.dumps(["no_such_table"]): "public.no_such_table does not exist",
    }
    for tables, message in cases.items():
        monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", tables)
        with pytest.raises(PipelineStepFailed, match=message) as failed:
            products.run()
        assert failed.value.step == "extract" and not products.create_pipeline().has_pending_data
        assert warehouse.tables("products") == set()


def test_the_first_cursor_of_the_list_that_a_table_has_is_its_cursor(
    app_db: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__CURSOR", '["changed_at", "updated_at"]')
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["products", "Order *"]')
    app_db.execute('alter table "Order Items" add column changed_at timestamptz default now()')
    products.run()
    app_db.execute(
        "update \"Order Items\" set qty = 9, changed_at = now() + interval '1 hour' where line = 2"
    )
    assert products.run().rows_by_table == {"order_items": 1}, "changed_at is the cursor"
    assert products.run().rows_by_table == {}, "nothing changed since"
    assert warehouse.query("select qty from products.order_items order by 1") == [(2,), (5,), (9,)]


def test_schema_changes_carry_on_and_the_warehouse_holds_the_new_values(
    app_db: ProductsDb, warehouse: Warehouse
) -> None:
    app_db.execute("alter table settings add column ratio real, add column seen_at timestamp")
    app_db.execute("update settings set ratio = 0.5, seen_at = '2026-01-01 10:00'")
    products.run()
    app_db.execute(
        'alter table "Order Items" alter column amount type numeric(14,4), alter column qty type integer;'
        "alter table countries alter column name type varchar(200), alter column code type text;"
        "alter table settings alter column ratio type double precision, alter column seen_at type timestamptz"
        " using seen_at at time zone 'UTC', add column added int;"
        "alter table products alter column stock type bigint, alter column name drop not null,"
        " drop column currency"
    )
    app_db.execute(
        'update "Order Items" set amount = 1234567890.1234, qty = 2000000000, updated_at = now() + interval'
        " '1 hour' where line = 2;"
        f"update countries set name = '{'x' * 150}' where code = 'FR';"
        "update settings set ratio = 0.1, seen_at = '2026-06-01 12:00:00+00', added = 7 where key = 'a';"
        "update products set stock = 9000000000, name = null, updated_at = now() + interval '1 hour'"
        " where id = 1"
    )
    report = products.run()
    assert report.status == "succeeded"
    widened = [note for note in report.notes if note.startswith("column widened")]
    assert any("order_items.amount: decimal(10,2) -> decimal(14,4)" in note for note in widened), widened
    assert any(
        "settings.seen_at: timestamp without time zone -> timestamp with time zone" in n for n in widened
    )
    assert warehouse.query(
        'select amount, qty from products.order_items where "order_id" = 1 and line = 2'
    ) == [(decimal.Decimal("1234567890.1234"), 2000000000)]
    assert warehouse.scalar("select amount from products.order_items where line = 1 and order_id = 1") == (
        decimal.Decimal("9.9900")
    ), "old values kept exactly"
    assert warehouse.scalar("select name from products.countries where code = 'FR'") == "x" * 150
    assert warehouse.query("select ratio, seen_at, added from products.settings where key = 'a'") == [
        (0.1, dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC), 7)
    ]
    assert warehouse.scalar("select seen_at from products.settings where key = 'b'") == dt.datetime(
        2026, 1, 1, 10, tzinfo=dt.UTC
    ), "a naive timestamp loaded before is read as UTC"
    assert warehouse.query("select stock, name, currency from products.products where id = 1") == [
        (9000000000, None, None)
    ], "bigint widened, NOT NULL dropped, a dropped column stays, NULL for new rows"
    assert warehouse.scalar("select currency from products.products where id = 2") == "EUR"
    types = dict(
        warehouse.query(
            "select table_name || '.' || column_name, data_type from information_schema.columns"
            " where table_schema = 'products'"
        )
    )
    assert types["order_items.amount"] == "DECIMAL(14,4)" and types["order_items.qty"] == "BIGINT"
    assert types["settings.seen_at"] == "TIMESTAMP WITH TIME ZONE" and types["settings.ratio"] == "DOUBLE"
    assert products.run().status == "succeeded", "and the run after that has nothing left to change"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            'alter table "Order Items" alter column amount type numeric(8,1)',
            [
                "order_items.amount",
                "from decimal(10,2) to decimal(8,1)",
                '{name = "Order Items", columns = {"amount" = "decimal(10,2)"}}',
            ],
        ),
        (
            "alter table settings alter column value type integer using value::integer",
            ["settings.value", "from text to bigint", '{"value" = "text"}'],
        ),
        (
            "alter table settings drop constraint settings_pkey, add primary key (key, value)",
            ["settings: the primary key changed from (key) to (key, value)", "--full-refresh"],
        ),
    ],
)
def test_a_change_that_cannot_be_carried_fails_the_run_and_leaves_its_table_out(
    app_db: ProductsDb, warehouse: Warehouse, change: str, words: list[str]
) -> None:
    """Refused before its table is read: that table is left out, nothing of it loaded; the other
    tables load (tests/pipelines/test_products_isolation.py), and the run fails naming it."""
    products.run()
    before = warehouse.query("select * from products.settings order by 1")
    app_db.execute(change)
    with pytest.raises(PipelineStepFailed) as failed:
        products.run()
    report = failed.value.run_report  # type: ignore[attr-defined]
    error = report.error
    assert failed.value.step == "extract" and "cannot be carried safely" in error
    assert len(report.failed_tables) == 1 and "left out of this run" in error
    assert all(word in error for word in words), error
    assert not products.create_pipeline().has_pending_data
    assert warehouse.query("select * from products.settings order by 1") == before
