"""The PostgreSQL fixture is a real server with an empty database per test."""

from __future__ import annotations

import sqlalchemy as sa


def test_each_test_gets_its_own_empty_database(postgres: str) -> None:
    engine = sa.create_engine(postgres)
    with engine.begin() as con:
        assert con.execute(sa.text("select version()")).scalar_one().startswith("PostgreSQL 16")
        tables = con.execute(
            sa.text("select count(*) from information_schema.tables where table_schema='public'")
        )
        assert tables.scalar_one() == 0
    engine.dispose()
