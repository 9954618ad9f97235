"""A look-alike of the Frankfurter v2 API (https://frankfurter.dev), served on 127.0.0.1.

Follows the published OpenAPI description: ``GET /v2/currencies`` (``scope=all`` adds legacy
currencies) and ``GET /v2/rates`` (``date`` or ``from``/``to``, ``base``, ``quotes``, ``providers``;
JSON array or NDJSON with ``Accept: application/x-ndjson``; 422 for invalid requests, 404 when a range
holds no data). Rates are synthetic but deterministic: ECB working days only (weekends and TARGET
holidays have none), each currency only between its start and end dates.

Run it by hand for the quick start::

    uv run python -m tests.fakes.frankfurter --port 8765
    SOURCES__CURRENCIES__BASE_URL=http://127.0.0.1:8765/v2 DLT__DESTINATION=duckdb \
        uv run python -m pipelines.currencies
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.fakes.base import FakeApi, Request, Response

ECB_START = dt.date(1999, 1, 4)


@dataclass(frozen=True)
class Currency:
    iso_code: str
    iso_numeric: str | None
    name: str
    symbol: str | None
    per_euro: float
    start: dt.date = ECB_START
    end: dt.date | None = None  # None: still published


CURRENCIES: tuple[Currency, ...] = (
    Currency("AUD", "036", "Australian Dollar", "A$", 1.65),
    Currency("BGN", "975", "Bulgarian Lev", "лв", 1.9558, dt.date(2000, 7, 19)),
    Currency("CAD", "124", "Canadian Dollar", "C$", 1.47),
    Currency("CHF", "756", "Swiss Franc", "CHF", 0.94),
    Currency("CNY", "156", "Chinese Renminbi Yuan", "¥", 7.8, dt.date(2005, 4, 1)),
    Currency("CZK", "203", "Czech Koruna", "Kč", 25.2),
    Currency("DKK", "208", "Danish Krone", "kr", 7.46),
    Currency("EUR", "978", "Euro", "€", 1.0),
    Currency("GBP", "826", "British Pound", "£", 0.86),
    Currency("JPY", "392", "Japanese Yen", "¥", 160.0),
    Currency("NOK", "578", "Norwegian Krone", "kr", 11.5),
    Currency("PLN", "985", "Polish Złoty", "zł", 4.3),
    Currency("SEK", "752", "Swedish Krona", "kr", 11.3),
    Currency("USD", "840", "United States Dollar", "$", 1.09),
    Currency("ZAR", "710", "South African Rand", "R", 20.1),
    Currency("CYP", "196", "Cypriot Pound", "£", 0.5853, ECB_START, dt.date(2007, 12, 31)),
    Currency("SIT", "705", "Slovenian Tolar", None, 239.64, ECB_START, dt.date(2006, 12, 29)),
    Currency("TRL", "792", "Turkish Lira (1922-2005)", None, 1_700_000.0, ECB_START, dt.date(2004, 12, 31)),
)


def is_working_day(day: dt.date) -> bool:
    """ECB reference rates are published on TARGET working days."""
    if day.weekday() >= 5:
        return False
    return (day.month, day.day) not in {(1, 1), (5, 1), (12, 25), (12, 26)}


class FakeFrankfurter(FakeApi):
    """Frankfurter v2 look-alike. ``today`` fixes the newest date it has data for."""

    prefix = "/v2"

    def __init__(self, today: dt.date | None = None, currencies: tuple[Currency, ...] = CURRENCIES) -> None:
        super().__init__()
        self.today = today or dt.date.today()
        self.currencies = {c.iso_code: c for c in currencies}
        self.break_stream_after: int | None = None
        """Drop the connection mid-body once this many NDJSON records have been streamed (across requests)."""

    def reset(self) -> None:
        super().reset()
        self.break_stream_after = None

    @property
    def latest(self) -> dt.date:
        day = self.today
        while not is_working_day(day):
            day -= dt.timedelta(days=1)
        return day

    def handle(self, request: Request) -> Response:
        if request.method != "GET":
            return Response.json({"message": "Method not allowed"}, 405)
        if request.path == "/v2/currencies":
            return self._currencies(request)
        if request.path == "/v2/rates":
            return self._rates(request)
        return Response.json({"message": "Not found"}, 404)

    # /currencies -----------------------------------------------------------------------------
    def _currencies(self, request: Request) -> Response:
        scope = request.param("scope")
        if scope not in (None, "all"):
            return Response.json({"message": f"invalid scope: {scope}"}, 422)
        rows = [
            {
                "iso_code": c.iso_code,
                "iso_numeric": c.iso_numeric,
                "name": c.name,
                "symbol": c.symbol,
                "start_date": c.start.isoformat(),
                "end_date": (c.end or self.latest).isoformat(),
            }
            for c in self.currencies.values()
            if scope == "all" or c.end is None
        ]
        return Response.json(rows)

    # /rates ------------------------------------------------------------------------------------
    def _rates(self, request: Request) -> Response:
        try:
            start, end = self._date_range(request)
            base = self._currency(request.param("base") or "EUR")
            quotes = [self._currency(q) for q in (request.param("quotes") or "").split(",") if q]
            providers = [p for p in (request.param("providers") or "ECB").split(",") if p]
            unknown = [p for p in providers if p != "ECB"]
            if unknown:
                raise ValueError(f"Unknown provider: {', '.join(unknown)}")
        except ValueError as exc:
            return Response.json({"message": str(exc)}, 422)

        quote_codes = quotes or [c for c in self.currencies if c != base]
        days = [d for d in _days(start, end) if is_working_day(d)]
        if not days or not any(self._has_rate(base, d) for d in days):
            return Response.json({"message": "No data found"}, 404)

        records = self._records(days, base, [q for q in quote_codes if q != base])
        if "application/x-ndjson" in request.headers.get("accept", ""):
            return Response(200, self._ndjson(records), {"Content-Type": "application/x-ndjson"})
        return Response.json(list(records))

    def _ndjson(self, records: Iterator[dict[str, object]]) -> Iterator[bytes]:
        for record in records:
            if self.break_stream_after is not None:
                if self.break_stream_after <= 0:
                    self.break_stream_after = None
                    raise ConnectionAbortedError("stream cut by the test")  # the server drops the connection
                self.break_stream_after -= 1
            yield json.dumps(record).encode() + b"\n"

    def _date_range(self, request: Request) -> tuple[dt.date, dt.date]:
        date, start, end = request.param("date"), request.param("from"), request.param("to")
        if date and (start or end):
            raise ValueError("date cannot be combined with from/to")
        if date:
            day = _parse(date, "date")
            while not is_working_day(day) and day > ECB_START:
                day -= dt.timedelta(days=1)
            return day, day
        if end and not start:
            raise ValueError("to requires from")
        if not start:
            return self.latest, self.latest
        first, last = _parse(start, "from"), _parse(end, "to") if end else self.today
        if first > last:
            raise ValueError("from must be on or before to")
        return first, min(last, self.today)

    def _currency(self, code: str) -> str:
        code = code.strip().upper()
        if code not in self.currencies:
            raise ValueError(f"Invalid currency: {code}")
        return code

    def _has_rate(self, code: str, day: dt.date) -> bool:
        currency = self.currencies[code]
        return currency.start <= day <= (currency.end or self.latest)

    def per_euro(self, code: str, day: dt.date) -> float:
        """The synthetic rate of ``code`` per euro on ``day`` (1.0 for EUR)."""
        currency = self.currencies[code]
        if code == "EUR":
            return 1.0
        wobble = 1 + 0.08 * math.sin(day.toordinal() / 90 + len(code) + ord(code[0]))
        return currency.per_euro * wobble

    def _records(self, days: list[dt.date], base: str, quotes: list[str]) -> Iterator[dict[str, object]]:
        for day in days:
            if not self._has_rate(base, day):
                continue
            base_rate = self.per_euro(base, day)
            for quote in quotes:
                if self._has_rate(quote, day):
                    rate = self.per_euro(quote, day) / base_rate
                    yield {"date": day.isoformat(), "base": base, "quote": quote, "rate": round(rate, 6)}


def _days(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    day = start
    while day <= end:
        yield day
        day += dt.timedelta(days=1)


def _parse(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"Invalid {name}: {value}") from None


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
