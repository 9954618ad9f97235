"""The hubspot pipeline end to end: look-alike HubSpot -> dlt -> DuckDB, queried back."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections import Counter
from pathlib import Path

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines import hubspot as pipeline
from tests.fakes.hubspot import FakeHubSpot
from tests.fixtures.warehouse import Warehouse


def requests_by_kind(fake: FakeHubSpot, object_type: str) -> Counter[str]:
    """What one run asked of the look-alike about one object."""
    kinds: Counter[str] = Counter()
    for r in fake.requests:
        if r.path == f"/crm/v3/properties/{object_type}":
            kinds["properties"] += 1
        elif r.path == f"/crm/v3/objects/{object_type}/search":
            kinds["search"] += 1
        elif r.path == f"/crm/v3/objects/{object_type}":
            kinds["archived" if r.param("archived") == "true" else "list"] += 1
        elif r.path == f"/crm/v3/objects/{object_type}/batch/read":
            kinds["batch_read"] += 1
        elif r.path.startswith(f"/crm/v4/associations/{object_type}/"):
            kinds["associations"] += 1
    return kinds


@pytest.fixture
def crm(hubspot: FakeHubSpot, warehouse: Warehouse) -> dict[str, list[int]]:
    """A small CRM: 250 contacts, 20 companies, 30 deals, some associations."""
    ids = {
        "contacts": hubspot.add("contacts", 250),
        "companies": hubspot.add("companies", 20),
        "deals": hubspot.add("deals", 30),
    }
    for n, contact in enumerate(ids["contacts"][:40]):
        hubspot.associate("contacts", "companies", contact, ids["companies"][n % 20])
    hubspot.associate("deals", "companies", ids["deals"][0], ids["companies"][0])
    hubspot.associate("deals", "contacts", ids["deals"][0], *ids["contacts"][:3])
    return ids


def test_first_run_reads_everything_in_n_over_200_requests(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]]
) -> None:
    report = pipeline.run()
    assert report.status == "succeeded" and report.destination == "duckdb"
    assert report.rows_by_table == {
        "contacts": 250,
        "companies": 20,
        "deals": 30,
        # one row per association type: each record's first link also carries the "Primary" label
        "contacts__associated_companies": 40 * 2,
        "deals__associated_companies": 1 + 1,
        "deals__associated_contacts": 3 + 1,
    }
    assert requests_by_kind(hubspot, "contacts") == {
        "properties": 1,
        "search": math.ceil(250 / 200),
        "associations": 1,
        "archived": 1,
    }
    assert requests_by_kind(hubspot, "deals") == {
        "properties": 1,
        "search": 1,
        "associations": 2,  # 207: most deals have no association, which is not an error
        "archived": 1,
    }
    assert warehouse.query(
        "select firstname, email, num_notes, hs_email_optout, date_of_birth, archived, hs_object_id"
        " from hubspot.contacts where id = ?",
        str(crm["contacts"][0]),
    ) == [("First1001", "person1001@example.com", 0, True, dt.date(1990, 5, 17), False, 1001)]
    types = dict(
        warehouse.query(
            "select column_name, data_type from information_schema.columns where table_name = 'deals'"
        )
    )
    assert types["amount"].startswith("DECIMAL") and types["closedate"].startswith("TIMESTAMP")
    assert types["hs_object_id"] == "BIGINT"


def test_later_runs_read_only_changes_and_merge_on_id(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]]
) -> None:
    pipeline.run()
    changed = crm["contacts"][100:230]  # k = 130 changed contacts
    hubspot.modify("contacts", changed, firstname="Renamed")
    hubspot.reset()
    report = pipeline.run()
    assert report.rows_by_table["contacts"] == 130 and "companies" not in report.rows_by_table
    assert requests_by_kind(hubspot, "contacts") == {
        "properties": 1,
        "search": math.ceil(130 / 200),
        "associations": 1,
        "archived": 1,
    }
    assert requests_by_kind(hubspot, "companies") == {"properties": 1, "search": 1, "archived": 1}
    assert warehouse.scalar("select count(*) from hubspot.contacts") == 250
    assert warehouse.scalar("select count(distinct id) from hubspot.contacts") == 250
    assert warehouse.scalar("select count(*) from hubspot.contacts where firstname = 'Renamed'") == 130
    assert warehouse.scalar("select count(*) from hubspot.contacts__associated_companies") == 80

    hubspot.reset()
    assert pipeline.run().rows_by_table == {}  # nothing changed: nothing loaded
    assert requests_by_kind(hubspot, "contacts") == {"properties": 1, "search": 1, "archived": 1}


def test_more_changes_than_the_search_cap_are_all_loaded(
    hubspot: FakeHubSpot, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__HUBSPOT__OBJECTS", '["contacts"]')
    monkeypatch.setenv("SOURCES__HUBSPOT__SEARCH_RESULT_CAP", "50")
    hubspot.search_cap = 50
    ids = hubspot.add("contacts", 400)
    pipeline.run()
    now = dt.datetime.now(dt.UTC)  # after the first run's cursor
    for n, chunk in enumerate(range(0, 320, 40)):  # 8 instants, 40 changes each: ties across windows
        hubspot.modify(
            "contacts", ids[chunk : chunk + 40], now + dt.timedelta(milliseconds=n), lastname=f"v{n}"
        )
    hubspot.modify("contacts", ids[320:390], now + dt.timedelta(milliseconds=20), lastname="bulk")  # 70 > cap
    time.sleep(0.05)  # let the clock pass the last change, so the next run's window holds them all
    hubspot.reset()
    report = pipeline.run()
    assert report.rows_by_table["contacts"] == 390
    assert warehouse.scalar("select count(*) from hubspot.contacts") == 400
    assert warehouse.scalar("select count(*) from hubspot.contacts where lastname = 'bulk'") == 70
    assert warehouse.query(
        "select lastname, count(*) from hubspot.contacts where lastname like 'v%' group by 1 order by 1"
    ) == [(f"v{n}", 40) for n in range(8)]
    searches = hubspot.requests_to("/crm/v3/objects/contacts/search")
    assert all(int(r.json()["after"]) + r.json()["limit"] <= 50 for r in searches)


def test_a_portal_with_600_contact_properties_loads_every_property(
    hubspot: FakeHubSpot, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real portal has several hundred contact properties; every name in one URL gets 414."""
    monkeypatch.setenv("SOURCES__HUBSPOT__OBJECTS", '["contacts"]')
    ids = hubspot.add("contacts", 450)
    names = hubspot.add_portal_properties("contacts", 600)
    hubspot.archive("contacts", ids[:150])
    report = pipeline.run()
    assert report.rows_by_table["contacts"] == 450
    assert requests_by_kind(hubspot, "contacts") == {
        "properties": 1,
        "search": math.ceil(300 / 200),  # properties in the body: no 414, no extra requests
        "archived": math.ceil(150 / 100),
        "batch_read": math.ceil(150 / 100),  # the properties that do not fit in the archived GET
    }
    columns = {
        name
        for (name,) in warehouse.query(
            "select column_name from information_schema.columns where table_name = 'contacts'"
        )
    }
    assert set(names) <= columns
    last = names[-1]
    assert warehouse.scalar(f"select count(*) from hubspot.contacts where {last} = 'v-{last[-4:]}'") == 450
    assert warehouse.scalar("select count(*) from hubspot.contacts where archived") == 150

    hubspot.modify("contacts", ids[200:260], None, **{names[0]: "changed"})
    hubspot.reset()
    assert pipeline.run().rows_by_table["contacts"] == 60 + 150
    assert warehouse.scalar(f"select count(*) from hubspot.contacts where {names[0]} = 'changed'") == 60
    assert warehouse.scalar(f"select count(*) from hubspot.contacts where {last} is null") == 0


def test_merged_records_stop_being_live_rows_after_the_next_run(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]]
) -> None:
    pipeline.run()
    contacts, deals = crm["contacts"], crm["deals"]
    hubspot.merge("contacts", contacts[0], contacts[1])  # both had a company
    hubspot.merge("contacts", contacts[0], contacts[2])
    hubspot.merge("deals", deals[5], deals[0])  # the losing deal had the associations
    report = pipeline.run()
    assert report.rows_by_table["contacts"] == 1 + 2 and report.rows_by_table["deals"] == 1 + 1
    assert warehouse.query(
        "select id, archived, archived_at is not null, merged_into_id from hubspot.contacts"
        " where merged_into_id is not null order by id"
    ) == [(str(contacts[1]), True, True, str(contacts[0])), (str(contacts[2]), True, True, str(contacts[0]))]
    assert (
        warehouse.scalar("select hs_merged_object_ids from hubspot.contacts where id = ?", str(contacts[0]))
        == f"{contacts[1]};{contacts[2]}"
    )
    for object_type in ("contacts", "deals"):
        live = warehouse.scalar(f"select count(*) from hubspot.{object_type} where not archived")
        assert live == len(hubspot.objects[object_type]), f"{object_type}: no ghost stays live"
        assert warehouse.scalar(f"select count(*) - count(distinct id) from hubspot.{object_type}") == 0
    assert warehouse.query(
        "select to_id from hubspot.deals__associated_contacts a join hubspot.deals d"
        " on a._dlt_parent_id = d._dlt_id where d.id = ? and a.type_id = 1 order by 1",
        str(deals[5]),
    ) == sorted((str(c),) for c in [contacts[0]]), "the survivor carries the merged deal's contacts"
    assert (
        warehouse.scalar(
            "select count(*) from hubspot.deals__associated_contacts a join hubspot.deals d"
            " on a._dlt_parent_id = d._dlt_id where d.id = ?",
            str(deals[0]),
        )
        == 0
    )

    hubspot.reset()
    assert pipeline.run().rows_by_table == {}, "a merge is retired once, not on every run"


def test_archived_records_are_flagged_and_restores_unflag_them(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]]
) -> None:
    pipeline.run()
    gone = crm["deals"][:3]
    hubspot.archive("deals", gone)
    report = pipeline.run()
    assert report.rows_by_table["deals"] == 3
    rows = warehouse.query(
        "select id, archived, archived_at is not null, dealname from hubspot.deals where archived order by id"
    )
    assert rows == [(str(i), True, True, f"Deal {i}") for i in gone]  # properties kept, row flagged
    assert warehouse.scalar("select count(*) from hubspot.deals") == 30
    assert warehouse.scalar("select count(*) from hubspot.deals__associated_contacts") == 0

    hubspot.restore("deals", gone[:1])
    pipeline.run()
    assert warehouse.scalar("select count(*) from hubspot.deals where archived") == 2


def test_removed_associations_disappear_with_the_next_change(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]]
) -> None:
    pipeline.run()
    contact, company = crm["contacts"][0], crm["companies"][0]
    hubspot.dissociate("contacts", "companies", contact, company)
    hubspot.associate("contacts", "companies", crm["contacts"][1], company)
    hubspot.modify("contacts", crm["contacts"][:2])
    pipeline.run()
    linked = warehouse.query(
        "select from_id, to_id from hubspot.contacts__associated_companies"
        " where type_id = 1 and from_id in (?, ?) order by 1, 2",
        str(contact),
        str(crm["contacts"][1]),
    )
    assert linked == sorted(
        [(str(crm["contacts"][1]), str(crm["companies"][1])), (str(crm["contacts"][1]), str(company))]
    )


def test_custom_properties_arrive_without_code_changes(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.run()
    hubspot.add_property("companies", "tier_custom", "enumeration", "gold")
    hubspot.add_property("companies", "hs_analytics_noise", "string", "x")
    monkeypatch.setenv("SOURCES__HUBSPOT__EXCLUDE_PROPERTIES", '["hs_analytics_*"]')
    hubspot.modify("companies", crm["companies"][:5])
    report = pipeline.run()
    assert report.new_columns == {"companies": ["tier_custom"]}
    assert warehouse.scalar("select count(*) from hubspot.companies where tier_custom = 'gold'") == 5


def test_a_failed_run_does_not_advance_the_cursor(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]]
) -> None:
    pipeline.run()
    hubspot.modify("contacts", crm["contacts"][:150], firstname="Changed")
    hubspot.fail(200, times=1, path="/crm/v3/objects/contacts/search", body="<html>gateway</html>")
    with pytest.raises(PipelineStepFailed) as exc:
        pipeline.run()
    assert exc.value.step == "extract" and "not valid JSON" in exc.value.run_report.error  # type: ignore[attr-defined]
    assert warehouse.scalar("select count(*) from hubspot.contacts where firstname = 'Changed'") == 0
    report = pipeline.run()
    assert report.rows_by_table["contacts"] == 150
    assert warehouse.scalar("select count(*) from hubspot.contacts where firstname = 'Changed'") == 150


def test_changes_inside_the_search_lag_wait_for_the_next_run(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.run()
    hubspot.modify("companies", crm["companies"][:2], name="Fresh")
    monkeypatch.setenv("SOURCES__HUBSPOT__SEARCH_LAG_SECONDS", "3600")
    assert "companies" not in pipeline.run().rows_by_table
    monkeypatch.setenv("SOURCES__HUBSPOT__SEARCH_LAG_SECONDS", "0")
    assert pipeline.run().rows_by_table["companies"] == 2


def test_missing_scope_fails_the_run_naming_the_scope(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]]
) -> None:
    hubspot.denied_scopes.add("deals")
    with pytest.raises(PipelineStepFailed) as exc:
        pipeline.run()
    error = exc.value.run_report.error  # type: ignore[attr-defined]
    assert "403 MISSING_SCOPES" in error and "crm.objects.deals.read" in error
    assert pipeline.run(objects=["contacts"]).rows_by_table["contacts"] == 250


def test_the_token_is_never_printed_logged_or_traced(
    hubspot: FakeHubSpot,
    warehouse: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    canary = "pat-na1-CANARY-7f3c1d2e-9b8a-4c5d-a6e7-f8091a2b3c4d"
    hubspot.token = canary
    monkeypatch.setenv("SOURCES__HUBSPOT__API_KEY", canary)
    hubspot.add("contacts", 120)
    caplog.set_level(logging.DEBUG)
    assert pipeline.main([]) == 0
    succeeded = pipeline.create_pipeline().last_trace
    assert succeeded is not None
    hubspot.token = "rotated"  # the canary is now rejected: the error path must not show it either
    hubspot.fail(503, times=1)
    assert pipeline.main(["--full-refresh"]) == 1
    captured = capsys.readouterr()
    assert "## hubspot: succeeded" in captured.out and "401 INVALID_AUTHENTICATION" in captured.err
    assert hubspot.requests[-1].headers["authorization"] == f"Bearer {canary}", "the canary was sent"
    failed_pipeline = pipeline.create_pipeline()
    failed = failed_pipeline.last_trace
    assert failed is not None and failed.transaction_id != succeeded.transaction_id
    failed_text = json.dumps(failed.asdict(), default=str)
    assert "401 INVALID_AUTHENTICATION" in failed_text, "this is the failed run's trace"
    folder = [
        path.read_bytes().decode("latin-1")
        for path in Path(failed_pipeline.working_dir).rglob("*")
        if path.is_file()
    ]
    for text in (
        captured.out,
        captured.err,
        caplog.text,
        str(succeeded),
        json.dumps(succeeded.asdict(), default=str),
        str(failed),
        failed_text,
        *folder,
    ):
        assert canary not in text


def test_full_refresh_lists_everything_again(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.run()
    hubspot.reset()
    assert pipeline.main(["--full-refresh", "--objects", "contacts"]) == 0
    assert "| contacts | 250 |" in capsys.readouterr().out
    searches = hubspot.requests_to("/crm/v3/objects/contacts/search")
    assert len(searches) == 2 and all(
        r.json()["sorts"][0]["propertyName"] == "hs_object_id" for r in searches
    )
    assert warehouse.scalar("select count(*) from hubspot.contacts") == 250


def test_objects_load_in_parallel_and_match_a_sequential_load(
    hubspot: FakeHubSpot, warehouse: Warehouse, crm: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    hubspot.latency = 0.05  # a round trip, so that concurrent requests overlap at the look-alike
    parallel = pipeline.run()
    assert hubspot.max_in_flight > 1, "objects were read concurrently"
    tables = sorted(parallel.rows_by_table)
    snapshot = {
        t: warehouse.query(f"select * exclude (_dlt_load_id, _dlt_id) from hubspot.{t} order by all")
        for t in tables
        if "__" not in t
    }
    state = pipeline.create_pipeline().state["sources"]["hubspot"]["resources"]

    monkeypatch.setenv("SOURCES__HUBSPOT__PARALLEL", "false")
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(warehouse.path.with_name("sequential.duckdb")))
    monkeypatch.setenv("DLT_DATA_DIR", str(warehouse.data_dir.with_name("sequential")))
    hubspot.reset()
    hubspot.latency = 0.05
    sequential = pipeline.run()
    assert hubspot.max_in_flight == 1
    assert sequential.rows_by_table == parallel.rows_by_table
    assert set(pipeline.create_pipeline().state["sources"]["hubspot"]["resources"]) == set(state)
    other = Warehouse(warehouse.path.with_name("sequential.duckdb"), warehouse.data_dir)
    for table, rows in snapshot.items():
        assert (
            other.query(f"select * exclude (_dlt_load_id, _dlt_id) from hubspot.{table} order by all") == rows
        )
