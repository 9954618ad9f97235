"""The exchange_rates pipeline on DuckDB: overlapping backfills and daily runs never duplicate a row."""

from __future__ import annotations

import datetime as dt

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import exchange_rates
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.warehouse import Warehouse

ROWS = "select count(*) from exchange_rates.rates"
KEYS = "select count(distinct (rate_date, base_currency, quote_currency)) from exchange_rates.rates"


@pytest.fixture(autouse=True)
def usd_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two quotes keep the row counts small and easy to reason about; the logic is per date."""
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", '["USD", "GBP"]')


def ranges(fake: FakeFrankfurter) -> list[tuple[str | None, str | None]]:
    return [(r.param("from"), r.param("to")) for r in fake.requests_to("/rates")]


def dates(warehouse: Warehouse) -> list[dt.date]:
    return [r[0] for r in warehouse.query("select distinct rate_date from exchange_rates.rates order by 1")]


def assert_no_duplicates(warehouse: Warehouse) -> int:
    total = warehouse.scalar(ROWS)
    assert total == warehouse.scalar(KEYS), "a (date, base, quote) was written twice"
    return int(total)


def test_overlapping_backfills_and_daily_runs_write_each_rate_once(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    report = exchange_rates.run(backfill=True, start_date="2024-03-01", end_date="2024-06-30")
    assert report.destination == "duckdb" and report.new_tables == ["rates"]
    first = assert_no_duplicates(warehouse)
    assert report.rows_by_table == {"rates": first} and first > 0

    frankfurter.reset()
    report = exchange_rates.run(backfill=True, start_date="2024-01-01", end_date="2025-02-28")
    assert ranges(frankfurter) == [
        ("2024-01-01", "2024-02-29"),
        ("2024-07-01", "2024-12-31"),
        ("2025-01-01", "2025-02-28"),
    ], "only the gaps are requested"
    second = assert_no_duplicates(warehouse)
    assert report.rows_by_table["rates"] == second - first

    frankfurter.reset()
    report = exchange_rates.run(backfill=True, start_date="2024-02-01", end_date="2024-12-31")
    assert ranges(frankfurter) == [] and report.rows_by_table.get("rates", 0) == 0
    assert assert_no_duplicates(warehouse) == second

    frankfurter.reset()
    exchange_rates.run()  # daily: everything after the last loaded date, to today
    assert ranges(frankfurter)[0] == ("2025-03-01", "2025-12-31")
    after_daily = assert_no_duplicates(warehouse)
    assert dates(warehouse)[-1] == frankfurter.latest

    frankfurter.reset()
    report = exchange_rates.run()
    assert report.rows_by_table.get("rates", 0) == 0 and assert_no_duplicates(warehouse) == after_daily
    assert all(start and start > frankfurter.latest.isoformat() for start, _ in ranges(frankfurter))


def test_a_day_not_yet_published_is_picked_up_by_the_next_run(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    frankfurter.today = dt.date(2026, 11, 18)  # Wednesday: the ECB has not published Thursday yet
    exchange_rates.run(backfill=True, start_date="2026-11-02", end_date="2026-11-19")
    assert dates(warehouse)[-1] == dt.date(2026, 11, 18)
    frankfurter.today = dt.date(2026, 11, 20)
    frankfurter.reset()
    exchange_rates.run()
    assert ranges(frankfurter)[0][0] == "2026-11-19", "the unpublished day was not marked as loaded"
    assert dates(warehouse)[-2:] == [dt.date(2026, 11, 19), dt.date(2026, 11, 20)]
    assert_no_duplicates(warehouse)


def test_daily_runs_over_a_weekend_and_a_holiday(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real server answers a range that opens on a day without rates with the previous working day's
    # rows, dated that day: before `from`, already loaded, so dropped - never an error, never twice
    for today in (
        "2025-12-19",
        "2025-12-20",
        "2025-12-21",
        "2025-12-24",
        "2025-12-25",
        "2025-12-27",
        "2025-12-29",
        "2026-01-01",
        "2026-01-02",
    ):
        frankfurter.today = dt.date.fromisoformat(today)
        monkeypatch.setenv("SOURCES__EXCHANGE_RATES__AS_OF", today)
        exchange_rates.run()
        assert_no_duplicates(warehouse)
    assert dates(warehouse) == [dt.date(2025, 12, d) for d in (19, 22, 23, 24, 29, 30, 31)] + [
        dt.date(2026, 1, 2)
    ]


def test_bgn_after_its_last_publication_loads_once(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", '["BGN", "USD"]')
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__AS_OF", "2026-01-09")
    frankfurter.today = dt.date(2026, 1, 9)
    exchange_rates.run(backfill=True, start_date="2025-12-01", end_date="2026-01-06")
    for today in ("2026-01-07", "2026-01-08", "2026-01-09"):  # BGN dated 2025-12-31 comes with every answer
        frankfurter.today = dt.date.fromisoformat(today)
        monkeypatch.setenv("SOURCES__EXCHANGE_RATES__AS_OF", today)
        exchange_rates.run()
    exchange_rates.run(backfill=True, start_date="2025-12-20", end_date="2026-01-09")
    assert_no_duplicates(warehouse)
    bgn = warehouse.query(
        "select max(rate_date), count(*) from exchange_rates.rates where quote_currency = 'BGN'"
    )
    assert bgn == [(dt.date(2025, 12, 31), 21)], "BGN's 21 working days of December, each once"


def test_first_daily_run_loads_the_latest_day_then_carries_on(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    frankfurter.today = dt.date(2026, 11, 17)
    exchange_rates.run()
    assert dates(warehouse) == [dt.date(2026, 11, 17)]
    frankfurter.today = dt.date(2026, 11, 20)
    exchange_rates.run()
    assert dates(warehouse) == [dt.date(2026, 11, d) for d in (17, 18, 19, 20)]
    assert_no_duplicates(warehouse)


def test_a_fresh_worker_restores_state_from_the_warehouse(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    exchange_rates.run(backfill=True, start_date="2026-01-01", end_date="2026-11-13")
    before = assert_no_duplicates(warehouse)
    warehouse.wipe_pipelines()  # an ephemeral worker: no local pipeline folder
    frankfurter.reset()
    exchange_rates.run()
    assert ranges(frankfurter)[0][0] == "2026-11-14"
    assert assert_no_duplicates(warehouse) == before + 2 * 5  # Mon-Fri of the last week, two quotes


def test_a_failed_extract_loads_nothing_and_keeps_the_state(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    exchange_rates.run(backfill=True, start_date="2024-06-01", end_date="2024-06-30")
    before = assert_no_duplicates(warehouse)
    frankfurter.reset()
    frankfurter.break_stream_after = 600  # 2022 streams whole (~520 records), 2023 breaks off mid-body
    with pytest.raises(PipelineStepFailed) as exc:
        exchange_rates.run(backfill=True, start_date="2022-01-01", end_date="2024-12-31")
    assert exc.value.step == "extract" and "connection broke while streaming" in str(exc.value)
    assert len(ranges(frankfurter)) == 2
    assert warehouse.scalar(ROWS) == before
    assert exchange_rates.create_pipeline().has_pending_data is False

    frankfurter.reset()
    exchange_rates.run(backfill=True, start_date="2022-01-01", end_date="2024-12-31")
    assert len(ranges(frankfurter)) == 4, "2022, 2023, 2024 before June, 2024 after June"
    assert dates(warehouse)[0] == dt.date(2022, 1, 3)
    assert_no_duplicates(warehouse)


def test_cli_backfill_and_latest(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exchange_rates.main(["--backfill", "--start-date", "2026-11-02", "--end-date", "2026-11-06"]) == 0
    assert "| rates | 10 |" in capsys.readouterr().out
    assert exchange_rates.main([]) == 0
    assert "## exchange_rates: succeeded" in capsys.readouterr().out
    assert_no_duplicates(warehouse)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backfill"], "--backfill needs --start-date"),
        (["--start-date", "2024-01-01"], "only apply with --backfill"),
        (["--backfill", "--start-date", "2024-13-01"], "is not a YYYY-MM-DD date"),
        (["--backfill", "--start-date", "2024-02-01", "--end-date", "2024-01-01"], "on or before"),
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        exchange_rates.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_cli_fails_with_the_step_and_error(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exchange_rates.main(["--backfill", "--start-date", "2024-01-01", "--end-date", "2024-01-31"]) == 0
    frankfurter.fail(422, body='{"message": "Invalid currency: XXX"}', path="/rates")
    assert exchange_rates.main(["--backfill", "--start-date", "2023-01-01"]) == 1
    captured = capsys.readouterr()
    assert "failed at extract" in captured.out and "HTTP 422" in captured.err
