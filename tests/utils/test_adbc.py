"""The ADBC table loader against a real PostgreSQL: batch sizes, types and errors."""

from __future__ import annotations

import decimal
import uuid

import adbc_driver_manager
import pyarrow as pa
import pytest
import sqlalchemy as sa
from dlt.sources.sql_database import sql_table

from utils.adbc import AdbcTableLoader, ReadError, pooled_connection, uuid_to_text
from utils.pg_types import override_hint


def _engine(uri: str) -> sa.Engine:
    return sa.create_engine(uri)


def _execute(uri: str, *statements: str) -> None:
    engine = _engine(uri)
    with engine.begin() as con:
        for statement in statements:
            con.execute(sa.text(statement))
    engine.dispose()


def _read(uri: str, table: str, chunk_size: int = 100_000) -> list[pa.RecordBatch]:
    resource = sql_table(
        credentials=uri,
        table=table,
        backend="adbc",  # type: ignore[arg-type]  # registered at run time by utils.adbc
        chunk_size=chunk_size,
        reflection_level="full_with_precision",
        table_loader_class=AdbcTableLoader,
    )
    return [item for item in resource if isinstance(item, pa.RecordBatch)]


def test_batches_are_capped_at_chunk_size_and_typed_for_dlt(postgres: str) -> None:
    _execute(
        postgres,
        "create table items (id int primary key, code uuid, amount numeric(10, 3), loose numeric,"
        " doc jsonb, mood text)",
        "insert into items select g, md5(g::text)::uuid, g / 8.0, g / 4.0, jsonb_build_object('g', g),"
        " null from generate_series(1, 25) as g",
    )
    batches = _read(postgres, "items", chunk_size=10)
    assert [batch.num_rows for batch in batches] == [10, 10, 5]
    schema = batches[0].schema
    assert schema.field("id").type == pa.int64()  # int4, widened to the reflected bigint
    assert schema.field("code").type == pa.string()
    assert schema.field("amount").type == pa.decimal128(10, 3)
    assert schema.field("loose").type == pa.decimal128(38, 9)  # no declared precision: dlt's default
    assert schema.field("doc").type == pa.string()
    first = batches[0].to_pylist()[0]
    assert first["code"] == str(uuid.UUID("c4ca4238-a0b9-2382-0dcc-509a6f75849b"))  # md5('1')
    assert first["amount"] == decimal.Decimal("0.125") and first["loose"] == decimal.Decimal("0.25")
    assert first["doc"] == '{"g": 1}'


def test_a_numeric_that_does_not_fit_is_a_clear_error(postgres: str) -> None:
    _execute(
        postgres, "create table odd (id int, loose numeric)", "insert into odd values (1, 0.1234567891234)"
    )
    with pytest.raises(
        Exception, match=r"column loose: a numeric value does not fit decimal128\(38, 9\)"
    ) as e:
        _read(postgres, "odd")
    assert '{name = "odd", columns = {loose = "text"}}' in str(e.value), "the override for this table"


@pytest.mark.parametrize("value", ["infinity", "-infinity"])
@pytest.mark.parametrize("pg_type", ["date", "timestamp", "timestamptz"])
def test_infinity_fails_naming_the_column_instead_of_loading_as_an_ancient_date(
    postgres: str, pg_type: str, value: str
) -> None:
    """The driver turns ``infinity`` into a date millions of years BC (found by tests/fuzz)."""
    latest = "5874897-12-31" if pg_type == "date" else "292277-12-31"  # ADBC's timestamps end there
    _execute(
        postgres,
        f"create table odd (id int, at {pg_type})",
        f"insert into odd values (1, '4714-11-24 BC'), (2, '{latest}'), (3, '{value}')",
    )
    with pytest.raises(Exception, match="column at: PostgreSQL's infinity or -infinity") as e:
        _read(postgres, "odd")
    assert '{name = "odd", columns = {at = "text"}}' in str(e.value), "the override for this table"
    _execute(postgres, "delete from odd where id = 3")
    assert sum(batch.num_rows for batch in _read(postgres, "odd")) == 2  # PostgreSQL's own extremes


def test_driver_errors_become_read_errors(postgres: str) -> None:
    loader = AdbcTableLoader(_engine(postgres), "adbc", sa.Table("t", sa.MetaData()), {})  # type: ignore[arg-type]
    with pytest.raises(ReadError, match="does not exist"):
        list(loader._batches("select * from no_such_table"))


def test_uuid_fallback_formats_binary_uuids() -> None:
    value = uuid.uuid4()
    text = uuid_to_text(pa.array([value.bytes, None], type=pa.binary(16)))
    assert text.to_pylist() == [str(value), None]


def test_a_type_left_in_wire_format_fails_naming_the_column(postgres: str) -> None:
    """Without the products type map (plain ``sql_table``), ``inet`` would arrive as PostgreSQL's binary
    format: the read refuses it instead of loading a blob."""
    _execute(
        postgres, "create table hosts (id int, address inet)", "insert into hosts values (1, '10.0.0.1')"
    )
    with pytest.raises(Exception, match="column address: PostgreSQL type inet arrived in binary wire format"):
        _read(postgres, "hosts")


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("text", {"data_type": "text", "precision": None, "scale": None}),
        (" Double ", {"data_type": "double", "precision": None, "scale": None}),
        ("decimal(20, 4)", {"data_type": "decimal", "precision": 20, "scale": 4}),
    ],
)
def test_column_overrides_become_hints(value: str, hint: dict[str, object]) -> None:
    assert override_hint("products", "price", value) == hint


@pytest.mark.parametrize("value", ["float", "decimal(39,2)", "decimal(5,6)", "varchar"])
def test_unknown_column_overrides_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"products.columns.price"):
        override_hint("products", "price", value)


def test_pooled_connections_are_reused_and_a_failed_one_is_discarded(postgres: str) -> None:
    engine = _engine(postgres)

    def backend() -> int:
        with pooled_connection(engine) as connection, connection.cursor() as cursor:
            cursor.execute("select pg_backend_pid()")
            return int(cursor.fetchone()[0])

    first = backend()
    assert backend() == first, "the next table reads over the same connection"
    with (
        pytest.raises(adbc_driver_manager.Error),
        pooled_connection(engine) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("select * from no_such_table")
    assert backend() != first, "a connection whose read failed is not handed out again"
    engine.dispose()
    with pooled_connection(engine) as connection, connection.cursor() as cursor:  # a new pool after dispose
        cursor.execute("select 1")
        assert cursor.fetchone()[0] == 1
