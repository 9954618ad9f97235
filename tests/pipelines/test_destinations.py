"""Every pipeline's production destination and dataset, when ``DLT__DESTINATION`` is not set.

Snowflake, in a schema named after the pipeline, unless listed below.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PIPELINES = sorted(
    p.stem for p in (Path(__file__).parents[2] / "pipelines").glob("*.py") if not p.stem.startswith("_")
)
EXCEPTIONS = {
    # S3 for Snowpipe; the dataset is the first folder of the documented object layout
    "exchange_rates": ("filesystem", "exchange-rates"),
}


@pytest.mark.parametrize("name", PIPELINES)
def test_default_destination_and_dataset(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLT__DESTINATION")
    pipeline = importlib.import_module(f"pipelines.{name}").create_pipeline()
    assert pipeline.pipeline_name == name
    assert pipeline.destination is not None
    expected = EXCEPTIONS.get(name, ("snowflake", name))
    assert (pipeline.destination.destination_name, pipeline.dataset_name) == expected


def test_the_four_pipelines_are_found() -> None:
    assert {"currencies", "exchange_rates", "hubspot", "products"} <= set(PIPELINES)
