"""The currencies pipeline end to end: look-alike API -> dlt -> DuckDB, queried back."""

from __future__ import annotations

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import currencies
from tests.fakes.frankfurter import FakeFrankfurter, catalogue_codes
from tests.fixtures.warehouse import Warehouse
from utils.metrics import METRICS_SCHEMA

ACTIVE = len(catalogue_codes(include_legacy=False))
LISTED = len(catalogue_codes(include_legacy=True))


def load_ids(warehouse: Warehouse) -> list[str]:
    """Data loads (a metrics load, utils/metrics.py, follows each)."""
    sql = "select load_id from currencies._dlt_loads where schema_name <> ? order by load_id"
    return [r[0] for r in warehouse.query(sql, METRICS_SCHEMA)]


def test_loads_into_the_local_warehouse(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    report = currencies.run()
    assert report.status == "succeeded" and report.destination == "duckdb"
    assert report.rows_by_table == {"currencies": ACTIVE}
    assert report.new_tables == ["currencies"]
    assert warehouse.query(
        "select iso_code, iso_numeric, name, is_active, provider from currencies.currencies"
        " where iso_code = 'JPY'"
    ) == [("JPY", "392", "Japanese Yen", True, "frankfurter")]
    types = dict(
        warehouse.query(
            "select column_name, data_type from information_schema.columns where table_name = 'currencies'"
        )
    )
    assert types["start_date"] == "DATE" and types["is_active"] == "BOOLEAN"
    assert types["loaded_at"].startswith("TIMESTAMP")


def test_rerun_replaces_and_never_duplicates(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    currencies.run(include_legacy=True)
    currencies.run()
    assert warehouse.scalar("select count(*) from currencies.currencies") == ACTIVE
    assert warehouse.scalar("select count(distinct iso_code) from currencies.currencies") == ACTIVE
    assert warehouse.scalar("select count(distinct _dlt_load_id) from currencies.currencies") == 1
    assert len(load_ids(warehouse)) == 2


def test_malformed_response_loads_nothing_and_keeps_the_last_good_table(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    currencies.run()
    before = warehouse.query("select * from currencies.currencies order by iso_code")
    frankfurter.fail(200, body="<html>maintenance</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(PipelineStepFailed) as exc:
        currencies.run()
    assert exc.value.step == "extract"
    report = exc.value.run_report  # type: ignore[attr-defined]
    assert report.failed_step == "extract" and "not valid JSON" in report.error
    assert warehouse.query("select * from currencies.currencies order by iso_code") == before
    assert len(load_ids(warehouse)) == 1
    assert currencies.create_pipeline().has_pending_data is False


def test_cli_prints_a_summary(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    assert currencies.main(["--include-legacy"]) == 0
    out = capsys.readouterr().out
    assert "## currencies: succeeded" in out and f"| currencies | {LISTED} |" in out


def test_cli_fails_with_the_step_and_error(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    frankfurter.fail(503, times=100)
    assert currencies.main([]) == 1
    captured = capsys.readouterr()
    assert "failed at extract" in captured.out and "HTTP 503" in captured.err


def test_pegged_and_non_iso_entries_land_with_a_null_numeric_code(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    currencies.run(include_legacy=True)
    assert warehouse.query(
        "select iso_code, iso_numeric, name, symbol from currencies.currencies"
        " where iso_code in ('AZM', 'BMD', 'GGP') order by 1"
    ) == [
        ("AZM", None, "AZM", None),
        ("BMD", "060", "Bermudian Dollar", "$"),
        ("GGP", None, "Guernsey Pound", "£"),
    ]
