"""What a revenue team reads from HubSpot, end to end against the look-alike: owners and pipelines
(replaced each run), tickets, line items and the engagement objects (incremental, archived, associated),
custom objects and property history (opt-in), requests per object in the run report."""

from __future__ import annotations

import json

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import hubspot as pipeline
from sources.hubspot.source import DEFAULT_ASSOCIATIONS, DEFAULT_OBJECTS, ENGAGEMENTS
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.hubspot_records import PROPERTIES
from tests.fixtures.warehouse import Warehouse


@pytest.fixture
def revenue(hubspot: FakeHubSpot, warehouse: Warehouse) -> dict[str, list[int]]:
    """A small portal: owners (one deactivated), a deal and a ticket pipeline, and a few records of
    each object, with associations from tickets, line items and notes."""
    hubspot.add_owners(3)
    hubspot.add_owners(1, archived=True)
    hubspot.add_pipeline("deals", "default", "Sales", ["appointmentscheduled", "closedwon", "closedlost"])
    hubspot.add_pipeline("deals", "75e28846", "Renewals", ["open", "closedwon"])
    hubspot.add_pipeline("tickets", "0", "Support", ["new", "closed"])
    ids = {name: hubspot.add(name, 4) for name in ("contacts", "companies", "deals", "tickets", "line_items")}
    ids |= {name: hubspot.add(name, 3) for name in ENGAGEMENTS}
    hubspot.associate("tickets", "contacts", ids["tickets"][0], *ids["contacts"][:2])
    hubspot.associate("tickets", "deals", ids["tickets"][1], ids["deals"][0])
    hubspot.associate("line_items", "deals", ids["line_items"][0], ids["deals"][0])
    hubspot.associate("notes", "companies", ids["notes"][0], ids["companies"][1])
    return ids


def test_the_default_is_the_revenue_team_set(
    hubspot: FakeHubSpot, warehouse: Warehouse, revenue: dict[str, list[int]]
) -> None:
    report = pipeline.run()
    rows = report.rows_by_table
    for name in ("contacts", "companies", "deals", "tickets", "line_items", *ENGAGEMENTS):
        assert rows[name] == len(revenue[name]), name
    assert rows["owners"] == 4 and rows["pipelines"] == 3 and rows["pipelines__stages"] == 3 + 2 + 2
    assert rows["tickets__associated_contacts"] == 2 + 1  # the first link also carries the "Primary" label
    assert rows["tickets__associated_deals"] == 2 and rows["line_items__associated_deals"] == 2
    assert rows["notes__associated_companies"] == 2
    assert "products" not in rows, "no products in this portal, so no rows (the table is declared)"
    assert {"owners", "pipelines", "notes", "products"} <= set(DEFAULT_OBJECTS)
    # who owns it and which stage it is in: the reference tables join to the records
    assert warehouse.query(
        "select p.label, s.label, s.metadata__is_closed from hubspot.pipelines p"
        " join hubspot.pipelines__stages s on s._dlt_parent_id = p._dlt_id"
        " where p.object_type = 'deals' and s.id = 'closedwon'"
    ) == [("Sales", "Closedwon", "true")]
    assert warehouse.query("select count(*), count(*) filter (where archived) from hubspot.owners") == [
        (4, 1)
    ]
    assert warehouse.scalar("select count(*) from hubspot.owners__teams") == 2
    stamp = warehouse.query("select hs_timestamp from hubspot.calls limit 1")[0][0]
    assert stamp.year == 2026, "an engagement's hs_timestamp loads as a timestamp"


def test_owners_and_pipelines_are_replaced_each_run(
    hubspot: FakeHubSpot, warehouse: Warehouse, revenue: dict[str, list[int]]
) -> None:
    pipeline.run(objects=["owners", "pipelines"])
    hubspot.owners.pop(0)  # an owner removed from the portal
    hubspot.pipelines["deals"].pop()  # a pipeline deleted
    report = pipeline.run(objects=["owners", "pipelines"])
    assert report.rows_by_table["owners"] == 3 and report.rows_by_table["pipelines"] == 2
    assert warehouse.scalar("select count(*) from hubspot.owners") == 3
    assert warehouse.scalar("select count(*) from hubspot.pipelines") == 2
    assert warehouse.scalar("select count(*) from hubspot.pipelines__stages") == 3 + 2


def test_new_objects_load_incrementally_with_archived_records(
    hubspot: FakeHubSpot, warehouse: Warehouse, revenue: dict[str, list[int]]
) -> None:
    pipeline.run()
    hubspot.requests.clear()
    hubspot.modify("tickets", revenue["tickets"][:1], subject="Escalated")
    hubspot.modify("calls", revenue["calls"][:2], hs_call_body="called back")
    hubspot.archive("notes", revenue["notes"][:1])
    report = pipeline.run()
    assert report.rows_by_table["tickets"] == 1 and report.rows_by_table["calls"] == 2
    assert report.rows_by_table["notes"] == 1, "the archived note, flagged"
    assert "meetings" not in report.rows_by_table, "nothing changed, nothing read"
    assert warehouse.query("select subject from hubspot.tickets where subject = 'Escalated'") == [
        ("Escalated",)
    ]
    assert warehouse.scalar("select count(*) from hubspot.notes where archived") == 1
    assert warehouse.scalar("select count(*) from hubspot.calls") == 3, "merged on id, never duplicated"
    searches = [r for r in hubspot.requests if r.path == "/crm/v3/objects/calls/search"]
    filters = searches[0].json()["filterGroups"][0]["filters"]
    assert filters[0]["propertyName"] == "hs_lastmodifieddate" and filters[0]["operator"] == "GTE"


def test_429_on_owners_and_engagements_is_waited_out(
    hubspot: FakeHubSpot, warehouse: Warehouse, revenue: dict[str, list[int]]
) -> None:
    hubspot.fail(429, times=1, path="/crm/v3/owners", body='{"status": "error", "policyName": "SECONDLY"}')
    hubspot.fail(429, times=1, path="/crm/v3/objects/emails/search", body='{"policyName": "SECONDLY"}')
    report = pipeline.run(objects=["owners", "emails"])
    assert report.rows_by_table["owners"] == 4 and report.rows_by_table["emails"] == 3
    assert len(hubspot.requests_to("/crm/v3/objects/emails/search")) == 2


def test_the_run_report_counts_requests_per_object(
    hubspot: FakeHubSpot,
    warehouse: Warehouse,
    revenue: dict[str, list[int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = pipeline.run(objects=["tickets", "contacts", "deals", "owners", "pipelines"])
    # tickets: properties, one search page, associations to contacts and deals, the archived listing
    assert report.requests_by_object == {"tickets": 5, "contacts": 3, "deals": 4, "owners": 2, "pipelines": 2}
    assert pipeline.main(["--objects", "owners"]) == 0
    assert "- requests: 2 (owners 2)" in capsys.readouterr().out


def test_custom_objects_are_opt_in(
    hubspot: FakeHubSpot, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    cars = hubspot.add_custom_object("cars", [("model", "string", "text"), ("year", "number", "number")])
    boats = hubspot.add_custom_object("boats", [("hull", "string", "text")])
    hubspot.add(cars, 3)
    hubspot.add(boats, 2)
    assert "cars" not in pipeline.run(objects=["contacts"]).rows_by_table, "not without asking"
    monkeypatch.setenv("SOURCES__HUBSPOT__CUSTOM_OBJECTS", '["cars"]')
    report = pipeline.run(objects=["contacts"])
    assert report.rows_by_table["cars"] == 3 and "boats" not in report.rows_by_table
    assert hubspot.requests_to(f"/crm/v3/objects/{cars}/search"), "records read by object type id"
    monkeypatch.setenv("SOURCES__HUBSPOT__CUSTOM_OBJECTS", "*")
    assert pipeline.run(objects=["contacts"]).rows_by_table["boats"] == 2
    monkeypatch.setenv("SOURCES__HUBSPOT__CUSTOM_OBJECTS", '["planes"]')
    with pytest.raises(PipelineStepFailed) as exc:
        pipeline.run(objects=["contacts"])
    assert "planes not found" in str(exc.value) and "boats, cars" in str(exc.value)


def test_property_history_is_read_for_changed_records_only(
    hubspot: FakeHubSpot, warehouse: Warehouse, revenue: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__HUBSPOT__PROPERTY_HISTORY", json.dumps({"deals": ["dealstage", "amount"]}))
    first = pipeline.run(objects=["deals"])
    assert first.rows_by_table["deals__property_history"] == 4 * 2, "one entry per property so far"
    hubspot.requests.clear()
    hubspot.modify("deals", revenue["deals"][:1], dealstage="closedwon")
    second = pipeline.run(objects=["deals"])
    [read] = hubspot.requests_to("/crm/v3/objects/deals/batch/read")
    assert [i["id"] for i in read.json()["inputs"]] == [str(revenue["deals"][0])], "only the changed deal"
    assert read.json()["propertiesWithHistory"] == ["dealstage", "amount"]
    assert second.rows_by_table["deals__property_history"] == 3  # both old entries again, one new
    history = warehouse.query(
        "select value from hubspot.deals__property_history"
        f" where object_id = '{revenue['deals'][0]}' and property = 'dealstage' order by timestamp"
    )
    assert history == [("appointmentscheduled",), ("closedwon",)], "merged on its key: no duplicates"
    assert warehouse.scalar("select count(*) from hubspot.deals__property_history") == 4 * 2 + 1


def test_property_history_for_an_object_not_loaded_is_a_clear_error(
    hubspot: FakeHubSpot, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__HUBSPOT__PROPERTY_HISTORY", '{"tickets": ["hs_pipeline_stage"]}')
    with pytest.raises(PipelineStepFailed) as exc:
        pipeline.run(objects=["deals"])
    assert "property_history names tickets, which this run does not load" in str(exc.value)


@pytest.mark.parametrize("name", ["tickets", "products", "line_items", "quotes", *ENGAGEMENTS])
def test_each_new_object_is_incremental_archived_associated_and_survives_a_429(
    hubspot: FakeHubSpot, warehouse: Warehouse, name: str
) -> None:
    ids = hubspot.add(name, 3)
    [deal] = hubspot.add("deals", 1)
    linked = "deals" in DEFAULT_ASSOCIATIONS.get(name, [])
    if linked:
        hubspot.associate(name, "deals", ids[0], deal)
    hubspot.fail(429, times=1, path=f"/crm/v3/objects/{name}/search", body='{"policyName": "SECONDLY"}')
    first = pipeline.run(objects=[name, "deals"])
    assert first.rows_by_table[name] == 3 and len(hubspot.requests_to(f"/crm/v3/objects/{name}/search")) == 2
    if linked:
        assert first.rows_by_table[f"{name}__associated_deals"] == 2  # the link and its "Primary" label
    text_property = next(n for n, kind, _ in PROPERTIES[name] if kind == "string")
    hubspot.modify(name, ids[1:2], None, **{text_property: "changed"})
    hubspot.archive(name, ids[2:])
    second = pipeline.run(objects=[name, "deals"])
    assert second.rows_by_table[name] == 2, "the changed record and the archived one, nothing else"
    assert warehouse.query(
        f"select id, archived, {text_property} = 'changed' from hubspot.{name} order by id"
    ) == [
        (str(ids[0]), False, False),
        (str(ids[1]), False, True),
        (str(ids[2]), True, False),
    ]
