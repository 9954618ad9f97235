"""The dbt package in ``dbt/`` with the real tools: dbt-core, dbt-duckdb and prefect-dbt.

An analytics project installs the package as a local package, builds a model on a source and checks
the source's freshness; run through prefect-dbt's ``PrefectDbtRunner`` on the Prefect test harness,
the model's asset lists the load's asset as its upstream, so the lineage runs API -> raw table -> model.
On Snowflake (no account, no dbt-snowflake here) the keys are compared with the ones prefect-dbt
gives the relation names dbt-snowflake renders: the generated Jinja rendered by dbt's own renderer
for a ``snowflake`` target, and the relation by dbt's ``BaseRelation`` with dbt-snowflake's quote
policy (``SnowflakeQuotePolicy``: nothing quoted).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from dbt.adapters.base.relation import BaseRelation
from dbt.cli.main import dbtRunner
from dbt.clients.jinja import get_rendered
from prefect import flow
from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings
from prefect_dbt.utilities import format_resource_id

import flows.currencies as currencies_flow
from declarations import declaration, declarations
from pipelines import pipeline_module
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fixtures.prefect import asset_events, run_flow
from tests.fixtures.warehouse import Warehouse
from tools import dbt_sources
from utils.lineage import table_keys

SUCCEEDED = "prefect.asset.materialization.succeeded"
SNOWFLAKE_QUOTING = {"database": False, "schema": False, "identifier": False}
"""dbt-snowflake's ``SnowflakeQuotePolicy`` (dbt/adapters/snowflake/relation.py): relation names
render unquoted, exactly as the sources spell them."""


def analytics_project(root: Path, warehouse: Path) -> Path:
    """A scratch analytics project: the package from ``dbt/`` as a local package, one model on a source,
    and a DuckDB profile on the warehouse the pipelines load into."""
    root.mkdir()
    files = {
        "dbt_project.yml": "name: analytics\nversion: '1.0.0'\nconfig-version: 2\nprofile: analytics\n",
        "packages.yml": f"packages:\n  - local: {dbt_sources.DBT_DIR}\n",
        "profiles.yml": f"""\
            analytics:
              target: dev
              outputs:
                dev: {{type: duckdb, path: "{warehouse}", schema: analytics, threads: 1}}
            """,
        "models/currency_names.sql": (
            "select iso_code, name from {{ source('currencies', 'currencies') }} where is_active\n"
        ),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def dbt(project: Path, *args: str) -> Any:
    """One in-process dbt invocation on ``project``; fails the test with dbt's own error."""
    result = dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project)])
    assert result.success, f"dbt {' '.join(args)} failed: {result.exception or result.result}"
    return result.result


def claims(flow_run_id: Any, expect: int) -> dict[str, Any]:
    events = asset_events(flow_run_id, expect=expect)
    return {e.resource.id: e for e in events if e.event == SUCCEEDED}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_model_on_our_sources_lists_the_load_as_its_upstream(
    frankfurter: FakeFrankfurter, warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    load = run_flow(currencies_flow.currencies_flow)
    [load_key] = claims(load.id, expect=1)
    assert load_key == f"duckdb://{warehouse.path.stem}/currencies/currencies"

    project = analytics_project(tmp_path / "analytics", warehouse.path)
    dbt(project, "deps")
    built = dbt(project, "build", "--select", "source:currencies+")
    outcomes = {r.node.name: str(r.status) for r in built}
    assert outcomes == {
        "source_unique_currencies_currencies_iso_code": "pass",
        "source_not_null_currencies_currencies_iso_code": "pass",
        "currency_names": "success",
    }, "the package's key tests ran and passed, and the model built"
    [freshness] = dbt(project, "source", "freshness", "--select", "source:currencies")
    assert str(freshness.status) == "pass" and freshness.age < 600, "fresh: loaded moments ago"

    @flow
    def transform() -> None:
        settings = PrefectDbtSettings(project_dir=project, profiles_dir=project)
        PrefectDbtRunner(settings=settings).invoke(["run", "--select", "currency_names"])

    run = run_flow(transform)
    model = claims(run.id, expect=1)[f"duckdb://{warehouse.path.stem}/analytics/currency_names"]
    upstream = {r.id for r in model.related if r.role == "asset"}
    assert upstream == {load_key}, "the model's upstream is the asset our load materialised"


def rendered_for_snowflake(text: str) -> str:
    """``text`` as dbt renders source properties for a Snowflake target with no vars or env set."""
    context = {
        "target": {"type": "snowflake", "name": "prod"},
        "var": lambda name, default=None: default,
        "env_var": lambda name, default=None: default,
    }
    return str(get_rendered(text, context))


def test_snowflake_keys_are_prefect_dbts_for_the_relations_dbt_snowflake_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every raw table of every pipeline that loads Snowflake, nested tables included."""
    monkeypatch.setenv("DLT__DESTINATION", "snowflake")
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    credentials = {
        "DATABASE": "raw",
        "HOST": "acme-prod",
        "USERNAME": "SVC_DLT",
        "PASSWORD": "unused",  # pragma: allowlist secret
    }
    for name, value in credentials.items():
        monkeypatch.setenv(f"DESTINATION__SNOWFLAKE__CREDENTIALS__{name}", value)
    on_snowflake = [d for d in declarations().values() if d.destination == "snowflake"]
    assert on_snowflake
    for spec in on_snowflake:
        [source] = yaml.safe_load((dbt_sources.SOURCES_DIR / f"{spec.name}.yml").read_text())["sources"]
        tables = {t["name"]: t for t in source["tables"]}
        assert set(tables) == {t["name"] for t in dbt_sources.load_schema(spec.name).data_tables()}
        ours = table_keys(pipeline_module(spec.name).create_pipeline(), list(tables))
        for name, table in tables.items():
            relation = BaseRelation.create(
                database=rendered_for_snowflake(source["database"]),
                schema=rendered_for_snowflake(source["schema"]),
                identifier=rendered_for_snowflake(table["identifier"]),
                quote_policy=SNOWFLAKE_QUOTING,
            )
            assert ours[name] == format_resource_id("snowflake", relation.render()), f"{spec.name}.{name}"
    assert ours[name].startswith(f"snowflake://RAW/{spec.name.upper()}/")


def test_freshness_is_the_declared_bound() -> None:
    for spec in declarations().values():
        [source] = yaml.safe_load((dbt_sources.SOURCES_DIR / f"{spec.name}.yml").read_text())["sources"]
        hours = {"minute": 1 / 60, "hour": 1, "day": 24}
        warn, error = (source["config"]["freshness"][k] for k in ("warn_after", "error_after"))
        bound = declaration(spec.name).freshness_bound.total_seconds() / 3600
        assert warn["count"] * hours[warn["period"]] == bound, spec.name
        assert error["count"] * hours[error["period"]] == dbt_sources.ERROR_FACTOR * bound, spec.name
