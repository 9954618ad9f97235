"""A look-alike of the Open Exchange Rates API (https://docs.openexchangerates.org) on 127.0.0.1.

Rates come from the Frankfurter look-alike's synthetic series, rebased to the requested base; OXR
itself publishes every calendar day, so a weekend or holiday repeats the previous working day's rates.

The behaviours it follows, each with its evidence, are in ``tests/fakes/openexchangerates.md``.

Assumed (not found documented): time-series ranges over 31 days answer 400 ``invalid_date_range``;
future dates answer 400 ``invalid_date``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.fakes.base import FakeApi, Request, Response
from tests.fakes.frankfurter import FakeFrankfurter, is_working_day


class FakeOpenExchangeRates(FakeApi):
    prefix = "/api"

    def __init__(self, app_id: str = "test-app-id", today: dt.date | None = None) -> None:
        super().__init__()
        self.app_id = app_id
        self.rates = FakeFrankfurter(today=today)
        self.allow_time_series = False
        self.allow_base_change = False

    def handle(self, request: Request) -> Response:
        path = request.path.removeprefix(self.prefix)
        if path == "/currencies.json":
            return Response.json(
                {
                    code: c.name
                    for code, c in self.rates.currencies.items()
                    if request.param("show_inactive") in ("1", "true") or c.end is None
                }
            )
        if path not in ("/latest.json", "/time-series.json") and not path.startswith("/historical/"):
            return _error(404, "not_found", "Route not found.")
        # the App ID as a query parameter or as an `Authorization: Token <app_id>` header (both documented)
        given = request.param("app_id") or request.headers.get("authorization", "").removeprefix("Token ")
        if not given:
            return _error(401, "missing_app_id", "No App ID provided.")
        if given != self.app_id:
            return _error(401, "invalid_app_id", "Invalid App ID provided.")
        base = request.param("base") or "USD"
        if base not in self.rates.currencies:
            return _error(400, "invalid_base", "Client requested rates for an unsupported base currency.")
        if base != "USD" and not self.allow_base_change:
            return _error(429, "not_allowed", "Changing the API `base` currency is available for paid plans.")
        symbols = request.param("symbols")
        symbols_set = set(symbols.upper().split(",")) if symbols else None
        if path == "/latest.json":
            return self._snapshot(self.rates.latest, base, symbols_set)
        if path.startswith("/historical/") and path.endswith(".json"):
            try:
                day = dt.date.fromisoformat(path.removeprefix("/historical/").removesuffix(".json"))
            except ValueError:
                return _error(400, "invalid_date", "Invalid date supplied.")
            return self._snapshot(day, base, symbols_set)
        if path == "/time-series.json":
            if not self.allow_time_series:
                return _error(429, "not_allowed", "Time-series requests are available for paid plans.")
            return self._time_series(request, base, symbols_set)
        return _error(404, "not_found", "Route not found.")

    def _day_rates(self, day: dt.date, base: str, symbols: set[str] | None) -> dict[str, float]:
        while not is_working_day(day):
            day -= dt.timedelta(days=1)
        fake = self.rates
        base_rate = fake.per_euro(base, day)
        return {
            code: round(fake.per_euro(code, day) / base_rate, 6)
            for code, c in fake.currencies.items()
            if c.start <= day <= (c.end or fake.latest) and (symbols is None or code in symbols)
        }

    def _snapshot(self, day: dt.date, base: str, symbols: set[str] | None) -> Response:
        if day > self.rates.today:
            return _error(400, "invalid_date", "Historical rates are not available for future dates.")
        stamp = int(dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC).timestamp())  # end of day
        return Response.json(
            {
                "disclaimer": "fake",
                "license": "fake",
                "timestamp": stamp,
                "base": base,
                "rates": self._day_rates(day, base, symbols),
            }
        )

    def _time_series(self, request: Request, base: str, symbols: set[str] | None) -> Response:
        try:
            start = dt.date.fromisoformat(request.param("start") or "")
            end = dt.date.fromisoformat(request.param("end") or "")
        except ValueError:
            return _error(400, "invalid_date", "start and end must be YYYY-MM-DD.")
        if (end - start).days > 31:
            return _error(400, "invalid_date_range", "Time-series requests are limited to 31 days.")
        rates: dict[str, Any] = {}
        day = start
        while day <= min(end, self.rates.today):
            rates[day.isoformat()] = self._day_rates(
                day, base, symbols
            )  # every calendar day, weekends included
            day += dt.timedelta(days=1)
        return Response.json(
            {"start_date": start.isoformat(), "end_date": end.isoformat(), "base": base, "rates": rates}
        )


def _error(status: int, message: str, description: str) -> Response:
    return Response.json(
        {"error": True, "status": status, "message": message, "description": description}, status
    )
