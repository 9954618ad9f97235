"""Many tables in one run: the tables of a run share a few PostgreSQL connections (real PostgreSQL,
DuckDB warehouse; docs/performance.md has the figures)."""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa

from pipelines import products
from tests.fixtures.warehouse import Warehouse

TABLES = 16


def settled_sessions(uri: str) -> int:
    """Sessions PostgreSQL has counted for the test's database, once every other session has ended
    (a backend reports its statistics when it exits)."""
    engine = sa.create_engine(uri, isolation_level="AUTOCOMMIT")  # statistics are read afresh each time
    with engine.connect() as con:
        for _ in range(100):
            others = con.execute(
                sa.text(
                    "select count(*) from pg_stat_activity"
                    " where datname = current_database() and pid <> pg_backend_pid()"
                )
            ).scalar_one()
            if not others:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"{others} connections to the source database stayed open after the run")
        time.sleep(0.5)
        count = con.execute(
            sa.text("select sessions from pg_stat_database where datname = current_database()")
        ).scalar_one()
    engine.dispose()
    return int(count)


@pytest.fixture
def many(postgres: str, monkeypatch: pytest.MonkeyPatch) -> str:
    engine = sa.create_engine(postgres)
    with engine.begin() as con:
        for index in range(TABLES):
            con.execute(
                sa.text(
                    f"create table t_{index:02d} (id bigint primary key, name text, updated_at timestamptz);"
                    f" insert into t_{index:02d} select g, 'row ' || g, now() from generate_series(1, 50) g"
                )
            )
    engine.dispose()
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", postgres)
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["t_*"]')
    monkeypatch.setenv("SOURCES__PRODUCTS__LAG_SECONDS", "0")
    monkeypatch.setenv("SOURCES__PRODUCTS__KEY_SWEEP_HOURS", "0")
    return postgres


def test_a_run_reads_and_sweeps_every_table_over_a_few_shared_connections(
    many: str, warehouse: Warehouse
) -> None:
    products.run()  # first load: every table is new, so none is swept
    engine = sa.create_engine(many)
    with engine.begin() as con:
        con.execute(sa.text("delete from t_03 where id <= 5; update t_07 set updated_at = now()"))
    engine.dispose()
    before = settled_sessions(many)
    report = products.run()  # reads every table (t_07 changed) and sweeps all of them
    opened = settled_sessions(many) - before - 1  # less the reading of the count itself
    swept = [note for note in report.notes if note.startswith("key sweep of")]
    assert len(swept) == TABLES
    assert warehouse.query("select count(*) from products.t_03")[0][0] == 45, "the sweep still removes"
    assert warehouse.query("select count(*) from products.t_07")[0][0] == 50
    # an ADBC connection per table read and per table swept would be 4 * TABLES sessions (the driver
    # opens a second one to read the type catalogue); the extraction workers and the sweep share a
    # few, and discovery has SQLAlchemy's own
    assert opened < 2 * TABLES, f"{opened} PostgreSQL sessions for {TABLES} tables read and swept"


CONNECTION_LIMIT = 16
"""Connections the reading role may hold at once: fewer than the tables of the run below."""


def test_a_run_over_more_tables_than_its_connection_limit_reads_a_few_at_a_time(
    postgres: str, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each table is read in several batches, so a table started and not finished holds its
    connection (and batches): the run must finish tables before starting more, or it needs a
    connection per table at once (and memory growing with the number of tables)."""
    tables = 2 * CONNECTION_LIMIT
    role = f"reader_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        for index in range(tables):
            con.execute(
                sa.text(
                    f"create table t_{index:02d} (id bigint primary key, name text, updated_at timestamptz);"
                    f" insert into t_{index:02d} select g, 'row ' || g, now() from generate_series(1, 50) g"
                )
            )
        con.execute(sa.text(f"create role {role} login password 'pw' connection limit {CONNECTION_LIMIT}"))
        con.execute(sa.text(f"grant usage on schema public to {role}"))
        con.execute(sa.text(f"grant select on all tables in schema public to {role}"))
    engine.dispose()
    reader = sa.make_url(postgres).set(username=role, password="pw")
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", reader.render_as_string(hide_password=False))
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["t_*"]')
    monkeypatch.setenv("SOURCES__PRODUCTS__CHUNK_SIZE", "10")  # five batches a table

    report = products.run()

    assert not report.failed_tables
    counts = warehouse.query(
        "select count(*), count(distinct table_name) from information_schema.tables"
        " where table_schema = 'products' and table_name like 't\\_%' escape '\\'"
    )
    assert counts[0] == (tables, tables)
    assert warehouse.query(f"select count(*) from products.t_{tables - 1:02d}")[0][0] == 50
