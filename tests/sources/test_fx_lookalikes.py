"""The currency look-alikes behave as the real providers do (tests/fakes/frankfurter.md and
tests/fakes/openexchangerates.md): each behaviour the sources rely on, asserted at the HTTP level."""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests

from tests.fakes.frankfurter import FakeFrankfurter
from tests.fakes.openexchangerates import FakeOpenExchangeRates
from tests.fixtures.openexchangerates import OXR_APP_ID

NDJSON = {"Accept": "application/x-ndjson"}


def ff(fake: FakeFrankfurter, path: str, **params: str) -> requests.Response:
    return requests.get(f"{fake.base_url}{path}", params=params, timeout=30)


def rates(fake: FakeFrankfurter, **params: str) -> list[dict[str, Any]]:
    response = ff(fake, "/rates", **params)
    assert response.status_code == 200, response.text
    return list(response.json())


def test_carry_forward_surfaces_rows_dated_before_from(frankfurter: FakeFrankfurter) -> None:
    rows = rates(
        frankfurter, **{"from": "2024-01-01", "to": "2024-01-03", "quotes": "USD", "providers": "ECB"}
    )
    assert [r["date"] for r in rows] == ["2023-12-29", "2024-01-02", "2024-01-03"]
    # each 3-month chunk opening on a silent day is anchored too: 2024-04-01 is Easter Monday
    rows = rates(frankfurter, **{"from": "2024-03-25", "to": "2024-04-03", "quotes": "USD"})
    assert [r["date"] for r in rows] == [
        "2024-03-25",
        "2024-03-26",
        "2024-03-27",
        "2024-03-28",
        "2024-04-02",
        "2024-04-03",
    ], "carried rows already sent are not repeated"


def test_a_stopped_currency_is_carried_even_when_from_is_a_publishing_day(
    frankfurter: FakeFrankfurter,
) -> None:
    frankfurter.today = dt.date(2026, 1, 20)
    rows = rates(frankfurter, **{"from": "2026-01-05", "to": "2026-01-06", "quotes": "BGN,USD"})
    assert ("2025-12-31", "BGN") in {(r["date"], r["quote"]) for r in rows}
    assert rates(frankfurter, **{"from": "2026-01-16", "to": "2026-01-16", "quotes": "BGN"}) == []


def test_identity_row_unless_quotes_exclude_the_base(frankfurter: FakeFrankfurter) -> None:
    rows = rates(frankfurter, **{"from": "2024-01-15", "to": "2024-01-16"})
    identity = [r for r in rows if r["quote"] == "EUR"]
    assert [(r["date"], r["rate"]) for r in identity] == [("2024-01-15", 1.0), ("2024-01-16", 1.0)]
    assert not [r for r in rates(frankfurter, date="2024-01-15", quotes="USD") if r["quote"] == "EUR"]
    assert [r["quote"] for r in rates(frankfurter, date="2024-01-15", quotes="EUR,USD")] == ["EUR", "USD"]


def test_providers_only_filter_and_are_listed(frankfurter: FakeFrankfurter) -> None:
    assert rates(frankfurter, **{"from": "2024-01-15", "to": "2024-01-16", "providers": "BOGUS"}) == []
    assert rates(frankfurter, **{"from": "2024-01-15", "to": "2024-01-16", "quotes": "ISK"}) == []
    [ecb] = ff(frankfurter, "/providers").json()
    assert ecb["key"] == "ECB" and ecb["end_date"] == "2026-11-20" and ecb["start_date"] == "1999-01-04"
    assert {"EUR", "USD", "BGN"} <= set(ecb["currencies"]) and ecb["publishes_missed"] == 0


def test_empty_results_are_200_and_404_is_only_for_routes(frankfurter: FakeFrankfurter) -> None:
    assert ff(frankfurter, "/rates", **{"from": "1990-01-01", "to": "1990-12-31"}).json() == []
    empty = requests.get(
        f"{frankfurter.base_url}/rates", params={"from": "2030-01-01"}, headers=NDJSON, timeout=30
    )
    assert empty.status_code == 200 and empty.text == "" and empty.headers["Vary"] == "Accept"
    assert rates(frankfurter, **{"from": "2024-02-01", "to": "2024-01-01"}) == [], "an empty range, not a 422"
    assert {r["date"] for r in rates(frankfurter, to="2024-01-01")} == {"2026-11-20"}, (
        "to without from: latest"
    )
    missing = ff(frankfurter, "/ratez")
    assert missing.status_code == 404 and missing.json() == {"status": 404, "message": "not found"}


def test_422_bodies_and_messages(frankfurter: FakeFrankfurter) -> None:
    cases = {
        "unknown parameter: symbols": {"symbols": "USD"},
        "invalid date": {"from": "2024-13-01"},
        "conflicting params": {"date": "2024-01-15", "from": "2024-01-15"},
        "invalid currency: XYZ": {"quotes": "USD,XYZ"},
        "invalid group": {"group": "year"},
    }
    for message, params in cases.items():
        response = ff(frankfurter, "/rates", **params)
        assert response.status_code == 422 and response.json() == {"status": 422, "message": message}


def test_daily_ranges_over_5_years_with_providers_need_a_short_quotes_list(
    frankfurter: FakeFrankfurter,
) -> None:
    long = {"from": "2019-01-01", "to": "2024-06-30", "providers": "ECB"}
    refused = ff(frankfurter, "/rates", **long)
    assert refused.status_code == 422 and "exceeds 5 years" in refused.json()["message"]
    assert ff(frankfurter, "/rates", **long, quotes="USD").status_code == 200
    assert ff(frankfurter, "/rates", **{"from": "2019-01-01", "to": "2024-06-30"}).status_code == 200
    assert ff(frankfurter, "/rates", **{"from": "2019-07-01", "to": "2024-06-30", "providers": "ECB"}).ok


def test_a_weekend_date_answers_fridays_rows(frankfurter: FakeFrankfurter) -> None:
    assert {r["date"] for r in rates(frankfurter, date="2024-01-13")} == {"2024-01-12"}


def test_currencies_active_means_published_in_the_last_30_days(frankfurter: FakeFrankfurter) -> None:
    frankfurter.today = dt.date(2026, 1, 20)
    assert "BGN" in {c["iso_code"] for c in ff(frankfurter, "/currencies").json()}
    assert ff(frankfurter, "/currencies", providers="BOGUS").json() == []
    assert "EUR" in {c["iso_code"] for c in ff(frankfurter, "/currencies", providers="ECB").json()}


def oxr_get(oxr: FakeOpenExchangeRates, path: str, **params: str) -> requests.Response:
    return requests.get(f"{oxr.base_url}{path}", params=params, timeout=30)


def test_oxr_errors_follow_the_documented_table(oxr: FakeOpenExchangeRates) -> None:
    expected = [
        ("/historical/2024-01-15.json", {}, 401, "missing_app_id"),
        ("/historical/2024-01-15.json", {"app_id": "wrong"}, 401, "invalid_app_id"),
        ("/historical/2024-01-15.json", {"app_id": OXR_APP_ID, "base": "EUR"}, 429, "not_allowed"),
        ("/historical/2024-01-15.json", {"app_id": OXR_APP_ID, "base": "ABC"}, 400, "invalid_base"),
        ("/time-series.json", {"app_id": OXR_APP_ID}, 429, "not_allowed"),
        ("/nowhere.json", {"app_id": OXR_APP_ID}, 404, "not_found"),
    ]
    for path, params, status, message in expected:
        body = oxr_get(oxr, path, **params).json()
        assert (body["error"], body["status"], body["message"]) == (True, status, message)


def test_oxr_lists_the_base_honours_symbols_and_has_weekends(oxr: FakeOpenExchangeRates) -> None:
    day = oxr_get(oxr, "/historical/2024-01-13.json", app_id=OXR_APP_ID).json()  # a Saturday
    assert day["base"] == "USD" and day["rates"]["USD"] == 1.0
    only = oxr_get(oxr, "/historical/2024-01-13.json", app_id=OXR_APP_ID, symbols="EUR,GBP").json()
    assert sorted(only["rates"]) == ["EUR", "GBP"]
    oxr.allow_time_series = True
    series = oxr_get(oxr, "/time-series.json", app_id=OXR_APP_ID, start="2013-01-01", end="2013-01-06").json()
    assert len(series["rates"]) == 6, "every calendar day, 1 January and the weekend included"
