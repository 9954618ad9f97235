"""Fuzzed provider answers through whole pipeline runs into DuckDB, a sample per source (issue 20, item 3).

Each example starts from an empty warehouse and pipeline folder, loads once from the look-alike as it
is, then scripts one generated answer (the fake's fault injection) on the endpoint the next run reads
(the paths and first runs of ``tests/reliability/test_bad_input.py``) and runs again. A failed run
must fail the extract step with a typed error that names the provider and holds no secret, and leave
every data table, the completed loads and the stored state as they were, with nothing pending (no
partial load); a clean run must have loaded exactly the rows that were served. The leak trap checks
logs, output and dlt's trace and pipeline folder after every example.
"""

from __future__ import annotations

import datetime as dt
import itertools
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.frankfurter import FakeFrankfurter
from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.fuzz import pipeline_examples
from tests.fixtures.warehouse import Warehouse
from tests.fuzz.outcomes import check_error
from tests.fuzz.strategies import Served, mutated, served, with_duplicates
from tests.fuzz.test_parsing import FRANKFURTER_CURRENCY, HUBSPOT_PAGE, RATES
from tests.reliability.scenarios import completed_loads, snapshot, stored_state
from tests.reliability.test_bad_input import CURRENCIES, EXCHANGE_RATES, HUBSPOT, Target
from tests.reliability.test_secrets import HUBSPOT_CANARY, LeakTrap

pytestmark = [pytest.mark.fuzz, pytest.mark.reliability, pytest.mark.slow]

PROVIDER = {"currencies": "Frankfurter", "exchange_rates": "Frankfurter", "hubspot": "HubSpot"}
_RUNS = itertools.count()


def _fresh_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    run = tmp_path / f"example-{next(_RUNS)}"
    warehouse = Warehouse(path=run / "warehouse.duckdb", data_dir=run / "dlt")
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(warehouse.path))
    monkeypatch.setenv("DLT_DATA_DIR", str(warehouse.data_dir))
    return warehouse


def _run_example(
    target: Target,
    fake: Any,
    answer: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    leaks: LeakTrap,
    secrets: list[str],
) -> tuple[Warehouse, bool]:
    """Load once, serve ``answer``, run again; check the failed-run guarantees. True if the run loaded."""
    warehouse = _fresh_warehouse(tmp_path, monkeypatch)
    pipeline = import_module(f"pipelines.{target.name}")
    target.seed(fake, monkeypatch)
    pipeline.run(**target.first_run)
    target.change(fake)
    before, loads = snapshot(warehouse, target.name), completed_loads(warehouse, target.name)
    state = stored_state(target.name)
    leaks.reset()
    fake.fail(answer.status, times=3, path=target.path, body=answer.body, headers=answer.headers)
    try:
        pipeline.run()
    except PipelineStepFailed as exc:
        check_error(exc, PROVIDER[target.name], secrets)
        assert exc.step == "extract", f"failed in {exc.step}, after extraction: {exc}"
        assert snapshot(warehouse, target.name) == before, "a partial load"
        assert completed_loads(warehouse, target.name) == loads, "a load was recorded"
        assert stored_state(target.name) == state, "the state moved"
        assert pipeline.create_pipeline().has_pending_data is False
        loaded = False
    else:
        assert len(completed_loads(warehouse, target.name)) == len(loads) + 1
        loaded = True
    leaks.add_pipeline(pipeline.create_pipeline())
    leaks.assert_clean(secrets)
    return warehouse, loaded


@settings(max_examples=pipeline_examples())
@given(answer=served(with_duplicates(st.lists(FRANKFURTER_CURRENCY, max_size=4))))
def test_currencies_pipeline(
    answer: Served,
    frankfurter: FakeFrankfurter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    leaks: LeakTrap,
) -> None:
    frankfurter.reset()
    warehouse, loaded = _run_example(CURRENCIES, frankfurter, answer, tmp_path, monkeypatch, leaks, [])
    if loaded and answer.clean:
        served_rows = sorted((r["iso_code"], r["name"]) for r in answer.records)
        assert warehouse.query("select iso_code, name from currencies.currencies order by 1") == served_rows


RATE_RECORD = st.fixed_dictionaries(
    {
        "date": st.dates(dt.date(2026, 11, 10), dt.date(2026, 11, 22)).map(dt.date.isoformat),
        "base": st.just("EUR"),
        "quote": st.sampled_from(["GBP", "USD", "EUR", "JPY"]),
        "rate": RATES,
    }
).flatmap(mutated)
WINDOW = (dt.date(2026, 11, 14), dt.date(2026, 11, 20))
"""The days the run under test asks for: after the first run's backfill, up to the fake's today."""


@settings(max_examples=pipeline_examples())
@given(answer=served(with_duplicates(st.lists(RATE_RECORD, max_size=5)), content_type="application/x-ndjson"))
def test_exchange_rates_pipeline(
    answer: Served,
    frankfurter: FakeFrankfurter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    leaks: LeakTrap,
) -> None:
    frankfurter.reset()
    warehouse, loaded = _run_example(EXCHANGE_RATES, frankfurter, answer, tmp_path, monkeypatch, leaks, [])
    if loaded and answer.clean and "ndjson" in answer.headers.get("Content-Type", ""):
        expected = sorted(
            (day, r["quote"], r["rate"])
            for r in answer.records
            if WINDOW[0] <= (day := dt.date.fromisoformat(r["date"])) <= WINDOW[1] and r["quote"] != "EUR"
        )
        rows = warehouse.query(
            "select rate_date, quote_currency, rate from exchange_rates.rates"
            " where rate_date >= ? order by 1, 2",
            WINDOW[0],
        )
        assert rows == expected


@settings(max_examples=pipeline_examples())
@given(answer=served(HUBSPOT_PAGE))
def test_hubspot_pipeline(
    answer: Served,
    hubspot: FakeHubSpot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    leaks: LeakTrap,
) -> None:
    hubspot.clear()
    hubspot.token = HUBSPOT_CANARY
    monkeypatch.setenv("SOURCES__HUBSPOT__API_KEY", HUBSPOT_CANARY)
    warehouse, loaded = _run_example(HUBSPOT, hubspot, answer, tmp_path, monkeypatch, leaks, [HUBSPOT_CANARY])
    if loaded and answer.clean:
        ids = {row[0] for row in warehouse.query("select id from hubspot.contacts")}
        assert {str(r["id"]) for r in answer.records["results"]} <= ids, "a served record is missing"
        assert warehouse.scalar("select count(*) - count(distinct id) from hubspot.contacts") == 0
