"""currencies and exchange_rates against the real, public Frankfurter API (keyless; needs internet).

Opt-in: ``LIVE_TESTS=1 uv run pytest -m live tests/live/test_frankfurter_live.py``. Skipped otherwise,
so CI (offline) stays green. Read-only: it only loads into the test session's own DuckDB.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
import requests

if os.environ.get("LIVE_TESTS") != "1":
    pytest.skip("live suite: set LIVE_TESTS=1 to run it against the real APIs", allow_module_level=True)

import dlt
from dlt.extract.exceptions import ResourceExtractionError

from pipelines import exchange_rates
from sources.currencies import currencies_source
from sources.exchange_rates import exchange_rates_source
from sources.fx_providers import BASE_URLS, frankfurter_currencies
from tests.fixtures.warehouse import Warehouse
from utils.http import api_client

pytestmark = pytest.mark.live

HOLIDAY_START = dt.date(2025, 12, 25)  # Christmas: no ECB rates, so the answer opens with 24 December's
HOLIDAY_END = dt.date(2026, 1, 9)
QUOTES = ["BGN", "GBP", "USD"]  # BGN: last published 2025-12-31, carried forward into January


@pytest.fixture(autouse=True)
def real_api(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SOURCES__CURRENCIES__BASE_URL",
        "SOURCES__EXCHANGE_RATES__BASE_URL",
        "SOURCES__EXCHANGE_RATES__AS_OF",
    ):
        monkeypatch.delenv(name, raising=False)


def test_currencies_from_the_real_api() -> None:
    rows = {r["iso_code"]: r for r in currencies_source()}
    assert {"EUR", "USD", "GBP"} <= set(rows)
    assert all(r["is_active"] and r["provider"] == "frankfurter" for r in rows.values())
    assert rows["USD"]["iso_numeric"] == "840" and rows["USD"]["name"]
    legacy = {r["iso_code"]: r for r in currencies_source(include_legacy=True)}
    assert set(rows) < set(legacy) and not legacy["BGN"]["is_active"]


def test_every_entry_of_the_real_catalogue_parses() -> None:
    # pegged, non-ISO (iso_numeric "") and gem-unknown (null) entries included: none may fail the run
    url = f"{BASE_URLS['frankfurter']}/currencies"
    served = requests.get(url, params={"scope": "all"}, timeout=30).json()
    parsed = frankfurter_currencies(api_client(BASE_URLS["frankfurter"]), legacy=True)
    assert [r["iso_code"] for r in parsed] == [e["iso_code"] for e in served]
    for entry, row in zip(served, parsed, strict=True):
        assert row["iso_numeric"] == (entry.get("iso_numeric") or None), entry
        assert (row["name"], row["symbol"]) == (entry["name"], entry.get("symbol")), entry
    assert {"BMD", "GGP", "JEP"} <= {r["iso_code"] for r in parsed}, "pegged currencies are listed"


def test_a_backfill_starting_on_a_holiday(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", str(QUOTES).replace("'", '"'))
    exchange_rates.run(backfill=True, start_date=HOLIDAY_START, end_date=HOLIDAY_END)
    exchange_rates.run(backfill=True, start_date=HOLIDAY_START - dt.timedelta(days=10), end_date=HOLIDAY_END)
    rows = warehouse.query("select rate_date, quote_currency, base_currency from exchange_rates.rates")
    keys = [(r[0], r[1]) for r in rows]
    assert len(keys) == len(set(keys)), "every (date, base, quote) exactly once"
    dates = {r[0] for r in rows}
    assert not dates & {dt.date(2025, 12, 25), dt.date(2025, 12, 26), dt.date(2026, 1, 1)}
    assert {dt.date(2025, 12, 24), dt.date(2025, 12, 31), dt.date(2026, 1, 2)} <= dates
    assert max(r[0] for r in rows if r[1] == "BGN") <= dt.date(2025, 12, 31)
    assert {r[2] for r in rows} == {"EUR"} and "EUR" not in {r[1] for r in rows}, "no identity rows"


def test_the_daily_run_twice_adds_nothing_the_second_time(warehouse: Warehouse) -> None:
    exchange_rates.run()
    first = warehouse.scalar("select count(*) from exchange_rates.rates")
    assert first > 0
    exchange_rates.run()
    assert warehouse.scalar("select count(*) from exchange_rates.rates") == first


def test_an_unknown_provider_key_fails_clearly(warehouse: Warehouse) -> None:
    dlt.pipeline(pipeline_name="exchange_rates_live", destination="duckdb")
    with pytest.raises(ResourceExtractionError) as exc:
        list(exchange_rates_source(mode="backfill", start_date="2025-01-06", providers="NOSUCHBANK"))
    assert "NOSUCHBANK is not a Frankfurter data provider" in str(exc.value.__cause__)
    assert "ECB" in str(exc.value.__cause__)


def test_the_real_providers_list_what_the_source_needs() -> None:
    import requests

    providers: list[dict[str, Any]] = requests.get(
        "https://api.frankfurter.dev/v2/providers", timeout=30
    ).json()
    ecb = next(p for p in providers if p["key"] == "ECB")
    assert {"EUR", "USD"} <= set(ecb["currencies"]) and dt.date.fromisoformat(ecb["end_date"]) > HOLIDAY_END
