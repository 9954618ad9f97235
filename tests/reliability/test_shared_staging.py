"""Two runs of different pipelines loading through one dataset's staging schema at the same moment.

dlt users have lost rows this way (dlt issue 2218): merge and replace go through ``<dataset>_staging``,
which dlt creates, truncates and reads per table. In this repository every pipeline has a dataset of its
own, so its staging schema has one writer at a time (single flight); the first test keeps it so. The
second shows what happens when two pipelines do share a dataset anyway (a second pipeline pointed at an
existing dataset): two real pipelines, through the shared runner and the house DuckDB destination, run
in two threads at once - three times, with changed rows each time. Each run must end with every row
exactly once, or fail clearly (dlt names the conflict and says a retry is safe) and leave the next run
to finish.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from tests.fixtures.warehouse import Warehouse
from utils.destinations import get_destination
from utils.runner import RunReport, run_pipeline

pytestmark = pytest.mark.reliability

DATASET = "shared"
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_pipeline_has_a_dataset_and_so_a_staging_schema_of_its_own(warehouse: Warehouse) -> None:
    datasets: dict[str, str] = {}
    for path in sorted((REPO_ROOT / "pipelines").glob("*.py")):
        module = importlib.import_module(f"pipelines.{path.stem}")
        if not hasattr(module, "create_pipeline"):
            continue
        pipeline = module.create_pipeline()
        assert pipeline.dataset_name not in datasets.values(), (
            f"{pipeline.pipeline_name} loads into {pipeline.dataset_name}, as {datasets} does: "
            "two pipelines would share its staging schema without single flight between them"
        )
        datasets[pipeline.pipeline_name] = pipeline.dataset_name
    assert len(datasets) >= 4, datasets


def shop(name: str, version: int) -> Any:
    """A source with a merge table and a replace table, named after the pipeline."""

    @dlt.resource(name=f"{name}_items", primary_key="id", write_disposition="merge")
    def items() -> Iterator[dict[str, Any]]:
        yield from ({"id": n, "price": n * version} for n in range(1, 201))

    @dlt.resource(name=f"{name}_prices", write_disposition="replace")
    def prices() -> Iterator[dict[str, Any]]:
        yield from ({"code": f"{name}-{n}", "version": version} for n in range(1, 51))

    @dlt.source(name=name)
    def source() -> Any:
        return items, prices

    return source()


def run_both(version: int) -> dict[str, RunReport | BaseException]:
    results: dict[str, RunReport | BaseException] = {}

    def run(name: str) -> None:
        pipeline = dlt.pipeline(
            pipeline_name=name, destination=get_destination("duckdb"), dataset_name=DATASET
        )
        try:
            results[name] = run_pipeline(pipeline, lambda: shop(name, version))
        except PipelineStepFailed as exc:
            results[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in ("shopa", "shopb")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def assert_exactly_once(warehouse: Warehouse, version: int) -> None:
    for name in ("shopa", "shopb"):
        items = warehouse.query(f"select id, price from {DATASET}.{name}_items order by id")
        assert items == [(n, n * version) for n in range(1, 201)], f"{name}_items: every row once, latest"
        prices = warehouse.query(f"select code, version from {DATASET}.{name}_prices order by code")
        assert sorted(prices) == sorted((f"{name}-{n}", version) for n in range(1, 51)), f"{name}_prices"


def test_two_pipelines_loading_through_one_staging_schema_at_once_lose_nothing(warehouse: Warehouse) -> None:
    outcomes = []
    for version in (1, 2, 3):
        results = run_both(version)
        failed = {name: r for name, r in results.items() if isinstance(r, BaseException)}
        for name, exc in failed.items():  # a clear failure is allowed; the next run must then finish
            assert isinstance(exc, PipelineStepFailed), exc
            assert "at the same time" in str(exc) and "retry is safe" in str(exc), exc
            pipeline = dlt.pipeline(
                pipeline_name=name, destination=get_destination("duckdb"), dataset_name=DATASET
            )
            run_pipeline(pipeline, lambda name=name, version=version: shop(name, version))  # type: ignore[misc]
        outcomes.append(
            f"v{version}: {len(failed)} failed and recovered" if failed else f"v{version}: both loaded"
        )
        assert_exactly_once(warehouse, version)
    print("; ".join(outcomes))
