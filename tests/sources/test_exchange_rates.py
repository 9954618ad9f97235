"""The exchange_rates source against the Frankfurter and Open Exchange Rates look-alikes."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import dlt
import pyarrow as pa
import pytest
from dlt.extract.exceptions import ResourceExtractionError

from sources.exchange_rates import COLUMNS, exchange_rates_source
from tests.fakes.frankfurter import CURRENCIES, FakeFrankfurter, is_working_day
from tests.fakes.openexchangerates import FakeOpenExchangeRates
from tests.fixtures.openexchangerates import OXR_APP_ID
from tests.fixtures.warehouse import Warehouse
from tests.sources.helpers import api_error

CONTRACT = ["rate_date", "base_currency", "quote_currency", "rate", "provider", "loaded_at"]


@pytest.fixture(autouse=True)
def active_pipeline(warehouse: Warehouse) -> Iterator[None]:
    """The source keeps its coverage in pipeline state, so it is read inside an active pipeline."""
    dlt.pipeline(pipeline_name="exchange_rates_source_tests", destination="duckdb")
    yield


def rows(**kwargs: Any) -> list[dict[str, Any]]:
    tables = list(exchange_rates_source(**kwargs))
    assert all(isinstance(t, pa.Table) for t in tables)
    return [row for table in tables for row in table.to_pylist()]


def working_days(start: dt.date, end: dt.date) -> int:
    return sum(is_working_day(start + dt.timedelta(days=n)) for n in range((end - start).days + 1))


def test_a_28_year_backfill_takes_one_streamed_request_per_calendar_year(
    frankfurter: FakeFrankfurter,
) -> None:
    start, end = dt.date(1999, 1, 4), dt.date(2026, 11, 20)
    result = rows(mode="backfill", start_date=start, end_date=end, quotes=["USD"])
    requests = frankfurter.requests_to("/rates")
    assert len(requests) == 28
    assert [(r.param("from"), r.param("to")) for r in requests[:2]] == [
        ("1999-01-04", "1999-12-31"),
        ("2000-01-01", "2000-12-31"),
    ]
    assert (requests[-1].param("from"), requests[-1].param("to")) == ("2026-01-01", "2026-11-20")
    assert all(r.headers["accept"] == "application/x-ndjson" for r in requests)
    assert {r.param("base") for r in requests} == {"EUR"} and {r.param("providers") for r in requests} == {
        "ECB"
    }
    assert len(result) == working_days(start, end), "one row per working day, weekends and holidays absent"
    assert len({r["rate_date"] for r in result}) == len(result)


def test_rows_have_exactly_the_contract_columns_and_types(frankfurter: FakeFrankfurter) -> None:
    day = dt.date(2024, 1, 15)
    result = rows(mode="backfill", start_date=day, end_date=day)
    quotes = sorted(c.iso_code for c in CURRENCIES if frankfurter.published(c.iso_code, day))
    assert "BGN" in quotes and "EUR" not in quotes, "no identity row (EUR/EUR 1.0) is loaded"
    assert sorted(r["quote_currency"] for r in result) == quotes
    usd = next(r for r in result if r["quote_currency"] == "USD")
    assert list(usd) == CONTRACT == list(COLUMNS)
    assert usd["rate_date"] == dt.date(2024, 1, 15) and usd["base_currency"] == "EUR"
    assert usd["rate"] == pytest.approx(frankfurter.per_euro("USD", dt.date(2024, 1, 15)), rel=1e-6)
    assert usd["provider"] == "ECB" and usd["loaded_at"].tzinfo is not None
    assert len({r["loaded_at"] for r in result}) == 1, "one loaded-at for the whole run"


def test_base_and_quotes_are_passed_through(frankfurter: FakeFrankfurter) -> None:
    result = rows(
        mode="backfill", start_date="2024-01-15", end_date="2024-01-16", base_currency="usd", quotes="gbp,JPY"
    )
    assert {(r["base_currency"], r["quote_currency"]) for r in result} == {("USD", "GBP"), ("USD", "JPY")}
    assert len(result) == 4
    [request] = frankfurter.requests_to("/rates")
    assert request.param("base") == "USD" and request.param("quotes") == "GBP,JPY"


def test_latest_without_history_asks_for_the_latest_day(frankfurter: FakeFrankfurter) -> None:
    result = rows(quotes=["USD"])
    [request] = frankfurter.requests_to("/rates")
    assert request.param("from") is None and request.param("date") is None
    assert [r["rate_date"] for r in result] == [frankfurter.latest]


def test_weekends_and_holidays_are_not_errors(frankfurter: FakeFrankfurter) -> None:
    # Sat-Sun: the real server carries Friday's rows forward, dated Friday: outside the range, dropped
    assert rows(mode="backfill", start_date="2026-11-14", end_date="2026-11-15") == []
    assert frankfurter.requests[-1].param("from") == "2026-11-14"
    christmas = rows(mode="backfill", start_date="2025-12-24", end_date="2025-12-28", quotes="USD")
    assert [r["rate_date"] for r in christmas] == [dt.date(2025, 12, 24)]


def test_422_is_a_clear_error(frankfurter: FakeFrankfurter) -> None:
    frankfurter.fail(422, body='{"status": 422, "message": "invalid date"}', path="/rates")
    with pytest.raises(ResourceExtractionError) as exc:
        rows(mode="backfill", start_date="2024-01-01", end_date="2024-01-31")
    message = str(api_error(exc))
    assert "HTTP 422" in message and "invalid date" in message
    assert len(frankfurter.requests_to("/rates")) == 1, "a 422 is not retried"


def test_429_honours_retry_after_and_5xx_is_retried(frankfurter: FakeFrankfurter) -> None:
    frankfurter.fail(429, times=1, path="/rates", headers={"Retry-After": "1"})
    frankfurter.fail(503, times=1, path="/rates")
    started = time.monotonic()
    result = rows(mode="backfill", start_date="2024-01-15", end_date="2024-01-19", quotes="USD")
    assert len(result) == 5
    assert time.monotonic() - started >= 0.9, "waited for Retry-After"
    assert len(frankfurter.requests_to("/rates")) == 3


def test_persistent_5xx_fails_after_bounded_retries(frankfurter: FakeFrankfurter) -> None:
    frankfurter.fail(502, times=100, body='{"message": "upstream unavailable"}')
    with pytest.raises(ResourceExtractionError) as exc:
        rows(mode="backfill", start_date="2024-01-15", end_date="2024-01-19")
    message = str(api_error(exc))
    assert "HTTP 502" in message and "upstream unavailable" in message
    assert len(frankfurter.requests) == 3, "RUNTIME__REQUEST_MAX_ATTEMPTS bounds the retries"
    assert "/providers" in message, "the first request of a run is the provider list"


def test_a_stream_cut_mid_body_is_a_clear_error(frankfurter: FakeFrankfurter) -> None:
    frankfurter.break_stream_after = 1000
    with pytest.raises(ResourceExtractionError) as exc:
        rows(mode="backfill", start_date="2020-01-01", end_date="2021-12-31")
    assert "connection broke while streaming" in str(api_error(exc))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json\n", "line 1 of the NDJSON stream is not JSON"),
        ('{"date": "2024-01-15", "base": "EUR", "quote": "USD", "rate": -1}\n', "not a positive number"),
        ('{"date": "2024-01-15", "base": "USD", "quote": "GBP", "rate": 1.1}\n', "has base 'USD'"),
        ('{"date": "2024-01-15", "base": "EUR", "quote": "usd", "rate": 1.1}\n', "not a three-letter ISO"),
        ('{"date": "15/01/2024", "base": "EUR", "quote": "USD", "rate": 1.1}\n', "not a YYYY-MM-DD date"),
        (
            '{"date": "2024-01-15", "base": "EUR", "quote": "USD", "rate": 1.1}\n' * 2,
            "listed 2024-01-15 EUR/USD twice",
        ),
    ],
)
def test_malformed_records_are_rejected(frankfurter: FakeFrankfurter, body: str, expected: str) -> None:
    frankfurter.fail(200, body=body, headers={"Content-Type": "application/x-ndjson"}, path="/rates")
    with pytest.raises(ResourceExtractionError) as exc:
        rows(mode="backfill", start_date="2024-01-15", end_date="2024-01-15")
    assert expected in str(api_error(exc))


def test_a_plain_json_array_is_accepted_too(frankfurter: FakeFrankfurter) -> None:
    body = '[{"date": "2024-01-15", "base": "EUR", "quote": "USD", "rate": 1.0923}]'
    frankfurter.fail(200, body=body, headers={"Content-Type": "application/json"}, path="/rates")
    assert [
        (r["quote_currency"], r["rate"])
        for r in rows(mode="backfill", start_date="2024-01-15", end_date="2024-01-15")
    ] == [("USD", 1.0923)]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"mode": "backfill"}, "a backfill needs a start date"),
        ({"mode": "sideways"}, "mode='sideways' is not supported"),
        ({"mode": "backfill", "start_date": "2024-02-01", "end_date": "2024-01-01"}, "is after end_date"),
        ({"mode": "backfill", "start_date": "01/02/2024"}, "is not a YYYY-MM-DD date"),
        ({"quotes": ["US"]}, "'US' is not a three-letter ISO 4217 code"),
        ({"provider": "openexchangerates"}, "sources.exchange_rates.app_id is missing"),
    ],
)
def test_bad_settings_are_clear_errors(
    frankfurter: FakeFrankfurter, kwargs: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ResourceExtractionError) as exc:
        rows(**kwargs)
    assert expected in str(exc.value.__cause__)
    assert frankfurter.requests == []


# Open Exchange Rates -------------------------------------------------------------------------------
def oxr_rows(oxr: FakeOpenExchangeRates, **kwargs: Any) -> list[dict[str, Any]]:
    return rows(
        provider="openexchangerates", base_url=oxr.base_url, app_id=OXR_APP_ID, base_currency="USD", **kwargs
    )


def test_oxr_backfill_one_historical_request_per_day(oxr: FakeOpenExchangeRates) -> None:
    result = oxr_rows(oxr, mode="backfill", start_date="2024-01-12", end_date="2024-01-15", quotes="EUR,GBP")
    assert [r.path for r in oxr.requests] == [f"/api/historical/2024-01-{d}.json" for d in (12, 13, 14, 15)]
    assert oxr.requests[0].param("symbols") == "EUR,GBP"
    assert len(result) == 8, "OXR publishes every calendar day"
    assert {r["provider"] for r in result} == {"OXR"} and {r["base_currency"] for r in result} == {"USD"}


def test_oxr_time_series_covers_31_days_per_request(oxr: FakeOpenExchangeRates) -> None:
    oxr.allow_time_series = True
    result = oxr_rows(
        oxr,
        mode="backfill",
        start_date="2024-01-01",
        end_date="2024-03-31",
        quotes="EUR",
        oxr_time_series=True,
    )
    assert [(r.param("start"), r.param("end")) for r in oxr.requests] == [
        ("2024-01-01", "2024-01-31"),
        ("2024-02-01", "2024-03-02"),
        ("2024-03-03", "2024-03-31"),
    ]
    assert len({r["rate_date"] for r in result}) == len(result) == 91, "every calendar day, 1 January too"


def test_oxr_latest_loads_the_last_closed_day(oxr: FakeOpenExchangeRates) -> None:
    result = oxr_rows(oxr, quotes="EUR", as_of="2026-11-20")
    assert [r.path for r in oxr.requests] == ["/api/historical/2026-11-19.json"]
    assert [r["rate_date"] for r in result] == [dt.date(2026, 11, 19)]


def test_oxr_errors_never_show_the_app_id(
    oxr: FakeOpenExchangeRates, caplog: pytest.LogCaptureFixture
) -> None:
    oxr.fail(
        403,
        body='{"error": true, "status": 403, "message": "access_restricted", "description": "Plan limits"}',
        path="/historical",
    )
    with pytest.raises(ResourceExtractionError) as exc:
        oxr_rows(oxr, mode="backfill", start_date="2024-01-12", end_date="2024-01-12")
    message = str(api_error(exc))
    assert "HTTP 403" in message and "access_restricted" in message and "app_id" not in message
    header = f"Token {OXR_APP_ID}"
    assert all(r.headers["authorization"] == header and not r.param("app_id") for r in oxr.requests)
    assert OXR_APP_ID not in message and OXR_APP_ID not in caplog.text


# what the real Frankfurter sends on an ordinary day (see tests/fakes/frankfurter.md) ---------------
def published_pairs(fake: FakeFrankfurter, start: dt.date, end: dt.date, quotes: list[str]) -> set[Any]:
    days = (start + dt.timedelta(days=n) for n in range((end - start).days + 1))
    return {(day, quote) for day in days for quote in quotes if fake.published(quote, day)}


def test_a_backfill_starting_on_1_january_drops_the_carried_forward_rows(
    frankfurter: FakeFrankfurter,
) -> None:
    result = rows(mode="backfill", start_date="2024-01-01", end_date="2024-01-10", quotes="USD")
    [request] = frankfurter.requests_to("/rates")
    assert request.param("from") == "2024-01-01", "the server answered with 29 December's rows too"
    dates = [r["rate_date"] for r in result]
    assert dates == sorted(set(dates)) and min(dates) == dt.date(2024, 1, 2)


def test_the_28_year_backfill_loads_every_date_and_quote_exactly_once(frankfurter: FakeFrankfurter) -> None:
    # every yearly chunk but the first starts on 1 January (a TARGET holiday): carry-forward each time;
    # BGN starts in 2000 and stops after 2025-12-31, so it is carried into 2026 as well
    start, end, quotes = dt.date(1999, 1, 4), dt.date(2026, 11, 20), ["BGN", "USD"]
    result = rows(mode="backfill", start_date=start, end_date=end, quotes=quotes)
    pairs = [(r["rate_date"], r["quote_currency"]) for r in result]
    assert len(pairs) == len(set(pairs)), "no (date, quote) twice"
    assert set(pairs) == published_pairs(frankfurter, start, end, quotes)
    assert len(frankfurter.requests_to("/rates")) == 28


def test_ranges_near_a_currencys_last_publication_complete(frankfurter: FakeFrankfurter) -> None:
    # 2026-01-05 is a publishing day, yet the server still sends BGN dated 2025-12-31 (14-day lookback)
    result = rows(mode="backfill", start_date="2026-01-05", end_date="2026-01-09", quotes="BGN,USD")
    assert {r["quote_currency"] for r in result} == {"USD"}
    assert {r["rate_date"] for r in result} == {dt.date(2026, 1, d) for d in range(5, 10)}


def test_no_identity_rows_for_any_base(frankfurter: FakeFrankfurter) -> None:
    for base in ("EUR", "USD"):
        result = rows(mode="backfill", start_date="2024-03-01", end_date="2024-03-05", base_currency=base)
        assert result and all(r["quote_currency"] != base for r in result)
        assert "EUR" in {
            r["quote_currency"]
            for r in rows(
                mode="backfill", start_date="2024-03-04", end_date="2024-03-04", base_currency="USD"
            )
        }


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"providers": "ECB,BOGUS"}, "BOGUS is not a Frankfurter data provider"),
        ({"quotes": "ISK"}, "ECB does not publish ISK"),
    ],
)
def test_provider_keys_and_quotes_are_checked_against_the_provider_list(
    frankfurter: FakeFrankfurter, kwargs: dict[str, Any], expected: str
) -> None:
    # the real server answers 200 with no rows for both: without the check the dates would be marked loaded
    with pytest.raises(ResourceExtractionError) as exc:
        rows(mode="backfill", start_date="2024-01-15", end_date="2024-01-19", **kwargs)
    assert expected in str(exc.value.__cause__) and "/providers" in str(exc.value.__cause__)
    assert frankfurter.requests_to("/rates") == []


def test_404_means_a_wrong_base_url(frankfurter: FakeFrankfurter) -> None:
    frankfurter.fail(404, body='{"status": 404, "message": "not found"}', path="/rates")
    with pytest.raises(ResourceExtractionError) as exc:
        rows(mode="backfill", start_date="2024-01-15", end_date="2024-01-15")
    assert "check sources.exchange_rates.base_url" in str(api_error(exc))


def test_an_empty_answer_is_not_an_error(frankfurter: FakeFrankfurter) -> None:
    assert rows(mode="backfill", start_date="1998-01-01", end_date="1998-12-31") == []  # before the ECB
    assert frankfurter.requests_to("/rates")[-1].param("to") == "1998-12-31"


def test_oxr_drops_its_identity_row(oxr: FakeOpenExchangeRates) -> None:
    result = oxr_rows(oxr, mode="backfill", start_date="2024-01-13", end_date="2024-01-13")
    assert result and "USD" not in {r["quote_currency"] for r in result}
    assert oxr.requests[0].param("symbols") is None, "no quotes: every currency, the base listed at 1.0"


def test_oxr_not_allowed_is_a_plan_error_not_a_rate_limit(oxr: FakeOpenExchangeRates) -> None:
    with pytest.raises(ResourceExtractionError) as exc:
        rows(
            provider="openexchangerates",
            base_url=oxr.base_url,
            app_id=OXR_APP_ID,
            base_currency="EUR",
            mode="backfill",
            start_date="2024-01-12",
            end_date="2024-01-12",
        )
    message = str(api_error(exc))
    assert "429 not_allowed" in message and "paid plan" in message and "rate limited" not in message
    assert len(oxr.requests) == 3, "retried as a 429 first (bounded by RUNTIME__REQUEST_MAX_ATTEMPTS)"
