"""The currencies pipeline into Snowflake: the fakesnow emulator, or a real account (SNOWFLAKE_TESTS=real)."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import currencies
from sources.currencies import currencies_source
from tests.fakes.frankfurter import FakeFrankfurter, catalogue_codes
from tests.fixtures.snowflake import Snowflake
from utils.runner import run_pipeline

pytestmark = pytest.mark.snowflake

ACTIVE = len(catalogue_codes(include_legacy=False))


def test_first_load_lands_typed_upper_case_tables(frankfurter: FakeFrankfurter, snowflake: Snowflake) -> None:
    report = currencies.run()
    assert report.status == "succeeded" and report.destination == "snowflake"
    assert report.rows_by_table == {"currencies": ACTIVE}
    assert snowflake.assert_unique("currencies", "currencies", "iso_code") == ACTIVE  # counted in Snowflake
    tables = snowflake.tables("currencies")
    assert {"CURRENCIES", "_DLT_LOADS", "_DLT_PIPELINE_STATE", "_DLT_VERSION"} <= tables
    table = snowflake.table("currencies", "currencies")
    assert snowflake.query(
        f"select iso_code, iso_numeric, name, is_active, provider from {table} where iso_code = 'JPY'"
    ) == [("JPY", "392", "Japanese Yen", True, "frankfurter")]
    types = snowflake.columns("currencies", "currencies")
    assert types["ISO_CODE"] == "TEXT" and types["ISO_NUMERIC"] == "TEXT"  # keeps leading zeros
    assert types["START_DATE"] == "DATE" and types["IS_ACTIVE"] == "BOOLEAN"
    assert types["LOADED_AT"].startswith("TIMESTAMP")
    assert snowflake.load_ids("currencies") == report.load_ids


def test_second_load_replaces_without_duplicates(frankfurter: FakeFrankfurter, snowflake: Snowflake) -> None:
    currencies.run(include_legacy=True)
    assert snowflake.count("currencies", "currencies") == len(catalogue_codes(include_legacy=True))
    second = currencies.run()
    assert snowflake.assert_unique("currencies", "currencies", "iso_code") == ACTIVE
    legacy = snowflake.scalar(
        f"select count(*) from {snowflake.table('currencies', 'currencies')} where not is_active"
    )
    assert legacy == 0  # rows the second load no longer has are gone
    only = snowflake.query(f"select distinct _dlt_load_id from {snowflake.table('currencies', 'currencies')}")
    assert only == [(second.load_ids[0],)]
    assert len(snowflake.load_ids("currencies")) == 2


def test_new_source_column_is_added_to_the_table(frankfurter: FakeFrankfurter, snowflake: Snowflake) -> None:
    currencies.run()

    def with_minor_unit(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "minor_unit": 0 if row["iso_code"] == "JPY" else 2}

    def next_api_version() -> Any:  # the provider starts sending a field the table does not have yet
        source = currencies_source()
        source.currencies.add_map(with_minor_unit)
        return source

    report = run_pipeline(currencies.create_pipeline(), next_api_version)
    assert report.new_columns == {"currencies": ["minor_unit"]}
    assert snowflake.columns("currencies", "currencies")["MINOR_UNIT"] == "NUMBER"
    table = snowflake.table("currencies", "currencies")
    assert snowflake.query(f"select minor_unit from {table} where iso_code = 'JPY'") == [(0,)]
    assert snowflake.assert_unique("currencies", "currencies", "iso_code") == ACTIVE


def test_state_is_restored_after_the_local_folder_is_wiped(
    frankfurter: FakeFrankfurter, snowflake: Snowflake
) -> None:
    currencies.run(include_legacy=True)
    restored = snowflake.restore_from_destination(currencies.create_pipeline)
    assert restored.default_schema.tables["currencies"]["write_disposition"] == "replace"
    report = currencies.run()  # a fresh worker: no local folder, the schema comes from Snowflake
    assert report.new_tables == [] and report.status == "succeeded"
    assert snowflake.assert_unique("currencies", "currencies", "iso_code") == ACTIVE
    assert len(snowflake.load_ids("currencies")) == 2
