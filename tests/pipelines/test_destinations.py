"""Every pipeline's production destination and dataset, when ``DLT__DESTINATION`` is not set, are the
ones its declaration (``declarations/<name>.yaml``) names, which lineage reports."""

from __future__ import annotations

import pytest

from declarations import declaration, pipelines
from pipelines import pipeline_module

PIPELINES = pipelines()


@pytest.mark.parametrize("name", PIPELINES)
def test_default_destination_and_dataset(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLT__DESTINATION")
    pipeline = pipeline_module(name).create_pipeline()
    assert pipeline.pipeline_name == name
    assert pipeline.destination is not None
    expected = (declaration(name).destination, declaration(name).dataset)
    assert (pipeline.destination.destination_name, pipeline.dataset_name) == expected


def test_the_four_pipelines_are_found() -> None:
    assert {"currencies", "exchange_rates", "hubspot", "products"} <= set(PIPELINES)
