"""What derives from the declarations is current: ``prefect.yaml``, ``docs/lineage.md`` and the README's
pipeline table are exactly what ``python -m tools.deployments`` renders, and say what was declared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from declarations import Declaration, declarations, pipelines
from tests.deploy.project import REPO_ROOT, deployment, deployments
from tools import deployments as generator


def test_generated_files_are_current() -> None:
    diffs = generator.stale()
    assert not diffs, "stale, run `uv run python -m tools.deployments`:\n" + "\n".join(diffs.values())


def test_rendering_twice_gives_the_same_bytes() -> None:
    assert generator.render() == generator.render()


def test_check_fails_with_a_diff_when_a_file_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO_ROOT / "docs", tmp_path / "docs")
    for name in ("prefect.yaml", "README.md"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    for name, path in {"REPO_ROOT": "", "PREFECT_YAML": "prefect.yaml", "LINEAGE": "docs/lineage.md"}.items():
        monkeypatch.setattr(generator, name, tmp_path / path)
    monkeypatch.setattr(generator, "README", tmp_path / "README.md")
    assert generator.main(["--check"]) == 0
    edited = (tmp_path / "prefect.yaml").read_text().replace('cron: "30 5 * * *"', 'cron: "0 5 * * *"', 1)
    (tmp_path / "prefect.yaml").write_text(edited)
    (tmp_path / "docs" / "lineage.md").unlink()
    capsys.readouterr()
    assert generator.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert '-      - cron: "0 5 * * *"' in out and '+      - cron: "30 5 * * *"' in out
    assert "stale: prefect.yaml, docs/lineage.md;" in out
    assert generator.main([]) == 0 and generator.main(["--check"]) == 0, "writing makes it current"
    assert (tmp_path / "prefect.yaml").read_bytes() == (REPO_ROOT / "prefect.yaml").read_bytes()


def test_every_pipeline_module_has_a_declaration() -> None:
    """The one place that looks at files: a pipeline module nobody declared would never be deployed."""
    modules = {p.stem for p in (REPO_ROOT / "pipelines").glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(pipelines()), "declare it in declarations/<name>.yaml"


@pytest.mark.parametrize("declaration", declarations().values(), ids=lambda d: d.name)
def test_deployments_say_what_was_declared(declaration: Declaration) -> None:
    for declared in declaration.deployments:
        entry = deployment(declared.name)
        assert entry["entrypoint"] == f"flows/{declaration.name}.py:{declared.flow}"
        assert entry["description"] == declared.description
        assert entry["tags"] == ["dlt", declaration.name, declared.cadence, *declaration.tags]
        assert entry["parameters"] == declared.parameters
        schedule = declared.schedule
        assert entry["schedules"] == ([schedule.model_dump()] if schedule else [])


def test_only_declared_deployments_and_the_freshness_check() -> None:
    declared = {d.name for decl in declarations().values() for d in decl.deployments}
    assert {d["name"] for d in deployments()} == declared | {"freshness-check"}


@pytest.mark.parametrize("declaration", declarations().values(), ids=lambda d: d.name)
def test_lineage_and_readme_show_every_pipeline(declaration: Declaration) -> None:
    lineage = (REPO_ROOT / "docs" / "lineage.md").read_text(encoding="utf-8")
    assert f'[["{declaration.name}"]]' in lineage
    for uri in declaration.upstream:
        assert f'["{uri}"]' in lineage
    for table in declaration.tables:
        assert f'[("{declaration.destination}:{declaration.dataset}.{table}")]' in lineage
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index(generator.TABLE_START) : readme.index(generator.TABLE_END)]
    assert f"`{declaration.name}`" in table and declaration.description in table


def test_a_tag_the_generator_sets_cannot_be_declared() -> None:
    [name, *_] = pipelines()
    clashing = declarations()[name].model_copy(update={"tags": ["daily"]})
    with pytest.raises(ValueError, match=r"tags \['daily'\] are set by the generator"):
        generator.deployments({name: clashing})


def test_long_descriptions_fold_and_read_back() -> None:
    text = "word " * 60 + "end: with a colon # and a hash"
    rendered = yaml.safe_load("description: " + generator.folded(text))
    assert rendered == {"description": text}
    assert yaml.safe_load("d: " + generator.folded("a: b")) == {"d": "a: b"}
