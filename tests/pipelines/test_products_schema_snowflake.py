"""Source column changes carried into Snowflake (emulator): the statements sent and the values held,
and a keyless table replaced rather than doubled (docs/products.md, "Schema changes")."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pipelines import products
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.snowflake import Snowflake
from tests.snowflake_emulator.recorder import Statement, recorded_statements

pytestmark = pytest.mark.snowflake

MEASURES = """
create table measures (id bigint primary key, amount numeric(10,2), qty smallint, label varchar(5),
    ratio real, seen_at timestamp, note text not null, updated_at timestamptz default now());
insert into measures values (1, 12345678.91, 7, 'abc', 0.5, '2026-01-01 10:00', 'n');
create table countries (code char(2), name text);
insert into countries values ('GB', 'United Kingdom'), ('FR', 'France');
"""


@contextmanager
def recording(snowflake: Snowflake) -> Iterator[list[Statement]]:
    if snowflake.mode != "emulator":
        pytest.skip("checks the statements the emulator receives")
    with recorded_statements() as statements:
        yield statements


@pytest.fixture
def measures(products_db: ProductsDb, monkeypatch: pytest.MonkeyPatch) -> ProductsDb:
    products_db.execute(MEASURES)
    monkeypatch.setenv("SOURCES__PRODUCTS__TABLES", '["measures", "countries"]')
    return products_db


def test_widened_columns_are_altered_in_snowflake_and_hold_the_new_values(
    measures: ProductsDb, snowflake: Snowflake
) -> None:
    products.run()
    products.run()
    table = snowflake.table("products", "measures")
    assert snowflake.scalar(f"select count(*) from {snowflake.table('products', 'countries')}") == 2
    measures.execute(
        "alter table measures alter column amount type numeric(14,2), alter column qty type bigint,"
        " alter column label type varchar(50), alter column ratio type double precision,"
        " alter column seen_at type timestamptz using seen_at at time zone 'UTC',"
        " alter column note drop not null;"
        "update measures set amount = 999999999999.99, qty = 9000000000, label = repeat('y', 40),"
        " ratio = 0.1, seen_at = '2026-06-01 12:00+00', note = null, updated_at = now() + interval '1 hour'"
    )
    with recording(snowflake) as statements:
        report = products.run()
    widened = [note for note in report.notes if note.startswith("column widened")]
    assert len(widened) == 4, widened  # amount, qty, seen_at and note's NOT NULL (text is unbounded)
    alters = [s.sql for s in statements if s.sql.upper().startswith(("ALTER TABLE", "UPDATE"))]
    assert any('ALTER COLUMN "AMOUNT" SET DATA TYPE NUMBER(14,2)' in sql for sql in alters), alters
    assert any('ALTER COLUMN "NOTE" DROP NOT NULL' in sql for sql in alters), alters
    # Snowflake cannot alter a TIMESTAMP_NTZ in place: a new column (dlt's type for a timestamp with a
    # time zone), filled from the old one, takes its place
    assert any('ADD COLUMN "SEEN_AT__WIDENED" TIMESTAMP_LTZ' in sql for sql in alters), alters
    assert any('RENAME COLUMN "SEEN_AT__WIDENED" TO "SEEN_AT"' in sql for sql in alters), alters
    assert snowflake.query(f"select amount, qty, label, ratio, seen_at, note from {table}") == [
        (
            decimal.Decimal("999999999999.99"),
            9000000000,
            "y" * 40,
            0.1,
            dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC),
            None,
        )
    ]
    types = snowflake.columns("products", "measures")
    assert types["SEEN_AT"] == types["UPDATED_AT"] != "TIMESTAMP_NTZ"
    assert snowflake.scalar(f"select count(*) from {snowflake.table('products', 'countries')}") == 2
    assert products.run().status == "succeeded"


@pytest.mark.parametrize("killed_after", ["add", "drop"])
def test_a_rebuild_killed_between_its_statements_is_finished_by_the_next_run(
    measures: ProductsDb, snowflake: Snowflake, killed_after: str
) -> None:
    """Snowflake commits each statement of a column rebuild: the next run finishes what a kill left."""
    products.run()
    table = snowflake.table("products", "measures")
    measures.execute(
        "alter table measures alter column seen_at type timestamptz using seen_at at time zone 'UTC';"
        "update measures set seen_at = '2026-06-01 12:00+00', updated_at = now() + interval '1 hour'"
    )
    done = ['ALTER TABLE {t} ADD COLUMN "SEEN_AT__WIDENED" TIMESTAMP_LTZ']
    if killed_after == "drop":
        done += ['UPDATE {t} SET "SEEN_AT__WIDENED" = CAST("SEEN_AT" AS TIMESTAMP_LTZ)']
        done += ['ALTER TABLE {t} DROP COLUMN "SEEN_AT"']
    for statement in done:  # what the killed run had committed
        snowflake.query(statement.format(t=table))

    assert products.run().status == "succeeded"
    types = snowflake.columns("products", "measures")
    assert "SEEN_AT__WIDENED" not in types and types["SEEN_AT"] == types["UPDATED_AT"]
    assert snowflake.query(f"select seen_at from {table}") == [(dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC),)]


def test_rows_deleted_in_the_source_are_swept_from_snowflake(
    measures: ProductsDb, snowflake: Snowflake
) -> None:
    products.run()
    measures.execute("insert into measures (id, amount, note) values (2, 1, 'x'), (3, 2, 'y')")
    measures.execute("update measures set updated_at = now() + interval '1 hour' where id > 1")
    products.run()
    measures.execute("delete from measures where id = 2; delete from countries where code = 'FR'")
    report = products.run()
    assert any("key sweep of measures: 1 deleted in the source, removed" in note for note in report.notes)
    table = snowflake.table("products", "measures")
    assert [row[0] for row in snowflake.query(f"select id from {table} order by id")] == [1, 3]
    countries = snowflake.table("products", "countries")
    assert snowflake.query(f"select code from {countries}") == [("GB",)], "replaced, so the delete shows"
