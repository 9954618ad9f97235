"""Fuzzed provider answers through each source's parsing layer, over real HTTP (issue 20, item 3).

One look-alike server per provider for the whole session; each example scripts its answer with the
fake's fault injection (status, body, headers) and calls the code the source runs on it. Allowed: a
result whose every row is well-typed and, for an undamaged answer, exactly what was served; or a typed
error (:class:`utils.http.ApiError` and subclasses) that names the provider and holds no secret. The
leak trap of ``tests/reliability/test_secrets.py`` also checks logs and output after every example.

Full pipeline runs (no partial load, state unmoved) are sampled in ``test_pipelines.py``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sources.currencies import currencies_source
from sources.fx_providers import ISO_CODE, frankfurter_rates, oxr_auth, oxr_currencies, oxr_rates
from sources.hubspot.client import HubSpotClient
from sources.hubspot.rows import to_row
from tests.fakes.base import FakeApi
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.openexchangerates import FakeOpenExchangeRates
from tests.fixtures.openexchangerates import OXR_APP_ID
from tests.fuzz.outcomes import Outcome, attempt
from tests.fuzz.strategies import ODD_VALUES, Served, mutated, served, with_duplicates
from tests.reliability.test_secrets import HUBSPOT_CANARY, LeakTrap
from utils.http import api_client

pytestmark = [pytest.mark.fuzz, pytest.mark.reliability]

CODES = st.sampled_from(["USD", "GBP", "JPY", "CHF", "EUR", "usd", "US", "ÜSD"])
VALID_CODES = st.sampled_from(["USD", "GBP", "JPY", "CHF", "EUR"])
DAY = dt.date(2026, 11, 16)
DATES = st.dates(dt.date(2026, 11, 1), dt.date(2026, 11, 30)).map(dt.date.isoformat)
RATES = st.floats(min_value=1e-9, max_value=1e9)


def script(fake: FakeApi, path: str, answer: Served) -> None:
    """Every attempt at ``path`` (retries included) gets ``answer``; nothing left from the last example."""
    fake.reset()
    fake.fail(answer.status, times=3, path=path, body=answer.body, headers=answer.headers)


@pytest.fixture(scope="module")
def outcome() -> Iterator[Outcome]:
    counts = Outcome()
    yield counts
    print(f"\nfuzz outcomes: {counts.loaded} clean, {counts.errors} typed errors")


# currencies ----------------------------------------------------------------------------------------
FRANKFURTER_CURRENCY = st.fixed_dictionaries(
    {
        "iso_code": VALID_CODES,
        "iso_numeric": st.sampled_from(["840", "978", "008", None]),
        "name": st.text(min_size=1, max_size=30),
        "symbol": st.none() | st.text(max_size=3),
        "start_date": DATES,
        "end_date": st.none() | DATES,
    }
).flatmap(mutated)


def _currency_rows(base_url: str) -> list[dict[str, Any]]:
    resource = currencies_source(provider="frankfurter", base_url=base_url).resources["currencies"]
    return [row for item in resource for row in (item if isinstance(item, list) else [item])]


@given(answer=served(with_duplicates(st.lists(FRANKFURTER_CURRENCY, max_size=5))))
def test_frankfurter_currencies(
    answer: Served, frankfurter_server: FakeFrankfurter, leaks: LeakTrap, outcome: Outcome
) -> None:
    leaks.reset()
    script(frankfurter_server, "/currencies", answer)
    rows = attempt(lambda: _currency_rows(frankfurter_server.base_url), "Frankfurter", (), outcome)
    if rows is not None:
        codes = [row["iso_code"] for row in rows]
        assert len(codes) == len(set(codes)), "duplicates loaded"
        for row in rows:
            assert ISO_CODE.match(row["iso_code"]) and isinstance(row["name"], str) and row["name"]
            assert row["symbol"] is None or isinstance(row["symbol"], str)
            assert row["iso_numeric"] is None or str(row["iso_numeric"]).isdigit()
            assert all(row[k] is None or type(row[k]) is dt.date for k in ("start_date", "end_date"))
        if answer.clean and isinstance(answer.records, list):
            assert codes == [r["iso_code"] for r in answer.records]
            assert [row["name"] for row in rows] == [r["name"] for r in answer.records]
    leaks.assert_clean([])


@given(
    answer=served(
        st.dictionaries(
            CODES | st.text(max_size=4), st.text(min_size=1, max_size=20) | ODD_VALUES, max_size=6
        )
    )
)
def test_oxr_currencies(
    answer: Served, oxr_server: FakeOpenExchangeRates, leaks: LeakTrap, outcome: Outcome
) -> None:
    leaks.reset()
    script(oxr_server, "/currencies.json", answer)
    names = attempt(
        lambda: oxr_currencies(api_client(oxr_server.base_url), show_inactive=False),
        "Open Exchange Rates",
        [OXR_APP_ID],
        outcome,
    )
    if names is not None:
        assert all(ISO_CODE.match(code) and isinstance(name, str) for code, name in names.items())
        if answer.clean:
            assert names == answer.records
    leaks.assert_clean([OXR_APP_ID])


# exchange_rates ------------------------------------------------------------------------------------
def _check_rates(rows: list[tuple[Any, ...]]) -> None:
    for day, quote, rate in rows:
        assert type(day) is dt.date and ISO_CODE.match(quote)
        assert type(rate) is float and math.isfinite(rate) and rate > 0


FRANKFURTER_RATE = st.fixed_dictionaries(
    {"date": DATES, "base": st.just("EUR"), "quote": VALID_CODES, "rate": RATES}
).flatmap(mutated)


@given(
    answer=served(
        with_duplicates(st.lists(FRANKFURTER_RATE, max_size=6)),
        content_type="application/x-ndjson",
    )
)
def test_frankfurter_rates(
    answer: Served, frankfurter_server: FakeFrankfurter, leaks: LeakTrap, outcome: Outcome
) -> None:
    leaks.reset()
    script(frankfurter_server, "/rates", answer)
    client = api_client(frankfurter_server.base_url)

    def read() -> list[tuple[Any, ...]]:
        return list(
            frankfurter_rates(
                client, base="EUR", quotes=(), providers=("ECB",), start=DAY, end=DAY + dt.timedelta(4)
            )
        )

    rows = attempt(read, "Frankfurter", (), outcome)
    if rows is not None:
        _check_rates(rows)
        if answer.clean and "ndjson" in answer.headers.get("Content-Type", ""):
            served_rows = [(dt.date.fromisoformat(r["date"]), r["quote"], r["rate"]) for r in answer.records]
            assert rows == served_rows
    leaks.assert_clean([])


OXR_DAY = st.fixed_dictionaries(
    {
        "disclaimer": st.just("Usage subject to terms: https://openexchangerates.org/terms"),
        "license": st.just("https://openexchangerates.org/license"),
        "timestamp": st.integers(0, 2**31),
        "base": st.just("USD"),
        "rates": st.dictionaries(CODES, RATES | ODD_VALUES, max_size=5),
    }
).flatmap(mutated)


@given(answer=served(OXR_DAY))
def test_oxr_rates(
    answer: Served, oxr_server: FakeOpenExchangeRates, leaks: LeakTrap, outcome: Outcome
) -> None:
    leaks.reset()
    script(oxr_server, "/historical/", answer)
    client = api_client(oxr_server.base_url, auth=oxr_auth(OXR_APP_ID))

    def read() -> list[tuple[Any, ...]]:
        return list(
            oxr_rates(client, app_id=OXR_APP_ID, base="USD", quotes=(), start=DAY, end=DAY, time_series=False)
        )

    rows = attempt(read, "Open Exchange Rates", [OXR_APP_ID], outcome)
    if rows is not None:
        _check_rates(rows)
        assert all(day == DAY for day, _, _ in rows)
        if answer.clean:
            assert {quote: rate for _, quote, rate in rows} == answer.records["rates"]
    leaks.assert_clean([OXR_APP_ID])


# hubspot ---------------------------------------------------------------------------------------------
KINDS = {
    "firstname": "string",
    "lastmodifieddate": "datetime",
    "num_notes": "number",
    "hs_object_id": "number",
}
TIMESTAMPS = st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2026, 11, 1)).map(
    lambda d: d.isoformat(timespec="milliseconds") + "Z"
)
HUBSPOT_RECORD = st.fixed_dictionaries(
    {
        "id": st.integers(1, 10**6).map(str),
        "properties": st.fixed_dictionaries(
            {
                "firstname": st.text(max_size=20),
                "lastmodifieddate": TIMESTAMPS,
                "num_notes": st.integers(0, 100).map(str),
                "hs_object_id": st.integers(1, 10**6).map(str),
            }
        ).flatmap(mutated),
        "createdAt": TIMESTAMPS,
        "updatedAt": TIMESTAMPS,
        "archived": st.just(False),
    }
).flatmap(mutated)
HUBSPOT_PAGE = st.fixed_dictionaries(
    {
        "total": st.integers(0, 10),
        "results": with_duplicates(st.lists(HUBSPOT_RECORD, max_size=4)),
    }
).flatmap(mutated)


@pytest.fixture(scope="module")
def hubspot_canary(hubspot_server: FakeHubSpot) -> Iterator[FakeHubSpot]:
    """The look-alike expecting the canary token (so a leak of it would be the real secret's leak)."""
    hubspot_server.clear()
    hubspot_server.token = HUBSPOT_CANARY
    yield hubspot_server
    hubspot_server.clear()


@given(answer=served(HUBSPOT_PAGE))
def test_hubspot_search(
    answer: Served, hubspot_canary: FakeHubSpot, leaks: LeakTrap, outcome: Outcome
) -> None:
    leaks.reset()
    script(hubspot_canary, "/crm/v3/objects/contacts/search", answer)
    client = HubSpotClient(
        HUBSPOT_CANARY,
        hubspot_canary.base_url,
        requests_per_10_seconds=100_000,
        search_requests_per_second=10_000,
    )

    def read() -> list[dict[str, Any]]:
        pages = client.search_modified("contacts", "lastmodifieddate", sorted(KINDS), 0, 2**62)
        return [to_row(record, KINDS) for page in pages for record in page]

    rows = attempt(read, "HubSpot", [HUBSPOT_CANARY], outcome)
    if rows is not None:
        assert all(isinstance(row["id"], str) and row["id"] for row in rows)
        if answer.clean:
            assert [row["id"] for row in rows] == [str(r["id"]) for r in answer.records["results"]]
    leaks.assert_clean([HUBSPOT_CANARY])
