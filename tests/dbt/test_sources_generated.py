"""The dbt sources are generated with everything else: ``python -m tools.deployments --check`` fails
while one is stale or belongs to a pipeline no longer declared, and writing makes them current."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from declarations import declaration, pipelines
from tools import dbt_sources
from tools import deployments as generator


def test_every_declared_pipeline_has_its_source_file() -> None:
    files = {p.stem for p in dbt_sources.SOURCES_DIR.glob("*.yml")}
    assert files == set(pipelines())
    for name in files:
        [source] = yaml.safe_load((dbt_sources.SOURCES_DIR / f"{name}.yml").read_text())["sources"]
        schema_tables = {t["name"] for t in dbt_sources.load_schema(name).data_tables()}
        assert {t["name"] for t in source["tables"]} == schema_tables, "every raw table, nested ones too"


def test_check_fails_on_a_stale_or_orphaned_source_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = tmp_path / "sources"
    shutil.copytree(dbt_sources.SOURCES_DIR, sources)
    monkeypatch.setattr(dbt_sources, "SOURCES_DIR", sources)
    assert generator.main(["--check"]) == 0
    edited = (sources / "currencies.yml").read_text().replace("count: 8", "count: 9", 1)
    (sources / "currencies.yml").write_text(edited)
    (sources / "retired.yml").write_text("version: 2\n")
    capsys.readouterr()
    assert generator.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "-        count: 9" in out and "+        count: 8" in out
    assert "retired.yml: no declaration renders it any more (delete it)" in out
    assert generator.main([]) == 0 and generator.main(["--check"]) == 0, "writing makes them current"
    assert not (sources / "retired.yml").exists()
    assert (sources / "currencies.yml").read_bytes() == (
        dbt_sources.DBT_DIR / "models/sources/currencies.yml"
    ).read_bytes()


def test_a_pipeline_without_a_committed_schema_gets_its_declared_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline straight from the scaffolder: sources and freshness at once, columns once exported."""
    monkeypatch.setattr(dbt_sources, "SCHEMAS_DIR", tmp_path)
    text = dbt_sources.render_source(declaration("hubspot"))
    assert "tools.dbt_sources export hubspot" in text.splitlines()[2]
    [source] = yaml.safe_load(text)["sources"]
    assert [(t["name"], t["columns"]) for t in source["tables"]] == [
        (table, []) for table in sorted(declaration("hubspot").tables)
    ]
    assert source["config"]["freshness"]["warn_after"] == {"count": 30, "period": "hour"}


def test_loaded_at_is_the_newest_data_load_not_the_metrics_load_after_it() -> None:
    """dbt's freshness and the hourly check agree: the metrics load that follows each data load
    (utils/metrics.py) does not make a dataset look fresher than its data."""
    import datetime as dt

    import duckdb

    from utils.metrics import METRICS_SCHEMA

    db = duckdb.connect()
    db.execute(
        "create table _dlt_loads (load_id text, schema_name text, status bigint, inserted_at timestamp)"
    )
    data_load, metrics_load = dt.datetime(2026, 12, 1, 6), dt.datetime(2026, 12, 7, 6)
    db.execute(
        "insert into _dlt_loads values (?, 'currencies', 0, ?), (?, ?, 0, ?), ('3', 'currencies', 1, ?)",
        ["1", data_load, "2", METRICS_SCHEMA, metrics_load, metrics_load],
    )
    query = dbt_sources.LOADED_AT_QUERY.replace(
        '{{ this.incorporate(path={"identifier": "_dlt_loads"}) }}', "_dlt_loads"
    )
    assert "{{" not in query
    assert db.execute(query).fetchone() == (data_load,)
