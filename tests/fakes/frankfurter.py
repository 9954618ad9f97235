"""A look-alike of the Frankfurter v2 API (https://frankfurter.dev), served on 127.0.0.1.

It follows the real server's code (public repository ``lineofflight/frankfurter``, read at commit
60541ad, 2026-08-21), not only its OpenAPI description, which still documents a 404 "no data" that the
server never sends. Rates are synthetic but deterministic: one data provider, ``ECB``, publishing on
TARGET working days (weekends, New Year, Good Friday, Easter Monday, 1 May, 25-26 December have none),
each currency only between its start and end dates (BGN stops after 2025-12-31, as it did).

The behaviours it follows, each with its evidence, are in ``tests/fakes/frankfurter.md``.

Not modelled (404 here, served by the real API): ``/v2/rate/{base}/{quote}``, ``/v2/currency/{code}``,
CSV; ``group=week|month`` and ``expand=providers`` answer 422 here. The real server also pivots through
USD and blends several providers; with ``providers=ECB`` that reduces to ECB's own rates, as here.

Run it by hand for the quick start::

    uv run python -m tests.fakes.frankfurter --port 8765
    SOURCES__CURRENCIES__BASE_URL=http://127.0.0.1:8765/v2 DLT__DESTINATION=duckdb \
        uv run python -m pipelines.currencies
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dateutil.easter import easter

from tests.fakes.base import FakeApi, Request, Response

ECB_START = dt.date(1999, 1, 4)
LOOKBACK_DAYS = 14
CHUNK_MONTHS = 3
MAX_DAILY_RANGE_YEARS = 5
MAX_SHORT_LIST = 5
ALLOWED_PARAMS = frozenset({"base", "quotes", "providers", "date", "from", "to", "group", "expand"})
PIVOT = "EUR"
PROVIDER = "ECB"
OTHER_ISO_CODES = frozenset({"ISK", "HKD", "BMD", "XAU", "INR", "BRL"})
"""Real ISO 4217 codes the look-alike's ECB does not publish: valid in a request, never in an answer."""


@dataclass(frozen=True)
class Currency:
    """A currency as ``/v2/currencies`` describes it: metadata from the ``money`` gem (7.0.2) as patched by
    the server (``db/seeds/currency_patches.json``)."""

    iso_code: str
    iso_numeric: str | None
    """The gem's text: three digits, ``""`` for its non-ISO codes, ``None`` for a code it does not know."""
    name: str
    symbol: str | None
    per_euro: float = 0.0
    start: dt.date = ECB_START
    end: dt.date | None = None  # None: still published


CURRENCIES: tuple[Currency, ...] = (
    Currency("AUD", "036", "Australian Dollar", "$", 1.65),
    Currency("BGN", "975", "Bulgarian Lev", "лв.", 1.9558, dt.date(2000, 7, 19), dt.date(2025, 12, 31)),
    Currency("CAD", "124", "Canadian Dollar", "$", 1.47),
    Currency("CHF", "756", "Swiss Franc", "CHF", 0.94),
    Currency("CNY", "156", "Chinese Renminbi Yuan", "¥", 7.8, dt.date(2005, 4, 1)),
    Currency("CZK", "203", "Czech Koruna", "Kč", 25.2),
    Currency("DKK", "208", "Danish Krone", "kr.", 7.46),
    Currency("EUR", "978", "Euro", "€", 1.0),
    Currency("GBP", "826", "British Pound", "£", 0.86),
    Currency("JPY", "392", "Japanese Yen", "¥", 160.0),
    Currency("NOK", "578", "Norwegian Krone", "kr", 11.5),
    Currency("PLN", "985", "Polish Złoty", "zł", 4.3),
    Currency("SEK", "752", "Swedish Krona", "kr", 11.3),
    Currency("USD", "840", "United States Dollar", "$", 1.09),
    Currency("ZAR", "710", "South African Rand", "R", 20.1),
    Currency("CYP", "196", "Cyprus Pound", "£", 0.5853, ECB_START, dt.date(2007, 12, 31)),
    Currency("SIT", "705", "Slovenian Tolar", "SIT", 239.64, ECB_START, dt.date(2006, 12, 29)),
    Currency("TRL", "792", "Turkish Lira (old)", "₤", 1_700_000.0, ECB_START, dt.date(2004, 12, 31)),
)
"""What the look-alike's ECB publishes: these have rates."""

OTHER_PROVIDERS: tuple[Currency, ...] = (
    Currency("CNH", "", "Chinese Renminbi Yuan Offshore", "¥", start=dt.date(2023, 1, 3)),
    Currency("INR", "356", "Indian Rupee", "₹"),
    Currency("XDR", "960", "Special Drawing Rights", "SDR"),
    Currency("AZM", None, "AZM", None, start=dt.date(1995, 1, 3), end=dt.date(2005, 12, 30)),
)
"""Listed by ``/v2/currencies`` (no ``providers=``) because other data providers publish them; no rates
here. CNH is one of the gem's non-ISO codes (``iso_numeric`` ``""``); AZM is a code the gem does not
know (``iso_numeric`` and ``symbol`` null, ``name`` the code itself)."""


@dataclass(frozen=True)
class Peg:
    """A currency pegged to an anchor (``db/seeds/pegs/*.json``), listed with the anchor's dates."""

    quote: str
    base: str
    iso_numeric: str
    name: str
    symbol: str


PEGS: tuple[Peg, ...] = (
    Peg("AED", "USD", "784", "United Arab Emirates Dirham", "د.إ"),
    Peg("ANG", "USD", "532", "Netherlands Antillean Guilder", "ƒ"),
    Peg("BAM", "EUR", "977", "Bosnia and Herzegovina Convertible Mark", "\u041a\u041c"),
    Peg("BHD", "USD", "048", "Bahraini Dinar", "د.ب"),
    Peg("BMD", "USD", "060", "Bermudian Dollar", "$"),
    Peg("BND", "SGD", "096", "Brunei Dollar", "$"),
    Peg("BTN", "INR", "064", "Bhutanese Ngultrum", "Nu."),
    Peg("CVE", "EUR", "132", "Cape Verdean Escudo", "$"),
    Peg("FKP", "GBP", "238", "Falkland Pound", "£"),
    Peg("GGP", "GBP", "", "Guernsey Pound", "£"),
    Peg("IMP", "GBP", "", "Isle of Man Pound", "£"),
    Peg("JEP", "GBP", "", "Jersey Pound", "£"),
    Peg("JOD", "USD", "400", "Jordanian Dinar", "\u062f.\u0627"),
    Peg("MOP", "HKD", "446", "Macanese Pataca", "P"),
    Peg("OMR", "USD", "512", "Omani Rial", "ر.ع."),
    Peg("QAR", "USD", "634", "Qatari Riyal", "ر.ق"),
    Peg("SAR", "USD", "682", "Saudi Riyal", "ر.س"),
    Peg("SHP", "GBP", "654", "Saint Helenian Pound", "£"),
    Peg("TMT", "USD", "934", "Turkmenistani Manat", "m"),
    Peg("XAF", "EUR", "950", "Central African CFA Franc", "CFA"),
    Peg("XOF", "EUR", "952", "West African CFA Franc", "Fr"),
)
"""BND (anchor SGD) and MOP (anchor HKD) are never listed here: nothing here publishes their anchors."""


def catalogue_codes(include_legacy: bool) -> list[str]:
    """The codes the default look-alike's ``/v2/currencies`` lists (``scope=all`` with ``include_legacy``),
    for a ``today`` after every listed end date."""
    direct = {c.iso_code for c in (*CURRENCIES, *OTHER_PROVIDERS) if include_legacy or c.end is None}
    return sorted(direct | {p.quote for p in PEGS if p.base in direct})


@functools.lru_cache(maxsize=20_000)
def is_working_day(day: dt.date) -> bool:
    """ECB reference rates are published on TARGET working days."""
    if day.weekday() >= 5:
        return False
    if (day.month, day.day) in {(1, 1), (5, 1), (12, 25), (12, 26)}:
        return False
    easter_sunday = easter(day.year)
    return day not in {easter_sunday - dt.timedelta(days=2), easter_sunday + dt.timedelta(days=1)}


class Invalid(Exception):
    """A request the real server answers with 422 and this lower-case message."""


class FakeFrankfurter(FakeApi):
    """Frankfurter v2 look-alike. ``today`` is the service clock and the newest date with rates."""

    prefix = "/v2"

    def __init__(
        self,
        today: dt.date | None = None,
        currencies: tuple[Currency, ...] = CURRENCIES,
        others: tuple[Currency, ...] = OTHER_PROVIDERS,
        pegs: tuple[Peg, ...] = PEGS,
    ) -> None:
        super().__init__()
        self.today = today or dt.date.today()
        self.currencies = {c.iso_code: c for c in currencies}
        self.others = {c.iso_code: c for c in others}
        self.pegs = pegs
        self.break_stream_after: int | None = None
        """Drop the connection mid-body once this many NDJSON records have been streamed (across requests)."""

    def reset(self) -> None:
        super().reset()
        self.break_stream_after = None

    @property
    def latest(self) -> dt.date:
        """The newest date the ECB has published."""
        day = self.today
        while not is_working_day(day):
            day -= dt.timedelta(days=1)
        return day

    def per_euro(self, code: str, day: dt.date) -> float:
        """The published units of ``code`` per euro (five significant digits, like the ECB)."""
        currency = self.currencies[code]
        if code == PIVOT:
            return 1.0
        wobble = 1 + 0.08 * math.sin(day.toordinal() / 90 + len(code) + ord(code[0]))
        return float(f"{currency.per_euro * wobble:.5g}")

    def published(self, code: str, day: dt.date) -> bool:
        """Whether the ECB published a rate for ``code`` on ``day``."""
        currency = self.currencies.get(code)
        if currency is None or code == PIVOT or not is_working_day(day) or day > self.today:
            return False
        return currency.start <= day <= (currency.end or self.today)

    # routing -----------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        routes = {
            "/v2/rates": self._rates,
            "/v2/currencies": self._currencies,
            "/v2/providers": self._providers,
        }
        route = routes.get(request.path)
        if request.method != "GET" or route is None:
            return _json({"status": 404, "message": "not found"}, 404)
        try:
            return route(request)
        except Invalid as exc:
            return _json({"status": 422, "message": str(exc)}, 422)

    # /providers --------------------------------------------------------------------------------
    def _providers(self, request: Request) -> Response:
        latest = self.latest
        missed = sum(is_working_day(d) for d in _days(latest + dt.timedelta(days=1), self.today))
        return _json(
            [
                {
                    "key": PROVIDER,
                    "name": "European Central Bank",
                    "country_code": "EU",
                    "rate_type": "reference rate",
                    "pivot_currency": PIVOT,
                    "data_url": "https://www.ecb.europa.eu/stats/eurofxref/",
                    "terms_url": "https://www.ecb.europa.eu/services/disclaimer/html/index.en.html",
                    "start_date": ECB_START.isoformat(),
                    "end_date": latest.isoformat(),
                    "publish_cadence": "daily",
                    "publishes_missed": missed,
                    "currencies": sorted(self.currencies),
                }
            ]
        )

    # /currencies -------------------------------------------------------------------------------
    def _currencies(self, request: Request) -> Response:
        providers = request.param("providers")
        if providers is not None:  # the providers' own coverage: no pegs, no other providers
            keys = providers.upper().split(",")
            own = sorted(self.currencies.values(), key=lambda c: c.iso_code) if PROVIDER in keys else []
            return _json([self._entry(c) for c in own])
        listed = [*self.currencies.values(), *self.others.values()]
        if request.param("scope") != "all":
            cutoff = self.today - dt.timedelta(days=30)
            listed = [c for c in listed if self._last_date(c) >= cutoff]
        entries = {c.iso_code: self._entry(c) for c in listed}
        for peg in self.pegs:  # merge_pegged: a peg is listed when its anchor is, with the anchor's dates
            anchor = entries.get(peg.base)
            if anchor is not None and peg.quote not in entries:
                entries[peg.quote] = {
                    "iso_code": peg.quote,
                    "iso_numeric": peg.iso_numeric,
                    "name": peg.name,
                    "symbol": peg.symbol,
                    "start_date": anchor["start_date"],
                    "end_date": anchor["end_date"],
                }
        return _json([entries[code] for code in sorted(entries)])

    def _entry(self, c: Currency) -> dict[str, Any]:
        return {
            "iso_code": c.iso_code,
            "iso_numeric": c.iso_numeric,
            "name": c.name,
            "symbol": c.symbol,
            "start_date": c.start.isoformat(),
            "end_date": self._last_date(c).isoformat(),
        }

    def _last_date(self, currency: Currency) -> dt.date:
        day = min(currency.end or self.today, self.today)
        while not is_working_day(day):
            day -= dt.timedelta(days=1)
        return day

    # /rates ------------------------------------------------------------------------------------
    def _rates(self, request: Request) -> Response:
        query = self._query(request)
        records = self._range(**query) if query.pop("range") else self._snapshot(**query)
        if "application/x-ndjson" in request.headers.get("accept", ""):
            headers = {"Content-Type": "application/x-ndjson", "Vary": "Accept"}
            return Response(200, self._ndjson(records), headers)
        return _json(list(records))

    def _query(self, request: Request) -> dict[str, Any]:
        unknown = sorted(set(request.query) - ALLOWED_PARAMS)
        if unknown:
            raise Invalid(f"unknown parameter: {', '.join(unknown)}")
        date, start, end = (_parse(request.param(k)) for k in ("date", "from", "to"))
        if any(
            request.param(k) is not None and v is None
            for k, v in zip(("date", "from", "to"), (date, start, end), strict=True)
        ):
            raise Invalid("invalid date")
        if date and (start or end):
            raise Invalid("conflicting params")
        group, expand = request.param("group"), request.param("expand")
        if group is not None:
            raise Invalid(
                "invalid group" if group.lower() not in ("week", "month") else "group is not modelled"
            )
        if expand is not None:
            raise Invalid(
                f"invalid expand: {expand}" if expand.lower() != "providers" else "expand is not modelled"
            )
        base = (request.param("base") or PIVOT).upper()
        quotes = request.param("quotes")
        quote_list = quotes.upper().split(",") if quotes is not None else None
        invalid = [
            c for c in [base, *(quote_list or [])] if c not in self.currencies and c not in OTHER_ISO_CODES
        ]
        if invalid:
            raise Invalid(f"invalid currency: {','.join(invalid)}")
        providers = request.param("providers")
        provider_list = providers.upper().split(",") if providers is not None else None
        if start is not None:
            last = end or self.today
            short = (
                quote_list and provider_list and len(set(quote_list)) <= 5 and len(set(provider_list)) <= 5
            )
            if provider_list is not None and not short and min(last, self.today) > _add_years(start, 5):
                raise Invalid(
                    f"date range exceeds {MAX_DAILY_RANGE_YEARS} years at daily granularity; "
                    f"filter with quotes= ({MAX_SHORT_LIST} currencies or fewer), "
                    "aggregate with group=week or group=month, "
                    "or split the range into shorter requests"
                )
            return {
                "range": True,
                "start": start,
                "end": last,
                "base": base,
                "quotes": quote_list,
                "providers": provider_list,
            }
        scope = date or self.today + dt.timedelta(days=1)
        return {"range": False, "day": scope, "base": base, "quotes": quote_list, "providers": provider_list}

    def _contributors(self, anchor: dt.date, providers: list[str] | None) -> dict[str, tuple[dt.date, float]]:
        """Each quote's newest observation within the lookback, keeping its own date (CarryForward)."""
        if providers is not None and PROVIDER not in providers:
            return {}
        found = {}
        for code in self.currencies:
            for back in range(LOOKBACK_DAYS + 1):
                day = anchor - dt.timedelta(days=back)
                if self.published(code, day):
                    found[code] = (day, self.per_euro(code, day))
                    break
        return found

    def _emit(
        self,
        contributors: dict[str, tuple[dt.date, float]],
        base: str,
        quotes: list[str] | None,
        passthrough: bool,
    ) -> list[dict[str, Any]]:
        if not contributors:
            return []
        pivot_rows = [(day, PIVOT, code, rate) for code, (day, rate) in contributors.items()]
        if base == PIVOT:
            blended = pivot_rows
        elif base not in contributors:
            return []  # no path to derive the base
        else:
            base_day, base_rate = contributors[base]
            blended = [
                (day, base, code, rate / base_rate) for day, _, code, rate in pivot_rows if code != base
            ]
            blended.append((base_day, base, PIVOT, 1.0 / base_rate))
        records = [
            {"date": day.isoformat(), "base": b, "quote": q, "rate": rate if passthrough else _round(rate)}
            for day, b, q, rate in blended
            if quotes is None or q in quotes
        ]
        if (quotes is None or base in quotes) and not any(r["quote"] == base for r in records):
            dates = [str(r["date"]) for r in records] or [max(row[0] for row in blended).isoformat()]
            ref = max(dates)
            records.append({"date": ref, "base": base, "quote": base, "rate": 1.0})
        return records

    def _snapshot(
        self, day: dt.date, base: str, quotes: list[str] | None, providers: list[str] | None
    ) -> Iterator[dict[str, Any]]:
        passthrough = providers is not None and len(providers) == 1 and base == PIVOT
        records = self._emit(self._contributors(day, providers), base, quotes, passthrough)
        yield from sorted(records, key=lambda r: r["quote"])

    def _range(
        self, start: dt.date, end: dt.date, base: str, quotes: list[str] | None, providers: list[str] | None
    ) -> Iterator[dict[str, Any]]:
        passthrough = providers is not None and len(providers) == 1 and base == PIVOT
        seen: set[tuple[str, str]] = set()
        cursor = start
        while cursor <= end:
            chunk_end = min(_add_months(cursor, CHUNK_MONTHS) - dt.timedelta(days=1), end)
            with_data = [d for d in _days(cursor, chunk_end) if self._any_published(d)]
            anchors = with_data if cursor in with_data else [cursor, *with_data]
            for anchor in anchors:
                records = self._emit(self._contributors(anchor, providers), base, quotes, passthrough)
                for record in sorted(records, key=lambda r: (r["date"], r["quote"])):
                    key = (record["quote"], record["date"])
                    if key not in seen:
                        seen.add(key)
                        yield record
            cursor = chunk_end + dt.timedelta(days=1)

    def _any_published(self, day: dt.date) -> bool:
        return is_working_day(day) and day <= self.today

    def _ndjson(self, records: Iterator[dict[str, object]]) -> Iterator[bytes]:
        for record in records:
            if self.break_stream_after is not None:
                if self.break_stream_after <= 0:
                    self.break_stream_after = None
                    raise ConnectionAbortedError("stream cut by the test")  # the server drops the connection
                self.break_stream_after -= 1
            yield json.dumps(record).encode() + b"\n"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json; charset=utf-8"})


def _round(rate: float) -> float:
    return float(f"{rate:.6g}")


def _days(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    day = start
    while day <= end:
        yield day
        day += dt.timedelta(days=1)


def _add_months(day: dt.date, months: int) -> dt.date:
    """Ruby's ``Date#>>``: the same day ``months`` later, clamped to the month's end."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _add_years(day: dt.date, years: int) -> dt.date:
    return _add_months(day, 12 * years)


def _parse(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Frankfurter look-alike on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None, help="newest date with rates")
    args = parser.parse_args()
    fake = FakeFrankfurter(today=args.today).start(args.port)
    print(f"Frankfurter look-alike at {fake.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
