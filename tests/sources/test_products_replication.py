"""The products source's replication stream on the real PostgreSQL: which keys changed, read without
confirming, then confirmed (``sources/products/replication.py``, ``pgoutput.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sources.products import replication
from sources.products.replication import CaptureSetupError

KEYS = {"a": ("id",), "b": ("k", "n")}


@pytest.fixture
def engine(postgres: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(
            sa.text(
                "create table a (id int primary key, t text, big text);"
                " alter table a alter column big set storage external;"
                " create table b (k text, n int, primary key (k, n)); create table c (x int);"
                " create publication p for table a, b"
            )
        )
    replication.create_slot(engine, "s")
    yield engine
    with engine.connect() as connection:
        connection.execute(sa.text("select pg_drop_replication_slot('s')"))
    engine.dispose()


def run(engine: sa.Engine, sql: str) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text(sql))


def confirmed(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        lsn = connection.execute(
            sa.text("select confirmed_flush_lsn::text from pg_replication_slots where slot_name = 's'")
        ).scalar()
    return str(lsn)


def test_keys_of_every_change_are_read_without_confirming_the_slot(engine: sa.Engine) -> None:
    run(engine, "insert into a select g, 'x', repeat(md5(g::text), 5000) from generate_series(1, 5) g")
    run(engine, "insert into b values ('q', 1), ('r', 2); insert into c values (1)")
    run(
        engine,
        "update a set t = 'y' where id = 2; update a set id = 10 where id = 3; delete from a where id = 4",
    )
    run(engine, "begin; delete from b where k = 'q'; update a set t = 'z' where id = 1; commit")
    before = confirmed(engine)
    changes = replication.read_changes(engine, "s", "p", keys=KEYS)
    assert changes.keys == {"a": {(str(i),) for i in (1, 2, 3, 4, 5, 10)}, "b": {("q", "1"), ("r", "2")}}
    assert changes.changes == 12 and not changes.truncated and not changes.undecodable
    assert confirmed(engine) == before, "reading confirms nothing"
    assert replication.read_changes(engine, "s", "p", keys=KEYS).keys == changes.keys, "read again"
    replication.confirm(engine, "s", changes.reached)
    assert confirmed(engine) == replication.lsn_text(changes.reached)
    assert replication.read_changes(engine, "s", "p", keys=KEYS).keys == {}


def test_an_unchanged_out_of_line_value_is_never_taken_for_a_key(engine: sa.Engine) -> None:
    run(engine, "insert into a values (1, 'x', repeat(md5('1'), 5000))")
    replication.confirm(engine, "s", replication.read_changes(engine, "s", "p", keys=KEYS).reached)
    run(engine, "update a set t = 'y'")  # pgoutput sends big as 'unchanged'
    assert replication.read_changes(engine, "s", "p", keys=KEYS).keys == {"a": {("1",)}}
    changes = replication.read_changes(engine, "s", "p", keys={"a": ("big",)})
    assert changes.undecodable == {"a"}, "a key the stream did not send is read in full, never guessed"


def test_truncate_and_an_idle_publication(engine: sa.Engine) -> None:
    run(engine, "insert into c select g from generate_series(1, 50000) g")  # not published
    with engine.connect() as connection:
        now = connection.execute(sa.text("select pg_current_wal_lsn()::text")).scalar()
    idle = replication.read_changes(engine, "s", "p", keys=KEYS, timeout=10)
    assert idle.changes == 0 and idle.reached >= replication.lsn_int(str(now)), "reaches the target"
    run(engine, "insert into b values ('q', 1); truncate b")
    changes = replication.read_changes(engine, "s", "p", keys=KEYS)
    assert changes.truncated == {"b"}


def test_a_missing_publication_is_named_with_the_commands_that_make_it(engine: sa.Engine) -> None:
    with pytest.raises(CaptureSetupError) as failure:
        replication.prepare(engine, "public", "nope", "s")
    assert "publication 'nope' does not exist" in str(failure.value)
    assert "`uv run python -m tools.postgres_cdc setup`" in str(failure.value)
    assert "`uv run python -m tools.postgres_cdc setup --print-sql`" in str(failure.value)


def test_a_table_of_the_same_name_in_another_schema_is_not_taken_for_it(engine: sa.Engine) -> None:
    run(
        engine,
        "create schema archive; create table archive.a (id int primary key);"
        " alter publication p add table archive.a",
    )
    run(engine, "insert into archive.a values (7); truncate archive.a; insert into a values (8, 'x', null)")
    changes = replication.read_changes(engine, "s", "p", keys=KEYS)
    assert changes.keys == {"a": {("8",)}} and not changes.truncated


def test_a_publication_name_is_taken_exactly_as_written(engine: sa.Engine) -> None:
    run(engine, 'create publication "Shop Pub" for table b; insert into a values (1, null, null);')
    run(engine, "insert into b values ('z', 9)")
    changes = replication.read_changes(engine, "s", "Shop Pub", keys=KEYS)
    assert changes.keys == {"b": {("z", "9")}}, "only the tables of that publication"
