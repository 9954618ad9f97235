"""Fuzzed values in PostgreSQL through the products pipeline into DuckDB (issue 20, item 3).

products has no provider answer to malform: PostgreSQL enforces its column types, so what can be odd
is the values themselves. Each example empties ``public.products`` (pgserver), writes five ordinary
rows plus generated ones (huge and unusual text, extreme and NaN prices, extreme integers, arbitrary
JSON, arrays with NULLs, dates and timestamps at PostgreSQL's extremes and ``infinity``, NULL cursors)
and loads into an empty warehouse. Allowed: a clean load holding every row with its values, or a
typed error (:class:`sources.products.ProductsDatabaseError`, or dlt's wrapping of it) that names
products, with nothing loaded.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.products.source import ProductsDatabaseError
from tests.fixtures.fuzz import pipeline_examples
from tests.fixtures.postgres import ProductsDb
from tests.fuzz.outcomes import check_error
from tests.fuzz.test_pipelines import _fresh_warehouse
from tests.reliability.scenarios import completed_loads, snapshot

pytestmark = [pytest.mark.fuzz, pytest.mark.reliability, pytest.mark.slow]

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
JSONB = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
PRICES = st.none() | st.just("NaN") | st.decimals("-9999999999.99", "9999999999.99", places=2).map(str)
DATES = (
    st.none()
    | st.sampled_from(["infinity", "-infinity", "4713-01-01 BC", "5874897-12-31"])
    | st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(dt.date.isoformat)
)
TIMESTAMPS = (
    st.none()
    | st.sampled_from(["infinity", "-infinity", "4713-01-01 00:00:00+00 BC"])
    | st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30), timezones=st.just(dt.UTC)).map(
        dt.datetime.isoformat
    )
)
PRODUCT = st.fixed_dictionaries(
    {
        "name": TEXT | st.sampled_from([10_000, 1_000_000]).map(lambda n: "N" * n),
        "price": PRICES,
        "currency": st.none()
        | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=3, max_size=3),
        "stock": st.none() | st.integers(-(2**31), 2**31 - 1),
        "is_active": st.none() | st.booleans(),
        "attributes": st.none() | JSONB.map(json.dumps),
        "tags": st.none() | st.lists(st.none() | TEXT, max_size=4),
        "sizes": st.none() | st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=4),
        "launched_on": DATES,
        "updated_at": TIMESTAMPS,
    }
)
INSERT = """
insert into public.products values (
    :id, cast(md5(cast(:id as text)) as uuid), :name, cast(:price as numeric), :currency, :stock,
    :is_active, cast(:attributes as jsonb), :tags, :sizes, cast(:launched_on as date),
    cast(:updated_at as timestamptz), null
)
"""


@settings(max_examples=pipeline_examples(per=20))
@given(products=st.lists(PRODUCT, min_size=1, max_size=4))
def test_products_pipeline(
    products: list[dict[str, Any]],
    products_db: ProductsDb,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipelines import products as pipeline

    products_db.execute("truncate public.products")
    products_db.add_products(1, 5)
    for offset, product in enumerate(products):
        products_db.execute(INSERT, id=100 + offset, **product)
    warehouse = _fresh_warehouse(tmp_path, monkeypatch)

    try:
        pipeline.run()
    except PipelineStepFailed as exc:
        check_error(exc, "products", [], (ProductsDatabaseError,))
        assert exc.step == "extract", f"failed in {exc.step}, after extraction: {exc}"
        if "_dlt_loads" in warehouse.tables("products"):
            assert not completed_loads(warehouse, "products"), "a load was recorded"
        assert all(not rows for rows in snapshot(warehouse, "products").values()), "a partial load"
        return
    rows = {r[0]: r[1:] for r in warehouse.query("select id, name, stock, price from products.products")}
    assert set(rows) == {1, 2, 3, 4, 5} | {100 + i for i in range(len(products))}
    for offset, product in enumerate(products):
        name, stock, price = rows[100 + offset]
        assert (name, stock) == (product["name"], product["stock"])
        if product["price"] not in (None, "NaN"):
            assert decimal.Decimal(str(price)) == decimal.Decimal(product["price"])
