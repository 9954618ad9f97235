"""Volume and schema checks on history seeded by real runs of the products pipeline (PostgreSQL -> DuckDB)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from types import ModuleType

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from pipelines import exchange_rates, products
from pipelines.__main__ import main
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.warehouse import Warehouse
from utils.checks import CheckResult, table_checks
from utils.report import RunReport

ORDINARY = (2000, 2210, 2400, 2130, 2320, 2050, 2380, 2160, 2270)
"""Changed rows per daily load after the first full load of 2,400: ten ordinary loads in all."""


@pytest.fixture(autouse=True)
def quick_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No Prefect API (status reads the warehouse only), and one worker that keeps its pipeline folder:
    no state sync from the warehouse before each of the many runs (the runner's sync has its own tests)."""
    monkeypatch.setenv("RESTORE_FROM_DESTINATION", "false")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


def change(db: ProductsDb, rows: int) -> RunReport:
    """Touch products 1..``rows`` in PostgreSQL and run the daily load, which reads just those."""
    db.execute("update products set price = price + 1, updated_at = clock_timestamp() where id <= :n", n=rows)
    return products.run()


def checks(kind: str, module: ModuleType = products) -> dict[str, CheckResult]:
    """The ``kind`` check of each table of ``module``'s pipeline, as the warehouse's metrics give it."""
    return {r.table: r for r in table_checks(module.create_pipeline()) if r.check == kind and r.table}


def test_a_collapse_warns_once_the_history_is_long_enough_and_clears_on_the_next_ordinary_load(
    products_db: ProductsDb, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    products_db.add_products(21, 2400)
    products_db.execute("update products set updated_at = now() - interval '1 day'")  # not in the future
    assert products.run().rows_by_table == {"products": 2400}
    for rows in ORDINARY[:3]:
        assert change(products_db, rows).rows_by_table == {"products": rows}
    early = checks("volume")["products"]
    assert early.state == "ok" and "not judged: 3 earlier load(s), 7 needed" in early.detail, early
    assert change(products_db, 3).rows_by_table == {"products": 3}
    assert "not judged" in checks("volume")["products"].detail, "too little history: no judgement"

    for rows in ORDINARY[3:]:
        change(products_db, rows)
    assert checks("volume")["products"].state == "ok"
    change(products_db, 3)
    collapse = checks("volume")["products"]
    assert collapse.state == "warn", collapse
    assert collapse.detail.startswith("collapse: 3 rows in load ") and "median 2," in collapse.detail

    assert main(["status", "--json", "products"]) == 0
    [status] = json.loads(capsys.readouterr().out)
    assert collapse.as_dict() in status["checks"]
    assert main(["status", "products"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("  warn: products volume")

    change(products_db, 2240)
    assert checks("volume")["products"].state == "ok"


def test_a_new_column_is_reported_and_a_dropped_one_warns_while_it_stays_away(
    products_db: ProductsDb, warehouse: Warehouse
) -> None:
    products_db.execute("update products set updated_at = now() - interval '1 day'")
    products.run()
    change(products_db, 5)
    assert checks("schema")["products"].state == "ok"

    products_db.execute("alter table products add column colour text default 'red'")
    change(products_db, 5)
    added = checks("schema")["products"]
    assert added.state == "warn" and added.detail.endswith("new column(s): colour"), added
    change(products_db, 5)
    assert checks("schema")["products"].state == "ok", "reported once: the column now arrives"

    products_db.execute("alter table products drop column stock")
    products_db.execute("update products set updated_at = clock_timestamp() where id <= 5")
    products.run()
    assert warehouse.scalar("select count(stock) from products.products where id <= 5") == 0
    dropped = checks("schema")["products"]
    assert dropped.state == "warn" and "stopped arriving: stock (NULL since 1 load(s))" in dropped.detail
    products_db.execute("update products set updated_at = clock_timestamp() where id <= 5")
    products.run()
    assert "stock (NULL since 2 load(s))" in checks("schema")["products"].detail, "it lasts while it lasts"


def test_exchange_rates_over_a_holiday_do_not_warn(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__EXCHANGE_RATES__QUOTES", '["USD", "GBP"]')
    days = [dt.date(2025, 12, 12) + dt.timedelta(days=n) for n in range(15)]  # Fri 12th to Fri 26th
    loads = {}
    for day in (d for d in days if d.weekday() < 5):  # the deployment runs Monday to Friday
        frankfurter.today = day
        monkeypatch.setenv("SOURCES__EXCHANGE_RATES__AS_OF", day.isoformat())
        loads[day] = exchange_rates.run().rows_by_table.get("rates", 0)
        if day == dt.date(2025, 12, 24):
            assert checks("volume", exchange_rates)["rates"].state == "ok"
    assert loads[dt.date(2025, 12, 25)] == loads[dt.date(2025, 12, 26)] == 0, "no rates on a holiday"
    recorded = warehouse.scalar("select count(*) from exchange_rates._pipeline_metrics")
    assert recorded == sum(1 for rows in loads.values() if rows), "a run that loads nothing records nothing"
    holiday = checks("volume", exchange_rates)["rates"]
    assert holiday.state == "ok" and "median 2 of the last 8 loads" in holiday.detail, holiday
