"""The PostgreSQL fixture is a real server with an empty database per test."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fixtures.postgres import ProductsSource
from tests.fixtures.warehouse import Warehouse


def test_each_test_gets_its_own_empty_database(postgres: str) -> None:
    engine = sa.create_engine(postgres)
    with engine.begin() as con:
        assert con.execute(sa.text("select version()")).scalar_one().startswith("PostgreSQL 16")
        tables = con.execute(
            sa.text("select count(*) from information_schema.tables where table_schema='public'")
        )
        assert tables.scalar_one() == 0
    engine.dispose()


def test_products_source_counts_reads_and_goes_offline(
    products_source: ProductsSource, warehouse: Warehouse
) -> None:
    from pipelines import products

    assert products_source.requests == []
    products.run()
    assert len(products_source.requests) >= 1, "a pipeline run is seen as a read of the table"
    products_source.reset()
    assert products_source.requests == []
    products_source.go_offline()
    with pytest.raises(PipelineStepFailed) as exc:
        products.run()
    error = exc.value.run_report.error  # type: ignore[attr-defined]
    assert "TableSettingError" in error and "public.products does not exist" in error
    products_source.reset()
    assert products.run().status == "succeeded"
