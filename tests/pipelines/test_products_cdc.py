"""products by change data capture (PostgreSQL logical replication) into DuckDB (docs/products.md,
"Change data capture"): after every step the warehouse table equals the source table exactly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines import products
from tests.fixtures.warehouse import Warehouse

SLOT = "data_pipelines_products"
PUBLICATION = "data_pipelines_products"
SCHEMA = """
create table items (id bigint primary key, name text not null, price numeric(10, 2), body text,
    deleted_at timestamptz);
alter table items alter column body set storage external;
create table lines (order_id int, line int, qty int, primary key (order_id, line));
create table notes (note text);
insert into items select g, 'item ' || g, g * 1.5, null, null from generate_series(1, 10) g;
insert into lines select o, l, o * l from generate_series(1, 3) o, generate_series(1, 2) l;
insert into notes values ('a'), ('b');
create publication data_pipelines_products for table items, lines;
"""
COLUMNS = {"items": "id, name, price, body, deleted_at", "lines": "order_id, line, qty", "notes": "note"}


@dataclass
class Shop:
    uri: str
    engine: sa.Engine

    def execute(self, sql: str, **params: Any) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text(sql), params)

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.text(f"select {COLUMNS[table]} from {table}")).fetchall()
        return sorted(tuple(row) for row in rows)

    def slot(self) -> tuple[Any, ...] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.text(
                    "select confirmed_flush_lsn, pg_current_wal_lsn() - restart_lsn from pg_replication_slots"
                    " where slot_name = :slot"
                ),
                {"slot": SLOT},
            ).first()
        return None if row is None else tuple(row)


@pytest.fixture
def shop(postgres: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    engine = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    db = Shop(postgres, engine)
    db.execute(SCHEMA)
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", postgres)
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["*"]')
    monkeypatch.setenv("SOURCES__PRODUCTS__CHANGE_CAPTURE", "logical")
    yield db
    drop_slots(db)
    engine.dispose()


def drop_slots(shop: Shop) -> None:
    """Slots retain WAL and block DROP DATABASE: every test drops the ones it made."""
    shop.execute(
        "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
        " where database = current_database() and not active"
    )


def same(shop: Shop, warehouse: Warehouse, *tables: str) -> None:
    for table in tables or tuple(COLUMNS):
        loaded = sorted(warehouse.query(f"select {COLUMNS[table]} from products.{table}"))
        assert loaded == shop.rows(table), table


def test_snapshot_then_inserts_updates_and_deletes(shop: Shop, warehouse: Warehouse) -> None:
    report = products.run()
    same(shop, warehouse)
    assert shop.slot() is not None, "the first run created the slot"
    assert any("items read in full: first read" in note for note in report.notes), report.notes
    shop.execute("insert into items values (11, 'new', 2.5, null, null), (12, 'gone soon', 1, null, null)")
    shop.execute("update items set name = 'renamed', price = 99 where id = 3")
    shop.execute("delete from items where id in (4, 12)")  # 12: inserted then deleted between runs
    shop.execute(
        "update lines set qty = 0 where order_id = 2; delete from lines where order_id = 3 and line = 1"
    )
    shop.execute("insert into notes values ('c')")
    report = products.run()
    same(shop, warehouse)
    assert not any("read in full" in note for note in report.notes), report.notes
    assert any("items: 4 changed key(s) re-read, 2 deleted" in note for note in report.notes), report.notes
    report = products.run()  # nothing changed
    same(shop, warehouse)
