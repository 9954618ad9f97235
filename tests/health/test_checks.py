"""Volume and schema checks on history seeded by real runs of the products pipeline (PostgreSQL -> DuckDB)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from pipelines import products
from pipelines.__main__ import main
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
    db.execute("update products set stock = stock + 1, updated_at = clock_timestamp() where id <= :n", n=rows)
    return products.run()


def checks(kind: str) -> dict[str, CheckResult]:
    return {r.table: r for r in table_checks(products.create_pipeline()) if r.check == kind and r.table}


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
