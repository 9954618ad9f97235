"""Bad input catalogue, per API source: each case fails with a clear error and leaves the destination
exactly as it was, or is handled in a documented way that this test pins down (docs/reliability.md).

Each test loads once, scripts the look-alike (body overrides, ``fail``, ``drop``) for the next run, then
runs the pipeline again. A failed run must leave every data table, the completed loads and the stored
state unchanged, with no package left pending (the next run starts clean).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.warehouse import Warehouse
from tests.reliability.scenarios import (
    EXCHANGE_RATES_SCENARIO,
    HUBSPOT_SCENARIO,
    Scenario,
    completed_loads,
    snapshot,
    stored_state,
)

pytestmark = pytest.mark.reliability

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}
HUGE = 1_000_000
UNICODE = "Zoë Złoty 山田 😀 \u202eRTL\u202c e\u0301"


@dataclass(frozen=True)
class Case:
    """Script the look-alike for the run under test; expect ``error`` in the run's error, or ``check``."""

    name: str
    inject: Callable[[Any], None]
    error: tuple[str, ...] = ()
    check: Callable[[Warehouse, Any], None] | None = None
    attempts: int | None = None
    """How many requests the run under test sends to the broken endpoint (retries included), if pinned."""


@dataclass(frozen=True)
class Target:
    """One API source: how to load it once, what to change before the run under test, its cases."""

    name: str
    fake: str
    seed: Callable[[Any, pytest.MonkeyPatch], None]
    first_run: dict[str, Any]
    change: Callable[[Any], None]
    path: str
    """The endpoint the run under test reads (where faults are injected)."""
    cases: list[Case] = field(default_factory=list)


def body(status: int, text: str, headers: dict[str, str]) -> Callable[[Any], None]:
    return lambda fake: fake.fail(status, body=text, headers=headers, path=fake.bad_input_path)


MAX_ATTEMPTS = 4
"""``[runtime] request_max_attempts`` for the run under test (production: 5, the suite's default: 3), so a
pinned request count shows the setting is what bounds the retries."""


def storms(client_error: int, client_error_text: str) -> list[Case]:
    """Outages every source must survive the same way: bounded retries, then a clear error.

    The errors must carry the provider's own message (the look-alike answers ``injected HTTP <status>``),
    not only the advice ``utils/http.py`` appends to any 5xx or 429; the request count proves the retries
    happened (``MAX_ATTEMPTS`` for a 5xx or 429, one for a client error that no retry can fix).
    """
    return [
        Case(
            "html-not-json",
            body(200, "<html><body>Gateway maintenance</body></html>", {"Content-Type": "text/html"}),
            error=("not valid JSON", "text/html"),
        ),
        Case(
            f"{client_error}",
            lambda f: f.fail(client_error, times=100, path=f.bad_input_path),
            error=(f"HTTP {client_error}", client_error_text),
            attempts=1,
        ),
        Case(
            "5xx-storm",
            lambda f: f.fail(503, times=100, path=f.bad_input_path),
            error=("HTTP 503 Service Unavailable - injected HTTP 503", "retries with backoff were exhausted"),
            attempts=MAX_ATTEMPTS,
        ),
        Case(
            "429-storm",
            lambda f: f.fail(429, times=100, path=f.bad_input_path, headers={"Retry-After": "0"}),
            error=("HTTP 429 Too Many Requests - injected HTTP 429", "rate limited"),
            attempts=MAX_ATTEMPTS,
        ),
        Case(
            "connection-drops",
            lambda f: f.drop(times=100, path=f.bad_input_path),
            error=("could not reach", "ConnectionError"),
        ),
    ]


# currencies (Frankfurter /currencies, replace) -----------------------------------------------------
def currency(code: str = "USD", **fields: Any) -> dict[str, Any]:
    row = {"iso_code": code, "iso_numeric": "840", "name": "US Dollar", "symbol": "$",
           "start_date": "1999-01-04", "end_date": "2026-11-20"}  # fmt: skip
    row.update(fields)
    return {k: v for k, v in row.items() if v is not ...}


def currencies_body(*rows: dict[str, Any]) -> Callable[[Any], None]:
    return body(200, json.dumps(list(rows)), JSON)


def loaded_currencies(expected: list[tuple[Any, ...]], columns: str = "iso_code, name, symbol") -> Any:
    def check(warehouse: Warehouse, fake: Any) -> None:
        assert warehouse.query(f"select {columns} from currencies.currencies order by 1") == expected

    return check


CURRENCIES = Target(
    name="currencies",
    fake="frankfurter",
    seed=lambda fake, mp: None,
    first_run={},
    change=lambda fake: None,
    path="/currencies",
    cases=[
        *storms(404, "injected HTTP 404"),
        Case(
            "truncated-json",
            body(200, json.dumps([currency(), currency("GBP")])[:70], JSON),
            error=("not valid JSON",),
        ),
        Case("wrong-types", currencies_body(currency(start_date="31/12/2024")), error=("is not a date",)),
        Case(
            "missing-primary-key",
            currencies_body(currency(iso_code=...)),
            error=("None is not a three-letter ISO 4217 code",),
        ),
        Case(
            "duplicate-keys",
            currencies_body(currency(), currency()),
            error=("listed currency USD twice; refusing to load duplicates",),
        ),
        Case(
            "huge-values",
            currencies_body(currency(name="N" * HUGE)),
            check=loaded_currencies([("USD", "N" * HUGE, "$")]),
        ),
        Case(
            "unicode",
            currencies_body(currency(name=UNICODE, symbol="💵")),
            check=loaded_currencies([("USD", UNICODE, "💵")]),
        ),
        Case(
            "schema-drift",
            currencies_body(currency(symbol=..., country="US", iso_numeric=840)),
            check=loaded_currencies(
                [("USD", "US Dollar", None, "840")], "iso_code, name, symbol, iso_numeric"
            ),
        ),
    ],
)


# exchange_rates (Frankfurter /rates NDJSON, append) ------------------------------------------------
def rate(**fields: Any) -> dict[str, Any]:
    record = {"date": "2026-11-16", "base": "EUR", "quote": "USD", "rate": 1.0923}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not ...}


def ndjson(*records: dict[str, Any]) -> Callable[[Any], None]:
    return body(200, "".join(json.dumps(r) + "\n" for r in records), NDJSON)


def loaded_rates(expected: list[tuple[Any, ...]]) -> Any:
    def check(warehouse: Warehouse, fake: Any) -> None:
        rows = warehouse.query(
            "select rate_date, quote_currency, rate from exchange_rates.rates where rate_date > '2026-11-13'"
            " order by 1, 2"
        )
        assert rows == expected
        types = warehouse.query("select count(*) from information_schema.columns where table_name = 'rates'")
        assert types == [(7,)], "the contract columns and _dlt_load_id, nothing else"

    return check


EXCHANGE_RATES = Target(
    name="exchange_rates",
    fake="frankfurter",
    seed=EXCHANGE_RATES_SCENARIO.seed,
    first_run={"backfill": True, "start_date": "2026-11-02", "end_date": "2026-11-13"},
    change=lambda fake: None,
    path="/rates",
    cases=[
        *storms(422, "injected HTTP 422"),
        Case(
            "truncated-ndjson",
            body(200, json.dumps(rate()) + "\n" + json.dumps(rate(quote="GBP"))[:30], NDJSON),
            error=("line 2 of the NDJSON stream is not JSON",),
        ),
        Case("wrong-types", ndjson(rate(rate="1.09")), error=("rate '1.09' is not a number",)),
        Case(
            "missing-primary-key",
            ndjson(rate(quote=...)),
            error=("None is not a three-letter ISO 4217 code",),
        ),
        Case("null-cursor", ndjson(rate(date=None)), error=("None is not a YYYY-MM-DD date",)),
        Case("duplicate-keys", ndjson(rate(), rate(rate=1.1)), error=("listed 2026-11-16 EUR/USD twice",)),
        Case(
            "huge-values",
            ndjson(rate(rate=1e300), rate(quote="GBP", rate=1e-300)),
            check=loaded_rates(
                [(dt.date(2026, 11, 16), "GBP", 1e-300), (dt.date(2026, 11, 16), "USD", 1e300)]
            ),
        ),
        Case("not-finite", ndjson(rate(rate=1e400)), error=("is not a positive number",)),
        Case("unicode", ndjson(rate(quote="ÜSD")), error=("'ÜSD' is not a three-letter ISO 4217 code",)),
        Case(
            "schema-drift",
            ndjson(rate(provider_note="blended", quote="GBP"), rate(quote="USD", rate=...)),
            error=("rate None is not a number",),
        ),
        Case(
            "new-field",
            ndjson(rate(provider_note="blended", quote="GBP"), rate(provider_note="blended")),
            check=loaded_rates(
                [(dt.date(2026, 11, 16), "GBP", 1.0923), (dt.date(2026, 11, 16), "USD", 1.0923)]
            ),
        ),
    ],
)


# hubspot (search endpoint of an incremental run, merge) --------------------------------------------
def record(fake: FakeHubSpot, **properties: Any) -> dict[str, Any]:
    """The changed contact as HubSpot's search answers it, with ``properties`` changed."""
    ids = sorted(fake.objects["contacts"])
    stored = fake.objects["contacts"][ids[0]]
    data = stored.as_json(sorted(stored.properties), "contacts")
    data["properties"].update(properties)
    return data


def search(*records: Callable[[FakeHubSpot], dict[str, Any]], drop: tuple[str, ...] = ()) -> Any:
    def inject(fake: FakeHubSpot) -> None:
        results = [r(fake) for r in records]
        for result in results:
            for key in drop:
                result.pop(key, None)
        body(200, json.dumps({"total": len(results), "results": results}), JSON)(fake)

    return inject


def first_contact(warehouse: Warehouse, columns: str) -> list[tuple[Any, ...]]:
    return warehouse.query(f"select {columns} from hubspot.contacts order by id limit 1")


def hubspot_check(columns: str, expected: tuple[Any, ...]) -> Any:
    def check(warehouse: Warehouse, fake: Any) -> None:
        assert first_contact(warehouse, columns) == [expected]
        assert warehouse.scalar("select count(*) - count(distinct id) from hubspot.contacts") == 0

    return check


def one_row_per_id(warehouse: Warehouse, fake: Any) -> None:
    """Merge keeps one row per id when a page lists a record twice (which copy: HubSpot's order)."""
    assert first_contact(warehouse, "firstname")[0][0] in ("One", "Two")
    assert warehouse.scalar("select count(*) from hubspot.contacts") == 5


def _hubspot_seed(fake: FakeHubSpot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__HUBSPOT__OBJECTS", '["contacts"]')
    fake.add("contacts", 5)


HUBSPOT = Target(
    name="hubspot",
    fake="hubspot",
    seed=_hubspot_seed,
    first_run={},
    change=lambda fake: fake.modify("contacts", sorted(fake.objects["contacts"])[:1], firstname="Changed"),
    path="/crm/v3/objects/contacts/search",
    cases=[
        *storms(400, "injected HTTP 400"),
        Case("truncated-json", body(200, '{"results": [{"id": "10', JSON), error=("not valid JSON",)),
        Case("wrong-types", body(200, '{"results": {"id": "1"}}', JSON), error=("no 'results' list",)),
        Case(
            "wrong-type-value",
            search(lambda f: record(f, num_notes="a lot")),
            check=hubspot_check("num_notes, num_notes__v_text", (None, "a lot")),
        ),
        Case("missing-primary-key", search(lambda f: record(f), drop=("id",)), error=("without an id",)),
        Case(
            "null-cursor",
            search(lambda f: record(f, lastmodifieddate=None), drop=("updatedAt",)),
            error=("has no lastmodifieddate",),
        ),
        Case(
            "duplicate-keys",
            search(lambda f: record(f, firstname="One"), lambda f: record(f, firstname="Two")),
            check=one_row_per_id,
        ),
        Case(
            "huge-values",
            search(lambda f: record(f, firstname="F" * HUGE)),
            check=hubspot_check("length(firstname)", (HUGE,)),
        ),
        Case(
            "unicode",
            search(lambda f: record(f, firstname=UNICODE)),
            check=hubspot_check("firstname", (UNICODE,)),
        ),
        Case(
            "schema-drift",
            search(lambda f: record(f, surprise_field="x")),
            check=hubspot_check("surprise_field", ("x",)),
        ),
    ],
)

TARGETS = [CURRENCIES, EXCHANGE_RATES, HUBSPOT]
STATE_CHECKS: dict[str, Scenario] = {"exchange_rates": EXCHANGE_RATES_SCENARIO, "hubspot": HUBSPOT_SCENARIO}
PINNED_ATTEMPTS = {"currencies", "exchange_rates"}
"""Targets whose request counts per storm are pinned here (HubSpot's are pinned in its own tests)."""


@pytest.mark.parametrize(
    ("target", "case"),
    [pytest.param(t, c, id=f"{t.name}-{c.name}") for t in TARGETS for c in t.cases],
)
def test_bad_input(
    target: Target,
    case: Case,
    request: pytest.FixtureRequest,
    warehouse: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib import import_module

    pipeline = import_module(f"pipelines.{target.name}")
    fake = request.getfixturevalue(target.fake)
    monkeypatch.setattr(fake, "bad_input_path", target.path, raising=False)
    target.seed(fake, monkeypatch)
    pipeline.run(**target.first_run)
    target.change(fake)
    before, loads = snapshot(warehouse, target.name), completed_loads(warehouse, target.name)
    state = stored_state(target.name)
    case.inject(fake)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", str(MAX_ATTEMPTS))
    sent_before = len(fake.requests_to(target.path))

    if case.error:
        with pytest.raises(PipelineStepFailed) as exc:
            pipeline.run()
        error = exc.value.run_report.error  # type: ignore[attr-defined]
        assert exc.value.step == "extract" and all(e in error for e in case.error), error
        if case.attempts is not None and target.name in PINNED_ATTEMPTS:
            sent = len(fake.requests_to(target.path)) - sent_before
            assert sent == case.attempts, f"{sent} requests to {target.path}, expected {case.attempts}"
        assert snapshot(warehouse, target.name) == before, "nothing half-loaded"
        assert completed_loads(warehouse, target.name) == loads and stored_state(target.name) == state
        assert pipeline.create_pipeline().has_pending_data is False
        return
    report = pipeline.run()
    assert report.status == "succeeded" and len(completed_loads(warehouse, target.name)) == len(loads) + 1
    assert case.check is not None
    case.check(warehouse, fake)
    if target.name in STATE_CHECKS:
        STATE_CHECKS[target.name].state_behind_data(stored_state(target.name), warehouse, fake)


# hubspot: retries observed, not only their final message -------------------------------------------
@pytest.mark.parametrize(
    ("status", "headers"),
    [(503, {}), (429, {"Retry-After": "0"}), (429, {})],
    ids=["5xx-storm", "429-storm", "429-storm-without-retry-after"],
)
def test_hubspot_storms_stop_after_the_configured_attempts(
    status: int,
    headers: dict[str, str],
    hubspot: FakeHubSpot,
    warehouse: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``RUNTIME__REQUEST_MAX_ATTEMPTS`` is 3 in tests: exactly 3 attempts, then a clear error. A 429
    without Retry-After waits HubSpot's window (capped by ``request_max_retry_delay``, 1 s here)."""
    from pipelines import hubspot as pipeline

    HUBSPOT.seed(hubspot, monkeypatch)
    pipeline.run()
    HUBSPOT.change(hubspot)
    hubspot.reset()
    hubspot.fail(status, times=100, path=HUBSPOT.path, headers=headers)
    started = time.monotonic()
    with pytest.raises(PipelineStepFailed) as exc:
        pipeline.run()
    elapsed = time.monotonic() - started
    assert f"HTTP {status}" in exc.value.run_report.error  # type: ignore[attr-defined]
    attempts = hubspot.requests_to(HUBSPOT.path)
    assert len(attempts) == 3, "bounded by request_max_attempts"
    if status == 429 and not headers:
        gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(attempts)]
        assert min(gaps) >= 0.9 and elapsed >= 1.8, gaps
