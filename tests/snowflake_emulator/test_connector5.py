"""The emulator answers the 5.x Snowflake connector as Snowflake does where the pipeline suites do not look.

Each case guards one patch in :mod:`tests.snowflake_emulator.connector5` that no pipeline test exercises:
NULL timestamps in Arrow results (C), PUT's conditional upload and ``OVERWRITE`` (D, E), a login
without autocommit (F) and the text of an error (G). They assert Snowflake's documented behaviour, so
with ``SNOWFLAKE_TESTS=real`` they run unchanged against a real account.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from snowflake.connector.errors import ProgrammingError

from tests.fixtures.snowflake import Snowflake

pytestmark = pytest.mark.snowflake

PUT_STATUS = 6
"""Column of ``PUT``'s result holding the file's status (``UPLOADED``, ``SKIPPED``)."""


def _schema(sf: Snowflake) -> str:
    """A fresh schema for the test (dropped with the test's datasets)."""
    schema = sf.dataset("connector5")
    sf.query(f'create schema if not exists "{schema}"')
    return schema


def test_null_timestamps_read_back_as_null(snowflake: Snowflake) -> None:
    """Patch C: a NULL ``TIMESTAMP_TZ``/``_NTZ`` reaches the client as ``None`` beside a set one."""
    table = f'"{_schema(snowflake)}"."T"'
    snowflake.query(f"create table {table} (id int, tz timestamp_tz, ntz timestamp_ntz)")
    snowflake.query(
        f"insert into {table} select 1, '2026-01-02 03:04:05.5 +00:00'::timestamp_tz,"
        " '2026-01-02 03:04:05'::timestamp_ntz union all select 2, null, null"
    )
    rows = snowflake.query(f"select id, tz, ntz from {table} order by id")
    assert [r[0] for r in rows] == [1, 2]
    assert rows[0][1].isoformat() == "2026-01-02T03:04:05.500000+00:00"
    assert rows[0][2].isoformat() == "2026-01-02T03:04:05"
    assert rows[1][1:] == (None, None)


def test_put_skips_an_existing_file_unless_told_to_overwrite(snowflake: Snowflake, tmp_path: Path) -> None:
    """Patches D and E: ``PUT`` without ``OVERWRITE`` leaves a staged file alone; ``OVERWRITE = TRUE``
    replaces it; ``AUTO_COMPRESS`` (the default) stages ``<name>.gz``, which ``COPY`` reads."""
    schema = _schema(snowflake)
    table, stage = f'"{schema}"."T"', f'@"{schema}"."%T"'
    snowflake.query(f"create table {table} (a int, b int)")
    source = tmp_path / "rows.csv"
    uri = "file://" + source.as_posix()

    source.write_text("1,1\n")
    first = snowflake.query(f"put '{uri}' '{stage}' auto_compress = false")
    source.write_text("2,2\n")
    again = snowflake.query(f"put '{uri}' '{stage}' auto_compress = false")
    assert [first[0][PUT_STATUS], again[0][PUT_STATUS]] == ["UPLOADED", "SKIPPED"]
    snowflake.query(f"copy into {table} from {stage} file_format = (type = csv)")
    assert snowflake.query(f"select a, b from {table}") == [(1, 1)]  # the first file's rows

    replaced = snowflake.query(f"put '{uri}' '{stage}' auto_compress = false overwrite = true")
    assert replaced[0][PUT_STATUS] == "UPLOADED"
    compressed = snowflake.query(f"put '{uri}' '{stage}'")
    assert compressed[0][1] == "rows.csv.gz" and compressed[0][PUT_STATUS] == "UPLOADED"
    snowflake.query(f"truncate table {table}")
    snowflake.query(f"copy into {table} from {stage} file_format = (type = csv) force = true")
    assert sorted(snowflake.query(f"select a, b from {table}")) == [(2, 2), (2, 2)]  # rows.csv, rows.csv.gz


def test_a_session_opened_without_autocommit_can_roll_back(snowflake: Snowflake) -> None:
    """Patch F: ``autocommit=False`` at login holds a DML statement in a transaction until commit."""
    table = f'"{_schema(snowflake)}"."T"'
    snowflake.query(f"create table {table} (id int)")
    connection = snowflake.open_connection(autocommit=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"insert into {table} values (1)")
        connection.rollback()
        with connection.cursor() as cursor:
            cursor.execute(f"insert into {table} values (2)")
        connection.commit()
    finally:
        connection.close()
    assert snowflake.query(f"select id from {table}") == [(2,)]


def test_an_error_reads_as_snowflake_words_it(snowflake: Snowflake) -> None:
    """Patch G: the server sends the bare message; the connector adds ``errno (sqlstate):`` once."""
    with pytest.raises(ProgrammingError) as raised:
        snowflake.query(f'select * from "{_schema(snowflake)}"."NO_SUCH_TABLE"')
    error = raised.value
    prefix = f"{error.errno:06d} ({error.sqlstate}): "
    assert str(error).startswith(prefix) and str(error).count(prefix) == 1, str(error)
    assert not re.match(r"\d{6} ", error.raw_msg), error.raw_msg
