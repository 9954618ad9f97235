"""Fuzzed values in PostgreSQL through the products source (issue 20, item 3).

products has no provider answer to malform: PostgreSQL enforces its column types, so what can be odd
is the values themselves. Each example empties ``public.products`` (pgserver), writes five ordinary
rows plus 1-4 generated ones (huge and unusual text, extreme and NaN prices, extreme integers,
arbitrary JSON, JSON scalars and JSON nested up to 10,000 levels, arrays with NULLs, dates and
timestamps at PostgreSQL's extremes and ``infinity``, NULL cursors). Allowed: every row with its
values, or a typed error (:class:`sources.products.ProductsDatabaseError`, or dlt's wrapping of it)
that names products and not the connection's password, with nothing left to load.

- ``test_products_extraction`` (the parsing layer: 40 examples in CI, 2,000 locally): the products
  source itself, extracted and normalised by dlt without a load, on either route (``json_as_objects``
  off: Arrow and parquet, as for DuckDB; on: Arrow and parquet with arrays as JSON text too, as for
  Snowflake, whose load parses it); the normalised
  files are read back. One source per route serves every example (building one costs as much as
  reading), with a pipeline folder of its own per example.
- ``test_products_pipeline`` (a sample: 3 in CI, 100 locally): whole loads into an empty DuckDB,
  as ``pipelines/products.py`` runs them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from dlt.extract.source import DltSource
from dlt.pipeline.exceptions import PipelineStepFailed
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sources.products import products_source
from sources.products.source import ProductsDatabaseError
from tests.fixtures.fuzz import extraction_examples, pipeline_examples
from tests.fixtures.postgres import PRODUCT_ROWS, ProductsDb
from tests.fuzz.outcomes import check_error
from tests.fuzz.test_pipelines import _fresh_warehouse
from tests.reliability.scenarios import completed_loads, snapshot
from tests.reliability.test_secrets import LeakTrap

pytestmark = [pytest.mark.fuzz, pytest.mark.reliability, pytest.mark.slow]

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
JSONB = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
DEEP_JSON = st.tuples(st.integers(200, 10_000), st.booleans()).map(
    lambda deep: "[" * deep[0] + "]" * deep[0] if deep[1] else '{"a": ' * deep[0] + "1" + "}" * deep[0]
)  # around 252 (dlt's jsonl writer's limit) and past Python's parser (~1,000); PostgreSQL takes ~10,000


def rarely(odd: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``odd`` in about one value of eight: values a route refuses (NaN prices, infinity dates...),
    so rare that most examples of 1-4 rows still load and get their values checked."""
    return st.integers(0, 7).flatmap(lambda n: odd if n == 7 else usual)  # 0 is what hypothesis favours


PRICES = rarely(st.just("NaN"), st.none() | st.decimals("-9999999999.99", "9999999999.99", places=2).map(str))
DATES = rarely(
    st.sampled_from(["infinity", "-infinity", "4713-01-01 BC", "5874897-12-31"]),
    st.none() | st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(dt.date.isoformat),
)
TIMESTAMPS = rarely(
    st.sampled_from(["infinity", "-infinity", "4713-01-01 00:00:00+00 BC"]),
    st.none()
    | st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30), timezones=st.just(dt.UTC)).map(
        dt.datetime.isoformat
    ),
)
PRODUCT = st.fixed_dictionaries(
    {
        "name": TEXT | st.sampled_from([10_000, 1_000_000]).map(lambda n: "N" * n),
        "price": PRICES,
        "currency": st.none()
        | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=3, max_size=3),
        "stock": st.none() | st.integers(-(2**31), 2**31 - 1),
        "is_active": st.none() | st.booleans(),
        "attributes": rarely(DEEP_JSON, st.none() | JSONB.map(json.dumps)),
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


PG_CANARY = "CANARY-pg-password-4e1d7a90"  # pragma: allowlist secret
"""In the source's connection string; pgserver trusts local connections, so it is sent and ignored."""
ORDINARY = range(1, 6)
CHECKED = ("id", "name", "stock", "is_active", "tags", "sizes", "attributes", "price")


@dataclass
class Extraction:
    """A pipeline folder per example (DuckDB's capabilities, never loaded) and one products source
    per ``json_as_objects`` setting, shared by every example of a test: building a source creates its
    SQLAlchemy engine, and that (connection, dialect set-up) would double an example's time."""

    folder: Path
    sources: dict[bool, DltSource]
    engine: sa.Engine
    examples: Iterator[int] = field(default_factory=itertools.count)

    def pipeline(self) -> dlt.Pipeline:
        """A new pipeline (the previous example's folder removed): no state, schema or package left."""
        shutil.rmtree(self.folder, ignore_errors=True)
        return dlt.pipeline(
            pipeline_name=f"products_fuzz_{next(self.examples)}",
            pipelines_dir=str(self.folder),
            destination="duckdb",
            dataset_name="products",
        )

    def write(self, products: list[dict[str, Any]]) -> None:
        """``public.products``: the ordinary rows 1-5 and ``products`` as rows 100, 101..."""
        with self.engine.begin() as con:
            con.execute(sa.text("truncate public.products"))
            con.execute(sa.text(PRODUCT_ROWS), {"first": ORDINARY[0], "last": ORDINARY[-1]})
            con.execute(sa.text(INSERT), [{"id": 100 + i, **p} for i, p in enumerate(products)])

    @staticmethod
    def normalised_rows(pipeline: dlt.Pipeline, load_ids: list[str]) -> list[dict[str, Any]]:
        """The ``products`` rows of the normalised packages, as read back from their files."""
        rows: list[dict[str, Any]] = []
        for load_id in load_ids:
            for job in pipeline.get_load_package_info(load_id).jobs["new_jobs"]:
                if job.job_file_info.table_name != "products":
                    continue
                assert job.job_file_info.file_format == "parquet", "both routes keep Arrow and parquet"
                # only the checked columns: Python has no date past 9999 (PostgreSQL has)
                rows += pq.read_table(job.file_path, columns=list(CHECKED)).to_pylist()
        return rows


@pytest.fixture
def extraction(
    products_db: ProductsDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Extraction]:
    url = sa.make_url(products_db.uri).set(password=PG_CANARY)
    monkeypatch.setenv("SOURCES__PRODUCTS__CREDENTIALS", url.render_as_string(hide_password=False))
    engine = sa.create_engine(products_db.uri)
    yield Extraction(
        tmp_path / "dlt", {flag: products_source(json_as_objects=flag) for flag in (False, True)}, engine
    )
    engine.dispose()


def _exact_json(text: str | bytes) -> Any:
    """JSON with its numbers as decimals: jsonb keeps a number's digits, not its float (a float sent
    as ``3.176943157523297e+16`` is ``31769431575232970`` in PostgreSQL)."""
    return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


def _same_json(loaded: Any, sent: str | None) -> bool:
    """Whether a JSON column holds what was sent, as its text (PostgreSQL's form) on either route."""
    if sent is None or loaded is None:  # SQL NULL
        return sent is loaded
    try:
        return bool(_exact_json(loaded) == _exact_json(sent))
    except RecursionError:  # deeper than Python parses: PostgreSQL prints it as it was generated
        return bool(loaded == sent)


def _kind(reason: str) -> str:
    """What an error is about, for the statistics: its column and the words after it."""
    found = re.search(r"column (\w+): ([^(;]{0,40})", reason)
    return f"{found[1]}: {found[2].strip()}" if found else reason.split(" failed: ")[-1][:50]


@settings(max_examples=extraction_examples())
@given(products=st.lists(PRODUCT, min_size=1, max_size=4), json_as_objects=st.booleans())
def test_products_extraction(
    products: list[dict[str, Any]], json_as_objects: bool, extraction: Extraction, leaks: LeakTrap
) -> None:
    """The source itself, extracted and normalised without a load: every row with its values, or a
    typed error naming products (no password) with nothing extracted or normalised left behind.
    ``json_as_objects`` is the Snowflake setting (every JSON column as text), off the DuckDB one."""
    extraction.write(products)
    pipeline = extraction.pipeline()
    route = "json text" if json_as_objects else "parquet"
    leaks.reset()
    try:
        pipeline.extract(extraction.sources[json_as_objects], refresh="drop_sources")
        info = pipeline.normalize()
    except PipelineStepFailed as exc:
        reason = check_error(exc, "products", [PG_CANARY], (ProductsDatabaseError,))
        event(f"{route}: typed error, {_kind(reason)}")  # counted in --hypothesis-show-statistics
        assert exc.step == "extract", f"failed in {exc.step}, after extraction: {exc}"
        assert pipeline.has_pending_data is False, "a partial extract was left to load"
        leaks.add(str(exc))
        leaks.assert_clean([PG_CANARY])
        return
    event(f"{route}: clean")
    rows = extraction.normalised_rows(pipeline, info.loads_ids)
    leaks.add(str(pipeline.last_trace))
    leaks.assert_clean([PG_CANARY])
    by_id = {row["id"]: row for row in rows}
    assert len(rows) == len(by_id), "a row arrived twice"
    assert set(by_id) == {*ORDINARY, *(100 + i for i in range(len(products)))}
    for offset, product in enumerate(products):
        row = by_id[100 + offset]
        assert product["price"] != "NaN", "a NaN price loaded (numeric(12,2) in a decimal column)"
        for column in ("name", "stock", "is_active"):
            assert row.get(column) == product[column], column
        arrays = [row.get("tags"), row.get("sizes")]
        if json_as_objects:  # selected as PostgreSQL's to_json text
            arrays = [None if value is None else json.loads(value) for value in arrays]
        assert arrays == [product["tags"], product["sizes"]]  # Arrow lists on the DuckDB route
        assert _same_json(row.get("attributes"), product["attributes"])
        if product["price"] is None:
            assert row.get("price") is None
        else:
            assert decimal.Decimal(str(row["price"])) == decimal.Decimal(product["price"])
