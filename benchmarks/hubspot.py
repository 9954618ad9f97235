"""HubSpot pipeline requests and speed: full load, incremental load, and a change burst past the cap;
with ``--portal``, a revenue team's portal (every default object, owners and pipelines).

Starts the HubSpot look-alike on 127.0.0.1 with a realistic portal (600 contact properties by default:
every name in one URL would get 414), loads its contacts into a temporary DuckDB file with the real
pipeline and HubSpot's real client-side limits (100 requests per 10 s, 4 searches per second), and
prints, per run: requests by kind (counted by the look-alike), wall time, rows per second, peak memory.

    uv run python -m benchmarks.hubspot [--contacts 12000] [--properties 600] [--changed 1500] [--no-limits]
    uv run python -m benchmarks.hubspot --portal [--no-limits]

``--portal``: 25,000 contacts, 5,000 deals, 3,000 tickets, 20,000 engagements (4,000 each of calls,
emails, meetings, notes, tasks), 50 owners and 3 pipelines, every record linked to a contact; a full
load, then an incremental one after 1,000 changes spread over contacts, deals, tickets and engagements.
Prints requests per object (the run report's counts) and wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

from sources.hubspot.source import ENGAGEMENTS
from tests.fakes.hubspot import FakeHubSpot


def kinds(fake: FakeHubSpot) -> Counter[str]:
    counted: Counter[str] = Counter()
    for r in fake.requests:
        if "/properties/" in r.path:
            counted["properties"] += 1
        elif r.path.endswith("/search"):
            counted["search"] += 1
        elif r.path.endswith("/batch/read") and "/associations/" not in r.path:
            counted["batch read"] += 1
        elif "/associations/" in r.path:
            counted["associations"] += 1
        else:
            counted["archived list" if r.param("archived") == "true" else "list"] += 1
    return counted


def measure(label: str, fake: FakeHubSpot, expected: str) -> None:
    from pipelines import hubspot

    fake.reset()
    started = time.perf_counter()
    report = hubspot.run(objects=["contacts"])
    wall = time.perf_counter() - started
    rows = report.rows_by_table.get("contacts", 0)
    counted = kinds(fake)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counted.items()))
    print(
        f"{label:<34} rows {rows:>7,}  requests {sum(counted.values()):>5} ({detail}; expected {expected})"
        f"  wall {wall:6.1f} s  {rows / wall:8,.0f} rows/s  throttled {fake.throttled}"
    )


PORTAL = {"contacts": 25_000, "deals": 5_000, "tickets": 3_000, **dict.fromkeys(ENGAGEMENTS, 4_000)}
CHANGES = {"contacts": 400, "deals": 200, "tickets": 100, **dict.fromkeys(ENGAGEMENTS, 60)}


def portal(fake: FakeHubSpot) -> None:
    """A revenue team's portal, and its full and incremental loads (the issue's goals: at most 600 and
    60 requests)."""
    from pipelines import hubspot

    ids = {name: fake.add(name, count) for name, count in PORTAL.items()}
    for name in ("deals", "tickets", *ENGAGEMENTS):
        for n, record in enumerate(ids[name]):
            fake.associate(name, "contacts", record, ids["contacts"][n % len(ids["contacts"])])
    fake.add_owners(45)
    fake.add_owners(5, archived=True)
    fake.add_pipeline(
        "deals", "default", "Sales", ["appointmentscheduled", "qualified", "closedwon", "closedlost"]
    )
    fake.add_pipeline("deals", "renewals", "Renewals", ["open", "closedwon", "closedlost"])
    fake.add_pipeline("tickets", "0", "Support", ["new", "waiting", "closed"])
    total = sum(PORTAL.values())
    print(
        f"revenue portal: {total:,} records ({', '.join(f'{k} {v:,}' for k, v in PORTAL.items())}), 50 owners"
    )
    for label, goal in (("full load", 600), ("incremental, 1,000 changed", 60)):
        if label.startswith("incremental"):
            for name, count in CHANGES.items():
                fake.modify(name, ids[name][:count])
            time.sleep(0.01)
        fake.reset()
        started = time.perf_counter()
        report = hubspot.run()
        wall = time.perf_counter() - started
        sent = sum(report.requests_by_object.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(report.requests_by_object.items()))
        print(
            f"{label:<28} rows {report.total_rows:>7,}  requests {sent:>4} (goal <= {goal}; served "
            f"{len(fake.requests)})  wall {wall:6.1f} s  throttled {fake.throttled}\n    {detail}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=12_000)
    parser.add_argument("--properties", type=int, default=600, help="contact properties in the portal")
    parser.add_argument("--changed", type=int, default=1_500)
    parser.add_argument("--no-limits", action="store_true", help="lift the client-side rate limits")
    parser.add_argument("--portal", action="store_true", help="a revenue team's portal, every object")
    args = parser.parse_args()

    fake = FakeHubSpot().start()
    fake.burst_limit, fake.search_limit = 100, 5  # the look-alike throttles like HubSpot would
    ids = [] if args.portal else fake.add("contacts", args.contacts)
    fake.add_portal_properties("contacts", 0 if args.portal else args.properties)
    work = Path(tempfile.mkdtemp(prefix="hubspot-bench-"))
    os.environ.update(
        {
            "SOURCES__HUBSPOT__BASE_URL": fake.base_url,
            "SOURCES__HUBSPOT__API_KEY": fake.token,
            "SOURCES__HUBSPOT__SEARCH_LAG_SECONDS": "0",
            "DLT__DESTINATION": "duckdb",
            "DESTINATION__DUCKDB__CREDENTIALS": str(work / "bench.duckdb"),
            "DLT_DATA_DIR": str(work / "dlt"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
    )
    if args.no_limits:
        fake.burst_limit = fake.search_limit = None
        os.environ["SOURCES__HUBSPOT__REQUESTS_PER_10_SECONDS"] = "1000000"
        os.environ["SOURCES__HUBSPOT__SEARCH_REQUESTS_PER_SECOND"] = "1000000"
    if args.portal:
        portal(fake)
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
        fake.stop()
        return
    n, k = args.contacts, args.changed
    limits = "lifted" if args.no_limits else "100 per 10 s, 4 searches per s"
    print(f"HubSpot look-alike, {n:,} contacts with {args.properties} properties, client limits {limits}")

    measure("full load (search by id)", fake, f"{math.ceil(n / 200)} search + 1 properties + 1 archived")
    fake.modify("contacts", ids[:k], firstname="changed")
    time.sleep(0.01)
    measure(f"incremental, {k:,} changed", fake, f"{math.ceil(k / 200)} search + 1 properties + 1 archived")
    measure("incremental, nothing changed", fake, "1 search + 1 properties + 1 archived")
    fake.archive("contacts", ids[-250:])
    measure("incremental, 250 archived", fake, "1 search + 1 properties + 3 archived + 3 batch read")
    base = dt.datetime.now(dt.UTC)
    for step, start in enumerate(range(0, n, 100)):  # a burst spread over time, 100 changes per ms
        fake.modify(
            "contacts", ids[start : start + 100], base + dt.timedelta(milliseconds=step), lastname="b"
        )
    time.sleep(0.2)
    live = n - 250
    expected = f"{math.ceil(live / 200)} + {math.ceil(live / 10_000) - 1} search"
    measure(f"incremental, {live:,} changed", fake, expected + " + 1 properties + 3 archived + 3 batch read")
    fake.modify("contacts", ids, lastname="instant")  # worst case: every change in one millisecond
    time.sleep(0.01)
    expected = f"{math.ceil(live / 200)} search + 50 re-read by id"
    measure("same, all in one millisecond", fake, expected + " + 1 properties + 3 archived + 3 batch read")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB")
    fake.stop()


if __name__ == "__main__":
    main()
