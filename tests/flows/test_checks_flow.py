"""The checks flow (flows/freshness.py) on the Prefect test harness: a warning alerts once per episode
through the notification block, and a bad declaration fails only its own pipeline's checks."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.states import State
from prefect.variables import Variable

import declarations
import flows.freshness as freshness_module
import flows.products as products_flow
from pipelines import products
from tests.fakes.webhook import FakeWebhook
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.prefect import artifacts, asset_events, run_flow, without_retry_delay
from tests.fixtures.warehouse import Warehouse
from utils.alerts import EPISODES_VARIABLE

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(autouse=True)
def _no_episodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fast retries, and no episode left over from another test of the session's harness."""
    without_retry_delay(monkeypatch, freshness_module, "check_freshness")
    Variable.set(EPISODES_VARIABLE, {}, overwrite=True)
    yield
    Variable.set(EPISODES_VARIABLE, {}, overwrite=True)


def change(db: ProductsDb, sql: str | None = None) -> None:
    """Optionally alter the table, then touch five products and run the daily load."""
    if sql:
        db.execute(sql)
    db.execute("update products set updated_at = clock_timestamp() where id <= 5")
    products.run()


def check_products() -> list[dict[str, Any]]:
    """Run the checks flow for products (fresh, so the run completes); its ``pipeline-checks`` rows."""
    run = run_flow(freshness_module.freshness_flow, pipelines=["products"])
    assert run.state.is_completed(), run.state.message
    [table] = [a for a in artifacts(run.id) if a.key == "pipeline-checks"]
    return list(json.loads(table.data))


def test_a_schema_warning_alerts_once_per_episode(
    products_db: ProductsDb, warehouse: Warehouse, alert_webhook: FakeWebhook
) -> None:
    products_db.execute("update products set updated_at = now() - interval '1 day'")
    products.run()
    rows = check_products()
    assert {(r["table"], r["check"], r["state"]) for r in rows} == {
        (None, "freshness", "ok"),
        ("products", "volume", "ok"),
        ("products", "schema", "ok"),
    }
    assert alert_webhook.messages == []

    change(products_db, "alter table products add column colour text default 'red'")
    [schema] = [r for r in check_products() if r["check"] == "schema"]
    assert schema["state"] == "warn" and "new column(s): colour" in schema["detail"]
    check_products()  # the next hourly run: the same episode, no second message
    [message] = alert_webhook.messages
    assert message["subject"] == "data-pipelines: products products schema WARN"
    assert "Pipeline products, table products" in message["text"] and "colour" in message["text"]

    change(products_db)  # colour arrives as an ordinary column now: the episode ends
    check_products()
    assert len(alert_webhook.messages) == 1 and Variable.get(EPISODES_VARIABLE) == {}
    change(products_db, "alter table products add column size text default 'M'")
    check_products()
    assert len(alert_webhook.messages) == 2 and "size" in alert_webhook.messages[1]["text"], "a new episode"


def test_a_bad_checks_section_fails_that_pipeline_alone(
    products_db: ProductsDb, warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    products.run()
    for path in declarations.DECLARATIONS.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    bad = tmp_path / "currencies.yaml"
    bad.write_text(bad.read_text() + "checks:\n  volume: {sensitivity: -1}\n")
    monkeypatch.setattr(declarations, "DECLARATIONS", tmp_path)
    declarations.declaration.cache_clear()
    try:
        state: State[Any] = freshness_module.freshness_flow(["currencies", "products"], return_state=True)
    finally:
        declarations.declaration.cache_clear()
    assert state.is_failed() and "currencies.yaml: checks.volume.sensitivity" in str(state.message)
    [table] = [a for a in artifacts(state.state_details.flow_run_id) if a.key == "pipeline-checks"]
    states = {(r["pipeline"], r["table"], r["check"]): r["state"] for r in json.loads(table.data)}
    assert states == {
        ("currencies", None, "freshness"): "fail",
        ("products", None, "freshness"): "ok",
        ("products", "products", "volume"): "ok",
        ("products", "products", "schema"): "ok",
    }


def test_the_table_asset_carries_its_check_results(products_db: ProductsDb, warehouse: Warehouse) -> None:
    run = run_flow(products_flow.products_daily_flow)
    [event] = [e for e in asset_events(run.id, expect=1) if e.event.endswith(".succeeded")]
    assert event.payload["checks"] == [
        {
            "table": "products",
            "check": "volume",
            "state": "ok",
            "detail": "20 rows; not judged: 0 earlier load(s), 7 needed",
        },
        {"table": "products", "check": "schema", "state": "ok", "detail": "first load of the table"},
    ]
