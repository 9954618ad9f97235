"""The currencies source against the Frankfurter and Open Exchange Rates look-alikes."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
import requests
from dlt.extract.exceptions import ResourceExtractionError

from sources.currencies import currencies_source
from tests.fakes.frankfurter import CURRENCIES, FakeFrankfurter, catalogue_codes
from tests.fakes.openexchangerates import FakeOpenExchangeRates
from tests.sources.helpers import api_error

ACTIVE = catalogue_codes(include_legacy=False)
LEGACY = sorted(set(catalogue_codes(include_legacy=True)) - set(ACTIVE))
ECB_ACTIVE = sorted(c.iso_code for c in CURRENCIES if c.end is None)
ECB_LEGACY = sorted(c.iso_code for c in CURRENCIES if c.end is not None)


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
    assert sorted(result) == sorted(ECB_ACTIVE + ECB_LEGACY)
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


# the real catalogue's entry shapes (money gem 7.0.2 metadata, merged pegs): one test per shape ----------
def test_pegged_currencies_are_listed_with_their_anchors_dates(frankfurter: FakeFrankfurter) -> None:
    result = {r["iso_code"]: r for r in rows()}
    pegged = {"AED", "ANG", "BAM", "BHD", "BMD", "BTN", "CVE", "FKP", "GGP", "IMP", "JEP", "JOD", "OMR"}
    assert pegged | {"QAR", "SAR", "SHP", "TMT", "XAF", "XOF"} <= set(result)
    assert not {"BND", "MOP"} & set(result), "a peg is listed only when its anchor is"
    bmd, usd = result["BMD"], result["USD"]
    assert (bmd["start_date"], bmd["end_date"]) == (usd["start_date"], usd["end_date"])
    assert (bmd["iso_numeric"], bmd["name"], bmd["symbol"]) == ("060", "Bermudian Dollar", "$")
    assert result["BHD"]["iso_numeric"] == "048", "leading zeros kept"


@pytest.mark.parametrize("code", ["GGP", "IMP", "JEP", "CNH"])
def test_non_iso_codes_load_with_no_numeric_code(frankfurter: FakeFrankfurter, code: str) -> None:
    # the gem's non-ISO table gives iso_numeric "" for these; the name and symbol are served as usual
    row = {r["iso_code"]: r for r in rows()}[code]
    assert row["iso_numeric"] is None
    assert row["name"] and row["symbol"] in {"£", "¥"}


def test_a_code_the_gem_does_not_know_loads_as_served(frankfurter: FakeFrankfurter) -> None:
    # no metadata: null numeric code and symbol, the code itself as the name (legacy here: AZM)
    row = {r["iso_code"]: r for r in rows(include_legacy=True)}["AZM"]
    assert (row["iso_numeric"], row["name"], row["symbol"]) == (None, "AZM", None)
    assert row["is_active"] is False and str(row["end_date"]) == "2005-12-30"


def test_non_ascii_names_and_symbols_load_unchanged(frankfurter: FakeFrankfurter) -> None:
    result = {r["iso_code"]: r for r in rows()}
    assert (result["AED"]["symbol"], result["BAM"]["symbol"], result["OMR"]["symbol"]) == (
        "د.إ",
        "\u041a\u041c",
        "ر.ع.",
    )
    assert result["PLN"]["name"] == "Polish Złoty"


def test_the_providers_own_list_has_no_pegs_or_other_providers(frankfurter: FakeFrankfurter) -> None:
    # the look-alike follows Currency.with_providers: coverage only (pegs are not merged)
    served = requests.get(
        f"{frankfurter.base_url}/currencies", params={"providers": "ECB"}, timeout=10
    ).json()
    assert sorted(c["iso_code"] for c in served) == sorted(c.iso_code for c in CURRENCIES)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"iso_numeric": ""}, (None, "$")),  # the gem's non-ISO table
        ({"iso_numeric": None, "symbol": None}, (None, None)),  # a code the gem does not know
        ({"iso_numeric": ..., "symbol": ...}, (None, None)),  # keys absent: null, never invented
        ({"symbol": ""}, ("840", "")),  # the gem's ISO entries without a symbol (XBA, XTS): as served
        ({"iso_numeric": "532"}, ("532", "$")),  # a numeric code two entries share (ANG, XCG)
    ],
)
def test_every_field_shape_of_a_real_entry_parses(
    frankfurter: FakeFrankfurter, fields: dict[str, Any], expected: tuple[Any, Any]
) -> None:
    entry = {"iso_code": "USD", "iso_numeric": "840", "name": "United States Dollar", "symbol": "$",
             "start_date": "1999-01-04", "end_date": "2026-11-20"} | fields  # fmt: skip
    body = json.dumps([{k: v for k, v in entry.items() if v is not ...}])
    frankfurter.fail(200, times=1, body=body, headers={"Content-Type": "application/json"})
    [row] = rows()
    assert (row["iso_numeric"], row["symbol"]) == expected
