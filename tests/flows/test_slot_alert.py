"""The checks flow (flows/freshness.py) on the Prefect test harness with products read by change
capture: a replication slot past its bound alerts once per episode, and the episode ends when the
pipeline confirms the slot (here: when the slot is drained)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.variables import Variable

import declarations
import flows.freshness as freshness_module
from declarations import Checks, ReplicationSlotCheck
from pipelines import products
from tests.fakes.webhook import FakeWebhook
from tests.fixtures.postgres import ProductsDb
from tests.fixtures.prefect import artifacts, run_flow, without_retry_delay
from tests.fixtures.warehouse import Warehouse
from tools import postgres_cdc
from utils.alerts import EPISODES_VARIABLE

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def slot(products_db: ProductsDb, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Products read by change capture through a slot of this test's own (dropped afterwards), with a
    bound of 1 MB; episodes cleared before and after."""
    without_retry_delay(monkeypatch, freshness_module, "check_freshness")
    Variable.set(EPISODES_VARIABLE, {}, overwrite=True)
    name = f"dp_flow_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SOURCES__PRODUCTS__SLOT_NAME", name)
    monkeypatch.setenv("SOURCES__PRODUCTS__PUBLICATION_NAME", name)
    declared = declarations.declaration("products")
    checks = Checks(replication_slot=ReplicationSlotCheck(max_retained_mb=1))
    changed = declared.model_copy(update={"checks": checks})
    monkeypatch.setattr("sources.products.slot.declaration", lambda _name: changed)
    yield name
    products_db.execute(
        "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
        " where slot_name = :name and not active",
        name=name,
    )
    Variable.set(EPISODES_VARIABLE, {}, overwrite=True)


def slot_rows() -> list[dict[str, Any]]:
    run = run_flow(freshness_module.freshness_flow, pipelines=["products"])
    assert run.state.is_completed(), run.state.message
    [table] = [a for a in artifacts(run.id) if a.key == "pipeline-checks"]
    return [r for r in json.loads(table.data) if r["check"] == "replication_slot"]


def test_a_slot_past_its_bound_alerts_once_per_episode(
    products_db: ProductsDb,
    warehouse: Warehouse,
    alert_webhook: FakeWebhook,
    slot: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    products.run()  # a fresh dataset, so the flow completes
    monkeypatch.setenv("SOURCES__PRODUCTS__CHANGE_CAPTURE", "logical")
    assert postgres_cdc.main(["setup"]) == 0
    [row] = slot_rows()
    assert row["state"] == "ok" and alert_webhook.messages == []

    products_db.execute(
        "create table filler (t text);"
        " insert into filler select repeat('x', 1000) from generate_series(1, 3000)"
    )
    [row] = slot_rows()
    assert row["state"] == "warn" and "past the bound of 1.0 MB" in row["detail"]
    slot_rows()  # the next hourly run: the same episode, no second message
    [message] = alert_webhook.messages
    assert message["subject"] == "data-pipelines: products source replication_slot WARN"
    assert f"slot {slot}" in message["text"]

    # what a run's confirmation does: the slot no longer holds that WAL back; the episode ends
    # (a checkpoint writes the running-transactions record the slot's restart point can move up to)
    products_db.execute("checkpoint")
    products_db.execute("select pg_replication_slot_advance(:name, pg_current_wal_lsn())", name=slot)
    [row] = slot_rows()
    assert row["state"] == "ok" and Variable.get(EPISODES_VARIABLE) == {}
