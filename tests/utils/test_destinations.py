"""DLT__DESTINATION and the local warehouse default."""

from __future__ import annotations

from pathlib import Path

import dlt
import duckdb
import pytest

from utils import destinations


def test_env_overrides_the_production_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLT__DESTINATION", " DuckDB ")
    assert destinations.destination_name("snowflake") == "duckdb"
    monkeypatch.delenv("DLT__DESTINATION")
    assert destinations.destination_name("filesystem") == "filesystem"
    assert destinations.get_destination().destination_name == "snowflake"


def test_unknown_destination_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLT__DESTINATION", "bigquery")
    with pytest.raises(destinations.DestinationConfigError, match="use one of snowflake, duckdb, filesystem"):
        destinations.get_destination()


def test_duckdb_follows_dlt_credentials_else_the_local_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", "/tmp/elsewhere.duckdb")
    assert destinations.duckdb_path() == "/tmp/elsewhere.duckdb"
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS")
    assert destinations.duckdb_path() == str(destinations.LOCAL_WAREHOUSE)
    assert destinations.LOCAL_WAREHOUSE.is_relative_to(destinations.REPO_ROOT)


def test_options_reach_only_the_production_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLT__DESTINATION")
    snowflake = destinations.get_destination("snowflake", replace_strategy="staging-optimized")
    assert snowflake.config_params.get("replace_strategy") == "staging-optimized"
    monkeypatch.setenv("DLT__DESTINATION", "duckdb")
    assert (
        destinations.get_destination("snowflake", replace_strategy="x").config_params.get("replace_strategy")
        != "x"
    )


def test_snowflake_gets_production_defaults_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLT__DESTINATION")
    params = destinations.get_destination("snowflake").config_params
    assert params["replace_strategy"] == "insert-from-staging" and params["keep_staged_files"] is False
    assert "{pipeline_name}" in params["query_tag"] and "{load_id}" in params["query_tag"]
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__KEEP_STAGED_FILES", "true")  # an operator's override wins
    assert "keep_staged_files" not in destinations.get_destination("snowflake").config_params
    pipeline_choice = destinations.get_destination("snowflake", replace_strategy="staging-optimized")
    assert pipeline_choice.config_params["replace_strategy"] == "staging-optimized"


def test_held_open_defers_duckdb_checkpoints_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While held, closing dlt's connections does not checkpoint (the WAL stays); leaving the block does."""
    path = tmp_path / "held.duckdb"
    wal = tmp_path / "held.duckdb.wal"
    monkeypatch.setenv("DLT__DESTINATION", "duckdb")
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(path))
    pipeline = dlt.pipeline(
        "held_open", destination=destinations.get_destination(), pipelines_dir=str(tmp_path)
    )
    with destinations.held_open(pipeline.destination):
        pipeline.run([{"n": n} for n in range(1000)], table_name="t")
        assert wal.exists() and wal.stat().st_size > 0
        with pipeline.sql_client() as client:
            assert client.execute_sql("select current_setting('preserve_insertion_order')") == [(False,)]
    assert not wal.exists() or wal.stat().st_size == 0
    with duckdb.connect(str(path), read_only=True) as check:
        assert check.execute("select count(*) from held_open_dataset.t").fetchone() == (1000,)


def test_held_open_does_nothing_for_other_destinations(tmp_path: Path) -> None:
    database = tmp_path / "held.duckdb"
    with destinations.held_open(dlt.destinations.duckdb(credentials=str(database))):
        assert database.exists(), "the control: a DuckDB destination's file is opened while held"
    database.unlink()
    # the same path in destinations that are not DuckDB (MotherDuck speaks DuckDB, but remotely)
    for other in (
        dlt.destinations.motherduck(credentials=str(database)),
        dlt.destinations.filesystem(bucket_url=str(tmp_path)),
        None,
    ):
        with destinations.held_open(other):
            assert list(tmp_path.iterdir()) == [], f"{other} opened a local database"
