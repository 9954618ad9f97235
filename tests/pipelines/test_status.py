"""`python -m pipelines status`: one line per pipeline, read from the warehouse (DuckDB and Snowflake)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

import declarations as catalogue
from pipelines import currencies
from pipelines.__main__ import main
from pipelines._status import collect, render_text
from tests.fakes.frankfurter import FakeFrankfurter, catalogue_codes
from tests.fixtures.snowflake import Snowflake
from tests.fixtures.warehouse import Warehouse

REPO_ROOT = Path(__file__).resolve().parents[2]
ACTIVE = len(catalogue_codes(include_legacy=False))


def lines_by_pipeline(text: str) -> dict[str, str]:
    header, *rows = text.splitlines()
    assert header.split()[:3] == ["pipeline", "owner", "schedule"]
    return {row.split()[0]: row for row in rows}


def test_every_pipeline_has_an_owner_and_the_scheduled_ones_a_schedule() -> None:
    assert catalogue.pipelines() == ["currencies", "exchange_rates", "hubspot", "products"]
    for name in catalogue.pipelines():
        assert catalogue.owner(name) == "data platform team (#data-platform)"
        assert catalogue.schedules(name), name
    assert catalogue.schedules("currencies") == ["0 6 * * 1 Europe/London"]


@pytest.fixture
def without_prefect() -> Iterator[None]:
    """No Prefect API, as on a laptop: a test harness that another test file started in this process
    (session-scoped, under xdist on whichever worker ran that file) must not lend its failed runs."""
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


@pytest.mark.usefixtures("without_prefect")
def test_status_after_a_load_on_duckdb(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    report = currencies.run()
    assert main(["status"]) == 0
    lines = lines_by_pipeline(capsys.readouterr().out)
    assert set(lines) == set(catalogue.pipelines())
    row = lines["currencies"]
    assert "duckdb:currencies" in row and "0 6 * * 1 Europe/London" in row and "8.0 days" in row
    assert f"  {ACTIVE}  " in row and " fresh " in row
    loaded = report.load_ids[0]
    expected = dt.datetime.fromtimestamp(float(loaded), dt.UTC)
    assert f"{expected:%Y-%m-%d}" in row
    for name in ("hubspot", "products", "exchange_rates"):
        assert " never " in lines[name] and " STALE " in lines[name], lines[name]

    assert main(["status", "--json", "currencies"]) == 0
    [data] = json.loads(capsys.readouterr().out)
    assert data["pipeline"] == "currencies" and data["state"] == "fresh"
    assert data["rows_in_last_load"] == ACTIVE and data["destination"] == "duckdb"
    assert data["bound_seconds"] == 8 * 24 * 3600 and 0 <= data["age_seconds"] < 600
    assert data["last_failure"] is None and data["error"] is None


def test_a_load_older_than_its_bound_is_stale(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    currencies.run()
    [fresh] = collect(["currencies"])
    assert fresh.state == "fresh"
    monkeypatch.setattr(catalogue, "freshness_bound", lambda name: dt.timedelta(0))
    [stale] = collect(["currencies"])
    assert stale.state == "STALE" and stale.rows_in_last_load == ACTIVE
    assert " STALE " in render_text([stale])


def test_the_rows_are_those_of_the_newest_load_only(
    frankfurter: FakeFrankfurter, warehouse: Warehouse
) -> None:
    currencies.run(include_legacy=True)
    currencies.run()
    [status] = collect(["currencies"])
    assert status.rows_in_last_load == ACTIVE < len(catalogue_codes(include_legacy=True))


def test_the_command_runs_as_the_docs_show(frankfurter: FakeFrankfurter, warehouse: Warehouse) -> None:
    currencies.run()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "status"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert " fresh " in lines_by_pipeline(done.stdout)["currencies"]
    assert "\x1b" not in done.stdout


@pytest.mark.snowflake
def test_status_on_snowflake(frankfurter: FakeFrankfurter, snowflake: Snowflake) -> None:
    currencies.run()
    statuses = {s.pipeline: s for s in collect()}
    assert set(statuses) == set(catalogue.pipelines())
    loaded = statuses["currencies"]
    assert loaded.destination == "snowflake" and loaded.state == "fresh", loaded
    assert loaded.rows_in_last_load == ACTIVE
    for name in ("hubspot", "products"):
        assert statuses[name].destination == "snowflake"
        assert statuses[name].last_load is None and statuses[name].state == "STALE", statuses[name]
