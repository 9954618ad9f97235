"""A clean products run logs no warnings, and a real disagreement between Arrow and hints still does."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pyarrow as pa
import pytest

from pipelines import products
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse
from utils.arrow_hints import DLT_MESSAGE, JSON_TEXT_FILTER, hint_disagreements


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at WARNING or above, dlt's included (dlt's logger does not propagate to the root)."""
    dlt_logger = logging.getLogger("dlt")
    dlt_logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING)
    try:
        yield caplog
    finally:
        dlt_logger.removeHandler(caplog.handler)


def _warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_clean_run_logs_no_warnings(
    products_db: ProductsDb, warehouse: Warehouse, warnings: pytest.LogCaptureFixture
) -> None:
    """First run (a merge into an empty table), incremental, full refresh, then merging again."""
    assert products.run().rows_by_table == {"products": 20}
    products_db.add_products(21, 25)
    products_db.execute("update public.products set deleted_at = now(), updated_at = now() where id = 3")
    assert products.run().rows_by_table == {"products": 6}
    assert warehouse.scalar("select count(*) from products.products") == 24  # id 3 removed
    assert products.run(full_refresh=True).rows_by_table == {"products": 24}
    products_db.execute("update public.products set deleted_at = now(), updated_at = now() where id = 4")
    products.run()
    assert warehouse.scalar("select count(*) from products.products") == 23  # hard_delete applies again
    assert _warned(warnings) == []


def test_the_cli_prints_no_warnings(
    products_db: ProductsDb, warehouse: Warehouse, capfd: pytest.CaptureFixture[str]
) -> None:
    """As users see it: the CLI's stderr (dlt's own handler writes there) holds no warning."""
    for argv in ([], [], ["--full-refresh"]):
        assert products.main(argv) == 0
        err = capfd.readouterr().err
        assert "WARNING" not in err, err


def test_a_real_disagreement_is_named_and_json_text_is_not_one() -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("price", pa.decimal128(10, 2)),
            pa.field("name", pa.string()),
            pa.field("attributes", pa.string()),
        ]
    )
    hints = {
        "id": {"data_type": "bigint", "nullable": False},
        "price": {"data_type": "decimal", "precision": 12, "scale": 2},
        "name": {"data_type": "text", "nullable": False},
        "attributes": {"data_type": "json"},
    }
    assert hint_disagreements(schema, hints) == ["price.precision: 12 vs 10", "name.nullable: False vs True"]


def test_dlt_arrow_warnings_stay_visible_outside_a_checked_read() -> None:
    record = logging.LogRecord(
        "dlt", logging.WARNING, __file__, 1, f"In resource: products, {DLT_MESSAGE}.", None, None
    )
    other = logging.LogRecord(
        "dlt", logging.WARNING, __file__, 1, f"In resource: prices, {DLT_MESSAGE}.", None, None
    )
    assert JSON_TEXT_FILTER.filter(record)  # no read of products under way
    with JSON_TEXT_FILTER.expecting("products"):
        assert not JSON_TEXT_FILTER.filter(record)
        assert JSON_TEXT_FILTER.filter(other)
    assert JSON_TEXT_FILTER.filter(record)


def test_the_warning_of_a_batch_written_just_after_its_read_ended_is_dropped_once() -> None:
    """dlt can write a read's last batch after the extraction worker has finished the read (with
    many tables, extracted a few at a time, it did for some): that one late warning is dropped."""
    record = logging.LogRecord(
        "dlt", logging.WARNING, __file__, 1, f"In resource: late, {DLT_MESSAGE}.", None, None
    )
    with JSON_TEXT_FILTER.expecting("late"):
        pass  # the read ends before dlt wrote its batch
    assert not JSON_TEXT_FILTER.filter(record)  # the late warning
    assert JSON_TEXT_FILTER.filter(record)  # a later one is another matter
