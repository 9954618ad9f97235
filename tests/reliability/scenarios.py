"""The pipelines the reliability suite runs, one :class:`Scenario` each, and the checks they share.

A scenario says how to seed its look-alike, what changes at the source between two runs, how to break
its extract part-way through, and how to check that the destination holds exactly what the source had
and that the incremental state stored with the data never claims more than was loaded. Every test in
``tests/reliability`` that is parametrised over :data:`SCENARIOS` then covers a new pipeline once it
has an entry here; ``test_scenarios.py`` fails while a declared pipeline has none.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from dlt.common.versioned_state import decompress_state

from pipelines import pipeline_module
from tests.fakes.frankfurter import FakeFrankfurter, catalogue_codes, is_working_day
from tests.fakes.hubspot import LAST_MODIFIED, FakeHubSpot
from tests.fixtures.postgres import ProductsSource
from tests.fixtures.warehouse import Warehouse
from utils.metrics import METRICS_SCHEMA, METRICS_TABLE

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Scenario:
    """One pipeline under fault: seed, change, break and check."""

    name: str
    """Pipeline module (``pipelines.<name>``), pipeline and dataset name."""
    disposition: str
    fake: str
    """The fixture that serves the pipeline's source (a look-alike API, or a database)."""
    seed: Callable[[Any, pytest.MonkeyPatch], None]
    """Configure and fill the source before the first run."""
    change: Callable[[Any], None]
    """What changes at the source between the first run and the run under test."""
    break_extract: Callable[[Any], None]
    """Make the run under test fail part-way through reading the source (after some data was read)."""
    expect: Callable[[Warehouse, Any], None]
    """Assert the destination holds exactly the source's data: nothing lost, nothing twice."""
    state_behind_data: Callable[[dict[str, Any] | None, Warehouse, Any], None]
    """Assert the cursor in a (destination) state covers only data that is loaded."""
    first_run: dict[str, Any] = field(default_factory=dict)
    second_run: dict[str, Any] = field(default_factory=dict)
    cli: tuple[str, ...] = ()
    """``python -m pipelines.<name>`` arguments equivalent to ``second_run``."""
    table: str = ""
    """The data table the run under test loads (a root table with nested tables where there is one)."""

    def __str__(self) -> str:
        return f"{self.name}-{self.disposition}"

    @property
    def module(self) -> ModuleType:
        return pipeline_module(self.name)

    def run(self, **options: Any) -> Any:
        return self.module.run(**options)


# shared checks -------------------------------------------------------------------------------------
def after_a_first_run(
    request: pytest.FixtureRequest, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The scenario's look-alike, seeded, after a first successful run into this test's warehouse and
    then changed; its requests are forgotten, so faults are scripted from here on."""
    fake = request.getfixturevalue(scenario.fake)
    request.getfixturevalue("warehouse")
    scenario.seed(fake, monkeypatch)
    scenario.run(**scenario.first_run)
    scenario.change(fake)
    fake.reset()
    return fake


def snapshot(warehouse: Warehouse, dataset: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every data table of ``dataset`` with all its rows, in a stable order (dlt's tables left out)."""
    return {
        table: sorted(warehouse.query(f'select * from {dataset}."{table}"'), key=repr)
        for table in sorted(warehouse.tables(dataset))
        if not table.startswith("_dlt") and table != METRICS_TABLE  # metrics: times and load ids
    }


def completed_loads(warehouse: Warehouse, dataset: str, *, metrics: bool = False) -> list[str]:
    """Completed data loads (and, with ``metrics``, the metrics loads that follow them, utils/metrics.py)."""
    rows = warehouse.query(
        f"select load_id from {dataset}._dlt_loads where status = 0 and schema_name <> ? order by 1",
        "" if metrics else METRICS_SCHEMA,
    )
    return [r[0] for r in rows]


def assert_rows_belong_to_completed_loads(warehouse: Warehouse, dataset: str) -> None:
    """No row of a load that never completed is visible in a data table (nor in ``_pipeline_metrics``)."""
    done = set(completed_loads(warehouse, dataset, metrics=True))
    for table in warehouse.tables(dataset):
        if table.startswith("_dlt"):
            continue
        columns = {
            r[0]
            for r in warehouse.query(
                "select column_name from information_schema.columns"
                " where table_schema = ? and table_name = ?",
                dataset,
                table,
            )
        }
        if "_dlt_load_id" in columns:
            loads = {r[0] for r in warehouse.query(f'select distinct _dlt_load_id from {dataset}."{table}"')}
            assert loads <= done, f"{table} holds rows of unfinished loads {sorted(loads - done)}"


def duplicates_report(warehouse: Warehouse, dataset: str, table: str, key: str) -> str:
    """Which loads wrote each copy of a duplicated ``key`` (and ``_dlt_id``), and the loads that completed.

    Put in the failure message of a "loaded twice" check, so that a rare failure explains itself: the
    same ``_dlt_id`` twice means one file was loaded twice (a job re-run); two ``_dlt_load_id`` values
    mean two loads each wrote the row.
    """
    copies = warehouse.query(
        f'select {key}, _dlt_load_id, _dlt_id from {dataset}."{table}" where {key} in'
        f' (select {key} from {dataset}."{table}" group by 1 having count(*) > 1) order by 1, 2, 3 limit 20'
    )
    loads = warehouse.query(f"select load_id, status, inserted_at from {dataset}._dlt_loads order by 1")
    return (
        f"copies (key, _dlt_load_id, _dlt_id): {copies}\n_dlt_loads (load_id, status, inserted_at): {loads}"
    )


def stored_state(name: str) -> dict[str, Any] | None:
    """The pipeline state the destination holds for its newest *completed* load (what a fresh worker
    restores), or None when nothing was loaded."""
    pipeline = pipeline_module(name).create_pipeline()
    with pipeline.destination_client() as client:
        info = client.get_stored_state(name)
    return decompress_state(info.state) if info else None


def source_state(state: dict[str, Any] | None, source: str) -> dict[str, Any]:
    """The state of ``source``; fails if no state was stored or it holds no entry for the source.

    Each scenario's check starts here, so a renamed or vanished state key fails the check instead of
    leaving it nothing to inspect.
    """
    assert state is not None, "the destination holds no pipeline state after a completed load"
    sources = state.get("sources")
    assert isinstance(sources, dict) and source in sources, f"the state holds no source {source!r}: {state}"
    return dict(sources[source])


def resource_state(state: dict[str, Any] | None, source: str, resource: str) -> dict[str, Any]:
    """The state of one resource; fails if the stored state has none for it."""
    resources = source_state(state, source).get("resources", {})
    assert resource in resources, f"the state holds nothing for {source}.{resource}: {resources}"
    return dict(resources[resource])


# currencies: replace ---------------------------------------------------------------------------------
def _currencies_expect(warehouse: Warehouse, fake: FakeFrankfurter) -> None:
    codes = [r[0] for r in warehouse.query("select iso_code from currencies.currencies order by 1")]
    assert codes == catalogue_codes(include_legacy=True), "the table is exactly the provider's full list"
    assert warehouse.scalar("select count(distinct _dlt_load_id) from currencies.currencies") == 1
    assert_rows_belong_to_completed_loads(warehouse, "currencies")


def _currencies_state(state: dict[str, Any] | None, warehouse: Warehouse, fake: FakeFrankfurter) -> None:
    # replace keeps no cursor: the whole list is read every run, so no state can run ahead of the data.
    # The state must still be there (it is what a fresh worker restores) and must stay cursor-free: a
    # cursor added later needs a real check here.
    assert source_state(state, "currencies").get("resources", {}) == {}, "a replace source grew a cursor"


CURRENCIES_SCENARIO = Scenario(
    name="currencies",
    disposition="replace",
    fake="frankfurter",
    seed=lambda fake, mp: None,
    change=lambda fake: None,  # the run under test adds the legacy currencies (include_legacy)
    break_extract=lambda fake: fake.fail(503, times=100, path="/currencies", after=1),
    expect=_currencies_expect,
    state_behind_data=_currencies_state,
    second_run={"include_legacy": True},
    cli=("--include-legacy",),
    table="currencies",
)


# exchange_rates: append ------------------------------------------------------------------------------
RATE_QUOTES = ("GBP", "USD")
RATES_FROM = dt.date(2024, 6, 1)


def _loaded_rates(warehouse: Warehouse) -> set[tuple[dt.date, str]]:
    rows = warehouse.query("select rate_date, quote_currency from exchange_rates.rates")
    loaded = set(rows)
    assert len(loaded) == len(rows), "a (date, quote) was written twice"
    return loaded


def _rates_expect(warehouse: Warehouse, fake: FakeFrankfurter) -> None:
    days = [RATES_FROM + dt.timedelta(n) for n in range((fake.latest - RATES_FROM).days + 1)]
    expected = {(d, q) for d in days if is_working_day(d) for q in RATE_QUOTES}
    assert _loaded_rates(warehouse) == expected
    assert_rows_belong_to_completed_loads(warehouse, "exchange_rates")


def _rates_state(state: dict[str, Any] | None, warehouse: Warehouse, fake: FakeFrankfurter) -> None:
    rates = resource_state(state, "exchange_rates", "rates")
    assert rates.get("coverage", {}).get("EUR"), f"the state holds no EUR coverage: {rates}"
    coverage = rates["coverage"]["EUR"]
    assert "rates" in warehouse.tables("exchange_rates"), "the state claims coverage, no rates table exists"
    loaded = _loaded_rates(warehouse)
    for selection, ranges in coverage.items():
        assert selection and ranges, f"an empty coverage entry {selection!r}: {ranges}"
        for start, end in ranges:
            assert start <= end, f"a reversed coverage range {start}..{end}"
            day = dt.date.fromisoformat(start)
            while day <= dt.date.fromisoformat(end):
                if is_working_day(day):
                    missing = {(day, q) for q in selection.split(",")} - loaded
                    assert not missing, f"the state says {day} is loaded, the table lacks {missing}"
                day += dt.timedelta(1)


def _rates_seed(fake: FakeFrankfurter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", json.dumps(list(RATE_QUOTES)))


EXCHANGE_RATES_SCENARIO = Scenario(
    name="exchange_rates",
    disposition="append",
    fake="frankfurter",
    seed=_rates_seed,
    change=lambda fake: None,  # the daily run under test reads 2025 and 2026 (one request per year)
    break_extract=lambda fake: fake.fail(503, times=100, path="/rates", after=1),
    expect=_rates_expect,
    state_behind_data=_rates_state,
    first_run={"backfill": True, "start_date": RATES_FROM.isoformat(), "end_date": "2024-12-31"},
    table="rates",
)


# hubspot: merge ----------------------------------------------------------------------------------------
HUBSPOT_OBJECTS = ("contacts", "companies", "deals")


def _hubspot_seed(fake: FakeHubSpot, monkeypatch: pytest.MonkeyPatch) -> None:
    contacts = fake.add("contacts", 150)
    companies = fake.add("companies", 10)
    fake.add("deals", 5)
    for n, contact in enumerate(contacts[:20]):
        fake.associate("contacts", "companies", contact, companies[n % 10])


def _hubspot_change(fake: FakeHubSpot) -> None:
    contacts = sorted(fake.objects["contacts"])
    fake.modify("contacts", contacts[:120], firstname="Changed")  # two search pages
    fake.add("contacts", 5, start=dt.datetime.now(dt.UTC), step_ms=1)
    fake.archive("companies", sorted(fake.objects["companies"])[:2])
    fake.modify("deals", sorted(fake.objects["deals"])[:3], amount="99.5")


def _ms(value: Any) -> int:
    return round(value.timestamp() * 1000)


def _loaded_records(warehouse: Warehouse, object_type: str) -> dict[str, tuple[int, bool]]:
    cursor = LAST_MODIFIED.get(object_type, "hs_lastmodifieddate")
    rows = warehouse.query(f"select id, {cursor}, archived from hubspot.{object_type}")
    loaded = {r[0]: (_ms(r[1]), r[2]) for r in rows}
    assert len(loaded) == len(rows), (
        f"{object_type}: an id was loaded twice\n{duplicates_report(warehouse, 'hubspot', object_type, 'id')}"
    )
    return loaded


def _hubspot_expect(warehouse: Warehouse, fake: FakeHubSpot) -> None:
    for object_type in HUBSPOT_OBJECTS:
        expected = {
            str(r.id): (r.modified_ms, r.archived_ms is not None) for r in fake.objects[object_type].values()
        }
        assert _loaded_records(warehouse, object_type) == expected, object_type
    assert warehouse.scalar("select count(*) from hubspot.contacts where firstname = 'Changed'") == 120
    assert_rows_belong_to_completed_loads(warehouse, "hubspot")


def _hubspot_state(state: dict[str, Any] | None, warehouse: Warehouse, fake: FakeHubSpot) -> None:
    # every object with a table has its cursor (a run may load only some objects: bad-input tests)
    loaded_objects = [o for o in HUBSPOT_OBJECTS if o in warehouse.tables("hubspot")]
    assert loaded_objects, "no HubSpot object table to check the state against"
    for object_type in loaded_objects:
        cursor = resource_state(state, "hubspot", object_type).get("modified_since_ms")
        assert isinstance(cursor, int), f"{object_type} was loaded but the state holds no cursor: {cursor!r}"
        loaded = _loaded_records(warehouse, object_type)
        for record in fake.objects[object_type].values():
            if record.modified_ms < cursor:
                assert loaded.get(str(record.id), (None,))[0] == record.modified_ms, (
                    f"the state says {object_type} changed before {cursor} are loaded, "
                    f"but {record.id} (changed at {record.modified_ms}) is missing or stale"
                )


HUBSPOT_SCENARIO = Scenario(
    name="hubspot",
    disposition="merge",
    fake="hubspot",
    seed=_hubspot_seed,
    change=_hubspot_change,
    # part-way: the first search page (every change, 200 a page) is read, then the archived listing fails
    break_extract=lambda fake: fake.fail(503, times=100, path="/crm/v3/objects/contacts", after=1),
    expect=_hubspot_expect,
    state_behind_data=_hubspot_state,
    table="contacts",
)


# products: merge from PostgreSQL ---------------------------------------------------------------------
def _products_change(source: ProductsSource) -> None:
    source.db.execute("update products set price = price + 1, updated_at = now() where id in (3, 7)")
    source.db.execute("update products set deleted_at = now(), updated_at = now() where id = 5")
    source.db.add_products(21, 22)


def _live_products(source: ProductsSource) -> dict[int, str]:
    engine = sa.create_engine(source.db.uri)
    with engine.connect() as con:
        rows = con.execute(
            sa.text(f"select id, price::text from {source.table} where deleted_at is null")
        ).all()
    engine.dispose()
    return {int(r[0]): str(r[1]) for r in rows}


def _loaded_products(warehouse: Warehouse) -> dict[int, str]:
    rows = warehouse.query("select id, price from products.products")
    loaded = {int(r[0]): f"{r[1]:.2f}" for r in rows}
    assert len(loaded) == len(rows), "a product was loaded twice"
    return loaded


def _products_expect(warehouse: Warehouse, source: ProductsSource) -> None:
    assert _loaded_products(warehouse) == _live_products(source), "exactly the live rows, merged"
    assert_rows_belong_to_completed_loads(warehouse, "products")


def _products_state(state: dict[str, Any] | None, warehouse: Warehouse, source: ProductsSource) -> None:
    products = resource_state(state, "products", "products")
    last = products.get("incremental", {}).get("updated_at", {}).get("last_value")
    assert last is not None, f"the state holds no updated_at cursor: {products}"
    engine = sa.create_engine(source.db.uri)
    with engine.connect() as con:
        covered = con.execute(
            sa.text(
                f"select id, price::text from {source.table} where deleted_at is null and updated_at <= :last"
            ),
            {"last": last},
        ).all()
    engine.dispose()
    assert covered, f"the cursor {last} covers no live product"
    loaded = _loaded_products(warehouse)
    for product_id, price in covered:
        assert loaded.get(int(product_id)) == str(price), (
            f"the state's cursor {last} covers product {product_id}, which is missing or stale"
        )


PRODUCTS_SCENARIO = Scenario(
    name="products",
    disposition="merge",
    fake="products_source",
    seed=lambda source, mp: None,  # the fixture's 20 products
    change=_products_change,
    break_extract=lambda source: source.go_offline(),
    expect=_products_expect,
    state_behind_data=_products_state,
    table="products",
)

SCENARIOS = [CURRENCIES_SCENARIO, EXCHANGE_RATES_SCENARIO, HUBSPOT_SCENARIO, PRODUCTS_SCENARIO]
"""Add a pipeline here (and nothing else) to run it through the fault and SIGKILL tests."""


def scenario_params() -> list[Any]:
    return [pytest.param(s, id=str(s)) for s in SCENARIOS]


# real processes ---------------------------------------------------------------------------------------
class PausedRun:
    """``python -m pipelines.<name>`` in a real subprocess, its load paused at the first data-table job.

    ``tests/reliability/pause_load.py`` wraps the CLI: when the load step starts the first job of a
    data table it writes ``marker`` (the table name) and waits until ``release()`` (or 60 s).
    """

    def __init__(
        self, scenario: Scenario, tmp: Path, *, pause: bool = True, kill_after_commit: str | None = None
    ) -> None:
        self.marker = tmp / f"{scenario.name}-{time.monotonic_ns()}.paused"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        if kill_after_commit:  # see pause_load.py: the process kills itself, nothing pauses
            env["RELIABILITY_KILL_AFTER_COMMIT"] = kill_after_commit
        if pause or kill_after_commit:
            env["RELIABILITY_PAUSE_MARKER"] = str(self.marker)
            command = [sys.executable, "-m", "tests.reliability.pause_load", f"pipelines.{scenario.name}"]
        else:
            command = [sys.executable, "-m", f"pipelines.{scenario.name}"]
        self.process = subprocess.Popen(
            [*command, *scenario.cli],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_until_loading(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.process.poll() is not None:
                out, err = self.process.communicate()
                code = self.process.returncode
                raise AssertionError(f"the run ended before loading ({code}):\n{out}\n{err}")
            assert time.monotonic() < deadline, "the run never reached its load step"
            time.sleep(0.05)
        table = self.marker.read_text()  # renamed into place whole by pause_load.py
        assert table, "the paused run named the table it was loading"
        return table

    def kill(self) -> int:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)
        return self.process.returncode

    def release(self) -> None:
        Path(f"{self.marker}.release").touch()

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err
