"""The currencies source against the Frankfurter and Open Exchange Rates look-alikes."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from dlt.extract.exceptions import ResourceExtractionError

from sources.currencies import currencies_source
from tests.fakes.frankfurter import CURRENCIES, FakeFrankfurter
from tests.fakes.openexchangerates import FakeOpenExchangeRates
from tests.sources.helpers import api_error

ACTIVE = sorted(c.iso_code for c in CURRENCIES if c.end is None)
LEGACY = sorted(c.iso_code for c in CURRENCIES if c.end is not None)


def rows(**kwargs: Any) -> list[dict[str, Any]]:
    return list(currencies_source(**kwargs))


def test_frankfurter_rows_have_the_documented_columns(frankfurter: FakeFrankfurter) -> None:
    result = {r["iso_code"]: r for r in rows()}
    assert sorted(result) == ACTIVE
    usd = result["USD"]
    assert usd["iso_numeric"] == "840" and usd["name"] == "United States Dollar" and usd["symbol"] == "$"
    assert str(usd["start_date"]) == "1999-01-04"
    assert str(usd["end_date"]) == "2026-11-20"
    assert usd["is_active"] is True and usd["provider"] == "frankfurter"
    assert result["AUD"]["iso_numeric"] == "036", "numeric codes keep their leading zeros"
    assert len({r["loaded_at"] for r in result.values()}) == 1, "one loaded-at for the whole run"
    assert [r.path for r in frankfurter.requests] == ["/v2/currencies"]


def test_legacy_currencies_are_flagged_inactive(frankfurter: FakeFrankfurter) -> None:
    result = {r["iso_code"]: r for r in rows(include_legacy=True)}
    assert sorted(result) == sorted(ACTIVE + LEGACY)
    assert {code for code, r in result.items() if not r["is_active"]} == set(LEGACY)
    assert str(result["CYP"]["end_date"]) == "2007-12-31"
    assert [r.param("scope") for r in frankfurter.requests] == [None, "all"]


def test_5xx_is_retried_then_succeeds(frankfurter: FakeFrankfurter) -> None:
    frankfurter.fail(503, times=2, path="/currencies")
    assert len(rows()) == len(ACTIVE)
    assert len(frankfurter.requests_to("/currencies")) == 3


def test_dropped_connections_are_retried(frankfurter: FakeFrankfurter) -> None:
    frankfurter.drop(times=1)
    assert len(rows()) == len(ACTIVE)
    assert len(frankfurter.requests) == 2


def test_persistent_5xx_surfaces_as_a_clear_error_after_bounded_retries(frankfurter: FakeFrankfurter) -> None:
    frankfurter.fail(502, times=100, body='{"message": "upstream unavailable"}')
    with pytest.raises(ResourceExtractionError) as exc:
        rows()
    message = str(api_error(exc))
    assert "HTTP 502" in message and "upstream unavailable" in message and "try again later" in message
    assert len(frankfurter.requests) == 3, "RUNTIME__REQUEST_MAX_ATTEMPTS bounds the retries"


def test_429_honours_retry_after(frankfurter: FakeFrankfurter) -> None:
    frankfurter.fail(429, times=1, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert len(rows()) == len(ACTIVE)
    assert time.monotonic() - started >= 0.9, "waited for Retry-After before the second attempt"
    assert len(frankfurter.requests) == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<html><body>Bad gateway</body></html>", "not valid JSON"),
        ('[{"iso_code": "USD", "name": "United St', "not valid JSON"),
        ('{"USD": "United States Dollar"}', "expected a JSON array"),
        ('[{"iso_code": "usd1", "name": "Broken"}]', "not a three-letter ISO 4217 code"),
        ('[{"iso_code": "USD"}]', "has no name"),
        ('[{"iso_code": "USD", "name": "Dollar", "start_date": "yesterday"}]', "is not a date"),
        ('[{"iso_code": "USD", "name": "A"}, {"iso_code": "USD", "name": "B"}]', "listed currency USD twice"),
    ],
)
def test_malformed_bodies_are_clear_errors(frankfurter: FakeFrankfurter, body: str, expected: str) -> None:
    frankfurter.fail(200, times=1, body=body, headers={"Content-Type": "text/html"})
    with pytest.raises(ResourceExtractionError) as exc:
        rows()
    assert expected in str(api_error(exc))


def test_unknown_provider_is_rejected_before_any_request(frankfurter: FakeFrankfurter) -> None:
    with pytest.raises(Exception, match="provider='ecb' is not supported"):
        currencies_source(provider="ecb")
    assert frankfurter.requests == []


def test_open_exchange_rates_provider(oxr: FakeOpenExchangeRates) -> None:
    result = {
        r["iso_code"]: r
        for r in rows(provider="openexchangerates", base_url=oxr.base_url, include_legacy=True)
    }
    assert sorted(result) == sorted(ACTIVE + LEGACY)
    assert result["GBP"] | {"loaded_at": None} == {
        "iso_code": "GBP",
        "iso_numeric": None,
        "name": "British Pound",
        "symbol": None,
        "start_date": None,
        "end_date": None,
        "is_active": True,
        "provider": "openexchangerates",
        "loaded_at": None,
    }
    assert result["SIT"]["is_active"] is False
    assert "app_id" not in oxr.requests[0].query, "currencies.json is keyless"


def test_a_currency_stays_active_for_30_days_after_its_last_rate(frankfurter: FakeFrankfurter) -> None:
    # the real server's "active" list is every currency published within the last 30 days
    frankfurter.today = dt.date(2026, 1, 20)
    bgn = {r["iso_code"]: r for r in rows()}["BGN"]
    assert bgn["is_active"] is True and str(bgn["end_date"]) == "2025-12-31"
    frankfurter.today = dt.date(2026, 2, 2)
    assert "BGN" not in {r["iso_code"] for r in rows()}
    assert {r["iso_code"]: r["is_active"] for r in rows(include_legacy=True)}["BGN"] is False
