"""A bad declaration fails its own pipeline, naming the file and the field; the others still load."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import declarations


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the declarations in a temporary folder, read instead of the real one."""
    for path in declarations.DECLARATIONS.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(declarations, "DECLARATIONS", tmp_path)
    declarations.declaration.cache_clear()
    yield tmp_path
    declarations.declaration.cache_clear()


def test_a_bad_field_fails_that_pipeline_alone_naming_file_and_field(folder: Path) -> None:
    path = folder / "products.yaml"
    path.write_text(path.read_text().replace("cadence: daily", "cadence: fortnightly"))

    with pytest.raises(declarations.DeclarationError) as raised:
        declarations.declaration("products")
    message = str(raised.value)
    assert str(path) in message and "deployments.0.cadence" in message and "fortnightly" in message
    assert declarations.freshness_bound("currencies") > declarations.RETRY_ROOM
    assert declarations.owner("hubspot")
    assert "products" in declarations.pipelines()
    with pytest.raises(declarations.DeclarationError, match=r"products\.yaml"):
        declarations.declarations()  # the generators see every file, so they stop on the bad one


def test_broken_yaml_and_a_missing_schedule_are_named(folder: Path) -> None:
    (folder / "products.yaml").write_text("name: products\nowner: [unclosed\n")
    with pytest.raises(declarations.DeclarationError, match=r"products\.yaml: not valid YAML"):
        declarations.declaration("products")

    path = folder / "hubspot.yaml"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.lstrip().startswith("schedule:")))
    with pytest.raises(declarations.DeclarationError, match=r"hubspot\.yaml: freshness: .*declare"):
        declarations.freshness_bound("hubspot")


def test_an_unknown_pipeline_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: currencies, exchange_rates, hubspot, products"):
        declarations.declaration("nope")
