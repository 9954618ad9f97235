"""One table's failure does not lose the others' loads (products on pgserver -> DuckDB): a table
that cannot be read, or whose schema change is refused, is left out of the run, the others load,
and the run fails naming it with its cursor kept (docs/products.md, "When a table fails")."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import products
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse
from utils.runner import TablesLeftOut, attempt, failed_report

CANARY = "iso-canary-password-7a3c"  # pragma: allowlist secret

SHOP = """
create table orders (id bigint primary key, total numeric(10,2), updated_at timestamptz not null);
insert into orders select g, g * 1.5, timestamptz '2026-01-01' + g * interval '1 hour'
    from generate_series(1, 3) g;
create table payments (id bigint primary key, amount numeric(10,2), updated_at timestamptz not null);
insert into payments select g, g * 2, timestamptz '2026-01-01' + g * interval '1 hour'
    from generate_series(1, 3) g;
create table countries (code char(2), name text);
insert into countries values ('GB', 'United Kingdom'), ('FR', 'France');
create table regions (code text, opened date);
insert into regions values ('north', '2020-01-01'), ('south', '2021-01-01');
"""


@pytest.fixture
def shop(products_db: ProductsDb, monkeypatch: pytest.MonkeyPatch) -> ProductsDb:
    """Four tables read by a role of their own (not a superuser, so grants count): two merged on a
    key with a cursor, two keyless (replaced each run)."""
    products_db.execute(SHOP)
    products_db.execute("drop table products")
    role = f"reader_{uuid.uuid4().hex[:8]}"
    products_db.execute(f"create role {role} login password '{CANARY}'")
    products_db.execute(f"grant usage on schema public to {role}")
    products_db.execute(f"grant select on all tables in schema public to {role}")
    url = sa.make_url(products_db.uri).set(username=role, password=CANARY)
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", url.render_as_string(hide_password=False))
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["*"]')
    products_db.role = role  # type: ignore[attr-defined]
    return products_db


def ids(warehouse: Warehouse, table: str, column: str = "id") -> list[Any]:
    return [row[0] for row in warehouse.query(f"select {column} from products.{table} order by 1")]


def cursor(resource: str) -> Any:
    state = products.create_pipeline().state["sources"]["products"]["resources"]
    return state[resource]["incremental"]["updated_at"]["last_value"]


def test_tables_that_cannot_be_read_are_left_out_and_the_others_load(
    shop: ProductsDb, warehouse: Warehouse
) -> None:
    products.run()
    payments_cursor = cursor("payments")
    # every table changes; then payments cannot be read (grant revoked) and regions holds a value the
    # reader refuses (a date at infinity), so two tables fail, each in its own way
    shop.execute("insert into orders values (4, 6, '2026-02-01')")
    shop.execute("update countries set name = 'Royaume-Uni' where code = 'GB'")
    shop.execute("insert into payments values (4, 8, '2026-02-01')")
    shop.execute("update payments set amount = 99, updated_at = '2026-02-01' where id = 1")
    shop.execute(f"revoke select on payments from {shop.role}")  # type: ignore[attr-defined]
    shop.execute("insert into regions values ('west', 'infinity')")

    with attempt("run-2"), pytest.raises(PipelineStepFailed) as failure:
        products.run()
    report = failed_report(failure.value)
    assert report is not None and report.status == "failed" and report.failed_step == "extract"
    assert isinstance(failure.value.exception, TablesLeftOut)
    assert sorted(report.failed_tables) == ["payments", "regions"]
    assert "permission denied" in report.failed_tables["payments"]
    assert "opened" in report.failed_tables["regions"], "the column the reader refused is named"
    for text in (report.error or "", report.to_markdown()):
        assert "payments" in text and "regions" in text and CANARY not in text
    # the others loaded: only their changes were read
    assert report.rows_by_table == {"orders": 1, "countries": 2}
    assert ids(warehouse, "orders") == [1, 2, 3, 4]
    assert ids(warehouse, "countries", "name") == ["France", "Royaume-Uni"]
    # the failed tables contributed nothing: no rows, no cursor moved, a keyless table not emptied
    assert warehouse.query("select id, amount from products.payments order by id") == [
        (1, 2),
        (2, 4),
        (3, 6),
    ]
    assert ids(warehouse, "regions", "code") == ["north", "south"]
    assert cursor("payments") == payments_cursor
    assert not products.create_pipeline().has_pending_data

    # fixed in the source: the retry of the same run reads the tables left out, each row once
    shop.execute(f"grant select on payments to {shop.role}")  # type: ignore[attr-defined]
    shop.execute("update regions set opened = '2026-03-01' where code = 'west'")
    with attempt("run-2"):
        retried = products.run()
    assert retried.status == "succeeded" and retried.failed_tables == {}
    # orders: nothing new since its cursor; countries: keyless, so read whole and replaced, as each run
    assert retried.rows_by_table == {"payments": 2, "regions": 3, "countries": 2}
    assert warehouse.query("select id, amount from products.payments order by id") == [
        (1, 99),
        (2, 4),
        (3, 6),
        (4, 8),
    ]
    assert ids(warehouse, "regions", "code") == ["north", "south", "west"]
    assert ids(warehouse, "orders") == [1, 2, 3, 4]
    assert cursor("payments") > payments_cursor


def test_a_refused_schema_change_leaves_out_only_its_table(shop: ProductsDb, warehouse: Warehouse) -> None:
    products.run()
    shop.execute("alter table payments alter column amount type numeric(8,1)")  # narrowed: refused
    shop.execute("insert into orders values (4, 6, '2026-02-01')")
    with pytest.raises(PipelineStepFailed) as failure:
        products.run()
    report = failed_report(failure.value)
    assert report is not None and list(report.failed_tables) == ["payments"]
    assert "decimal(10,2) to decimal(8,1)" in report.failed_tables["payments"]
    assert report.rows_by_table == {"orders": 1, "countries": 2, "regions": 2}
    assert ids(warehouse, "orders") == [1, 2, 3, 4]


def test_a_database_that_cannot_be_reached_still_fails_plainly(
    shop: ProductsDb, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is a table's fault here: no table is left out, nothing retried, nothing loaded."""
    products.run()
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", f"postgresql://reader:{CANARY}@127.0.0.1:9/shop")
    with pytest.raises(PipelineStepFailed) as failure:
        products.run()
    report = failed_report(failure.value)
    assert report is not None and report.failed_step == "extract" and report.failed_tables == {}
    assert "could not connect" in (report.error or "") and CANARY not in (report.error or "")
    assert not isinstance(failure.value.exception, TablesLeftOut)
    assert report.step_seconds.get("extract") is None, "the source was never read"


def test_a_full_refresh_leaves_a_failing_table_as_it_was(shop: ProductsDb, warehouse: Warehouse) -> None:
    products.run()
    payments_cursor = cursor("payments")
    shop.execute("delete from orders where id = 3")  # a hard delete only the reload (or sweep) sees
    shop.execute(f"revoke select on payments from {shop.role}")  # type: ignore[attr-defined]
    with pytest.raises(PipelineStepFailed) as failure:
        products.run(full_refresh=True)
    report = failed_report(failure.value)
    assert report is not None and list(report.failed_tables) == ["payments"]
    assert ids(warehouse, "orders") == [1, 2], "the others were reloaded"
    assert ids(warehouse, "payments") == [1, 2, 3] and cursor("payments") == payments_cursor
