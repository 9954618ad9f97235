"""products by change data capture (PostgreSQL logical replication) into DuckDB (docs/products.md,
"Change data capture"): after every step the warehouse table equals the source table exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import products
from sources.products.replication import lsn_int
from tests.fixtures.faults import Faults
from tests.fixtures.snowflake import Snowflake
from tests.fixtures.warehouse import Warehouse
from utils.runner import attempt

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
    tables = products.create_pipeline().default_schema.tables
    assert not [name for name in tables if "change_capture" in name], "the capture's state loads no table"


def test_a_large_out_of_line_value_left_unchanged_keeps_its_warehouse_value(
    shop: Shop, warehouse: Warehouse
) -> None:
    shop.execute(
        "update items set body = (select string_agg(md5(random()::text), '') from generate_series(1, 3200))"
    )
    products.run()
    same(shop, warehouse)
    assert warehouse.scalar("select min(length(body)) from products.items") == 102_400
    shop.execute("update items set name = name || ' v2' where id <= 5")  # pgoutput sends body as 'u'
    products.run()
    same(shop, warehouse)


def test_soft_delete_flag_flags_rows_deleted_in_the_source(
    shop: Shop, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__SOFT_DELETE", "flag")
    products.run()
    shop.execute("delete from items where id in (2, 7)")
    products.run()
    assert sorted(warehouse.query("select id from products.items where deleted_at is not null")) == [
        (2,),
        (7,),
    ]
    live = sorted(warehouse.query(f"select {COLUMNS['items']} from products.items where deleted_at is null"))
    assert live == shop.rows("items")


def test_transactions_across_tables_repeated_updates_and_key_changes(
    shop: Shop, warehouse: Warehouse
) -> None:
    products.run()
    shop.execute(
        "begin; insert into items values (20, 'both', 1, null, null); update lines set qty = qty + 100;"
        " delete from lines where order_id = 1 and line = 2; commit"
    )
    for price in range(1, 6):  # several updates to one row in one run: the last wins
        shop.execute("update items set price = :price where id = 1", price=price)
    shop.execute("update items set id = 100 where id = 5")  # a key-changing update
    shop.execute("update lines set line = 9 where order_id = 2 and line = 1")
    shop.execute("update items set deleted_at = now() where id = 6")  # soft-deleted: removed
    shop.execute("insert into items values (21, 'soft', 1, null, now())")
    products.run()
    shop.execute("delete from items where deleted_at is not null")
    same(shop, warehouse)
    assert warehouse.scalar("select price from products.items where id = 1") == 5


def test_an_idle_publication_still_advances_the_slot(shop: Shop, warehouse: Warehouse) -> None:
    products.run()
    shop.execute("create table logs (line text)")  # not in the publication
    shop.execute(
        "insert into logs select repeat(md5(g::text), 20) from generate_series(1, 30000) g"
    )  # ~20 MB
    shop.execute(
        "checkpoint"
    )  # logs the running transactions: a point the slot's restart position can move to
    retained = shop.slot()
    assert retained is not None and retained[1] > 20_000_000
    with shop.engine.connect() as connection:
        written = lsn_int(str(connection.execute(sa.text("select pg_current_wal_lsn()::text")).scalar()))
    report = products.run()
    assert any("0 change(s) read" in note for note in report.notes), report.notes
    confirmed = [note.rsplit(" ", 1)[1] for note in report.notes if "confirmed up to" in note]
    assert lsn_int(confirmed[0]) >= written, "the run read up to its target, not until it gave up waiting"
    after = shop.slot()
    assert after is not None
    assert after[1] < 1_000_000, f"the slot still holds {after[1]:,} bytes of WAL"
    same(shop, warehouse)


def test_a_column_added_in_the_source_arrives_in_every_row(shop: Shop, warehouse: Warehouse) -> None:
    products.run()
    shop.execute("alter table items add column colour text default 'red'")
    shop.execute("update items set colour = 'blue' where id = 1")
    report = products.run()
    assert any("items read in full: column(s) added in the source: colour" in note for note in report.notes)
    source = sorted(
        tuple(row) for row in shop.engine.connect().execute(sa.text("select id, colour from items"))
    )
    assert sorted(warehouse.query("select id, colour from products.items")) == source
    same(shop, warehouse)


def test_truncate_is_honoured(shop: Shop, warehouse: Warehouse) -> None:
    products.run()
    shop.execute("truncate items; insert into items values (50, 'after', 1, null, null)")
    report = products.run()
    assert any("items read in full: truncated in the source" in note for note in report.notes), report.notes
    same(shop, warehouse)


def test_tables_outside_the_publication_load_by_cursor_until_added(shop: Shop, warehouse: Warehouse) -> None:
    shop.execute(
        "create table extra (id int primary key, v text); insert into extra values (1, 'a'), (2, 'b')"
    )
    COLUMNS["extra"] = "id, v"
    try:
        report = products.run()
        assert any("extra not in the publication" in note for note in report.notes), report.notes
        same(shop, warehouse)
        shop.execute("delete from extra where id = 1; insert into extra values (3, 'c')")
        products.run()  # by cursor (here the whole table) and the key sweep
        same(shop, warehouse)
        shop.execute(f"alter publication {PUBLICATION} add table extra")
        shop.execute("delete from extra where id = 2; insert into extra values (4, 'd')")
        report = products.run()
        assert any("extra read in full: new in the publication" in note for note in report.notes), (
            report.notes
        )
        same(shop, warehouse)
        shop.execute("update extra set v = 'e' where id = 3")
        products.run()
        same(shop, warehouse)
    finally:
        del COLUMNS["extra"]


def test_a_lost_slot_is_rebuilt_by_reading_the_tables_again(shop: Shop, warehouse: Warehouse) -> None:
    products.run()
    drop_slots(shop)
    shop.execute("delete from items where id = 1; update items set name = 'while lost' where id = 2")
    report = products.run()
    assert any("was missing and has been created again" in note for note in report.notes), report.notes
    same(shop, warehouse)
    drop_slots(shop)  # recreated by the set-up command: past the position the last load reached
    shop.execute(f"select pg_create_logical_replication_slot('{SLOT}', 'pgoutput')")
    shop.execute("delete from items where id = 3")
    shop.execute(f"select pg_replication_slot_advance('{SLOT}', pg_current_wal_lsn())")
    report = products.run()
    assert any("is past the position the last load reached" in note for note in report.notes), report.notes
    same(shop, warehouse)


def test_a_missing_publication_fails_before_anything_loads(shop: Shop, warehouse: Warehouse) -> None:
    shop.execute(f"drop publication {PUBLICATION}")
    with pytest.raises(Exception) as failure:
        products.run()
    message = str(failure.value)
    assert f"the publication '{PUBLICATION}' does not exist" in message
    assert "uv run python -m tools.postgres_cdc setup --print-sql" in message
    assert "items" not in warehouse.tables("products")


def run_killed(hook: list[str], **env: str) -> None:
    """Run the products CLI through ``hook`` (a module that SIGKILLs it at one point) and see it die."""
    done = subprocess.run(
        [sys.executable, "-m", *hook],
        env={**os.environ, **env},
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]


@pytest.mark.parametrize(
    ("module", "env"),
    [
        pytest.param("tests.pipelines.cdc_kill", {"CDC_KILL_AT": "read"}, id="during-the-stream-read"),
        pytest.param(
            "tests.reliability.pause_load",
            {"RELIABILITY_KILL_AFTER_COMMIT": "items"},
            id="after-the-merge-committed-before-dlt-recorded-it",
        ),
        pytest.param(
            "tests.pipelines.cdc_kill", {"CDC_KILL_AT": "confirm"}, id="after-the-load-before-the-confirm"
        ),
    ],
)
def test_a_run_killed_anywhere_is_followed_by_one_that_leaves_the_source_exactly(
    shop: Shop, warehouse: Warehouse, tmp_path: Path, module: str, env: dict[str, str]
) -> None:
    products.run()
    confirmed = shop.slot()
    shop.execute("insert into items values (30, 'new', 1, null, null); delete from items where id = 2")
    shop.execute("update items set name = 'changed' where id = 3; update lines set qty = -1")
    if module == "tests.reliability.pause_load":  # dlt's own step, as the reliability suite kills it
        run_killed([module, "pipelines.products"], RELIABILITY_PAUSE_MARKER=str(tmp_path / "killed"), **env)
    else:
        run_killed([module], **env)
    after = shop.slot()
    assert after is not None and confirmed is not None and after[0] == confirmed[0], (
        "the slot was not confirmed"
    )
    shop.execute("delete from items where id = 30; insert into items values (31, 'later', 2, null, null)")
    report = products.run()
    same(shop, warehouse)
    assert any("confirmed up to" in note for note in report.notes), report.notes
    products.run()
    same(shop, warehouse)


def test_a_retry_that_only_finishes_the_load_leaves_the_slot_for_the_next_run(
    shop: Shop, warehouse: Warehouse, faults: Faults
) -> None:
    products.run()
    confirmed = shop.slot()
    shop.execute("delete from items where id = 4; update items set name = 'x' where id = 5")
    faults.fail_load()
    with attempt("one-run"):
        with pytest.raises(PipelineStepFailed):
            products.run()
        report = products.run()  # the retry finishes the pending package and does not read the slot
    assert not report.extracted
    after = shop.slot()
    assert after is not None and confirmed is not None and after[0] == confirmed[0], (
        "the slot was not confirmed"
    )
    products.run()  # a new run reads the same changes again, deletes included
    same(shop, warehouse)


def test_a_table_left_out_is_read_in_full_once_it_can_be_and_never_holds_the_slot(
    shop: Shop, warehouse: Warehouse
) -> None:
    """A table whose read fails is left out while the others load (docs/products.md, "When a table
    fails"). It is not recorded as captured, so the next run that can read it reads it in full and
    sweeps it; the slot is confirmed all the same, so a table failing for days holds no WAL back."""
    shop.execute("alter table items add column due date; update items set due = 'infinity' where id = 1")
    with pytest.raises(PipelineStepFailed, match="items"):
        products.run()  # the first run: items cannot be read, lines and notes load
    same(shop, warehouse, "lines", "notes")
    assert "items" not in warehouse.tables("products")
    shop.execute("update items set due = '2026-01-01' where id = 1; update lines set qty = 7")
    report = products.run()
    same(shop, warehouse)
    assert any("items read in full" in note for note in report.notes), report.notes
    confirmed = shop.slot()
    shop.execute("update items set due = 'infinity', name = 'broken' where id = 2")
    shop.execute("insert into lines values (9, 1, 9); delete from items where id = 3")
    with pytest.raises(PipelineStepFailed, match="items"):
        products.run()
    same(shop, warehouse, "lines", "notes")
    after = shop.slot()
    assert after is not None and confirmed is not None and lsn_int(after[0]) > lsn_int(confirmed[0]), (
        "the slot was confirmed although a table was left out"
    )
    shop.execute("update items set due = null where id = 2")
    report = products.run()
    same(shop, warehouse)
    assert any("items read in full" in note for note in report.notes), report.notes


def test_partitions_dropped_or_truncated_on_their_own_and_double_underscore_names_converge(
    shop: Shop, warehouse: Warehouse
) -> None:
    """Dropping or truncating one partition sends nothing through a publication that publishes via
    the root: the key sweep, at its cadence, removes those rows. A table named ``order__lines`` keeps
    its ``__`` in the warehouse, and its deletes reach it."""
    shop.execute(
        "create table ev (id int, day date, note text, primary key (id, day)) partition by range (day);"
        "create table ev1 partition of ev for values from ('2026-01-01') to ('2026-02-01');"
        "create table ev2 partition of ev for values from ('2026-02-01') to ('2026-03-01');"
        "create table ev3 partition of ev for values from ('2026-03-01') to ('2026-04-01');"
        "insert into ev values (1, '2026-01-05', 'a'), (2, '2026-02-05', 'b'), (3, '2026-03-05', 'c');"
        "create table order__lines (id int primary key, v int);"
        "insert into order__lines values (1, 1), (2, 2);"
        f"alter publication {PUBLICATION} add table ev, order__lines;"
        f"alter publication {PUBLICATION} set (publish_via_partition_root = true)"
    )
    COLUMNS.update(ev="id, day, note", order__lines="id, v")
    try:
        products.run()
        same(shop, warehouse)
        shop.execute("truncate ev2; drop table ev3; update ev set note = 'z' where id = 1")
        shop.execute("delete from order__lines where id = 2")
        report = products.run()
        same(shop, warehouse)
        assert any("order__lines: 1 changed key(s) re-read, 1 deleted" in note for note in report.notes), (
            report.notes
        )
    finally:
        del COLUMNS["ev"], COLUMNS["order__lines"]


def test_a_key_other_than_the_replica_identity_reads_the_table_in_full_when_it_changes(
    shop: Shop, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``items`` keyed by ``name`` in the settings, by ``id`` in PostgreSQL: renaming a row sends no old
    ``name``, so re-reading by key would keep the old row beside the new one."""
    monkeypatch.setenv(
        "SOURCES__PRODUCTS__TABLES", '["lines", "notes", {"name": "items", "primary_key": ["name"]}]'
    )
    products.run()
    shop.execute("update items set name = 'renamed' where id = 3")
    report = products.run()
    same(shop, warehouse)
    assert any("items read in full: its changes do not carry its key" in note for note in report.notes), (
        report.notes
    )


def test_text_keys_of_any_characters_and_uuid_keys_are_re_read_and_deleted(
    shop: Shop, warehouse: Warehouse
) -> None:
    shop.execute(
        "create table codes (code text primary key, v int); create table tokens (id uuid primary key, v int);"
        f" alter publication {PUBLICATION} add table codes, tokens;"
        " insert into tokens select md5(g::text)::uuid, g from generate_series(1, 4) g"
    )
    COLUMNS.update(codes="code, v", tokens="id::text, v")
    odd = ['a"b', "c\\d", "{x,y}", "NULL", "é ✓", "'q'", " padded ", "", "50%off"]
    try:
        for index, code in enumerate(odd):
            shop.execute("insert into codes values (:code, :v)", code=code, v=index)
        products.run()
        warehouse_codes = sorted(warehouse.query("select code, v from products.codes"))
        assert warehouse_codes == shop.rows("codes")
        shop.execute(
            "update codes set v = v + 10 where code in (:a, :b, :c, :d, :e)",
            a=odd[0],
            b=odd[2],
            c=odd[5],
            d=odd[7],
            e=odd[8],
        )
        shop.execute("insert into codes values ('x%y', 99), ('%%', 98)")
        shop.execute("delete from codes where code in (:a, :b, :c)", a=odd[3], b=odd[4], c=odd[1])
        shop.execute("update tokens set v = 0 where v = 1; delete from tokens where v = 2")
        report = products.run()
        assert sorted(warehouse.query("select code, v from products.codes")) == shop.rows("codes")
        assert sorted(warehouse.query("select id, v from products.tokens")) == shop.rows("tokens")
        assert any("codes: 10 changed key(s) re-read, 3 deleted" in note for note in report.notes), (
            report.notes
        )
    finally:
        del COLUMNS["codes"], COLUMNS["tokens"]


@pytest.mark.snowflake
def test_changes_reach_snowflake_and_a_fresh_worker_carries_on_from_its_state(
    shop: Shop, snowflake: Snowflake
) -> None:
    def loaded(table: str) -> list[tuple[Any, ...]]:
        return sorted(snowflake.query(f"select {COLUMNS[table]} from {snowflake.table('products', table)}"))

    shop.execute("update items set body = repeat(md5(id::text), 4000) where id <= 3")
    products.run()
    assert loaded("items") == shop.rows("items")
    snowflake.restore_from_destination(products.create_pipeline)  # the capture's state comes back too
    shop.execute("update items set name = 'kept body' where id = 1; delete from items where id in (2, 9)")
    shop.execute("insert into items values (40, 'new', 4, null, null); delete from lines where order_id = 1")
    report = products.run()
    assert not any("read in full" in note for note in report.notes), report.notes
    assert loaded("items") == shop.rows("items") and loaded("lines") == shop.rows("lines")


def test_an_unknown_change_capture_setting_is_refused_by_name(
    shop: Shop, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PRODUCTS__CHANGE_CAPTURE", "wal2json")
    with pytest.raises(
        PipelineStepFailed, match=r"change_capture='wal2json': use one of \('cursor', 'logical'\)"
    ):
        products.run()
    assert shop.slot() is None and "items" not in warehouse.tables("products")
