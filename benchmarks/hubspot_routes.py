"""The hubspot pipeline's Snowflake route beside its DuckDB route: extract and normalise of a full load.

Serves the HubSpot look-alike on 127.0.0.1 (``--contacts`` contacts with ``--properties`` portal
properties, HubSpot's throttling and the client's limits lifted so the client's own work is measured),
then runs ``pipelines.hubspot`` in fresh processes on both routes, as ``products_routes.py`` describes
(the Snowflake one stops at load: no account needed), ``--repeats`` rounds, medians.

    uv run python benchmarks/hubspot_routes.py [--contacts 12000] [--properties 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

import products_routes  # noqa: E402
from products import measure  # noqa: E402

from tests.fakes.hubspot import FakeHubSpot  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=12_000)
    parser.add_argument("--properties", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    fake = FakeHubSpot().start()
    fake.burst_limit = fake.search_limit = None
    fake.add("contacts", args.contacts)
    fake.add_portal_properties("contacts", args.properties)
    work = Path(tempfile.mkdtemp(prefix="hubspot-routes-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DLT_", "DESTINATION__", "SOURCES__"))}
    env.update(
        {
            "SOURCES__HUBSPOT__BASE_URL": fake.base_url,
            "SOURCES__HUBSPOT__API_KEY": fake.token,
            "SOURCES__HUBSPOT__SEARCH_LAG_SECONDS": "0",
            "SOURCES__HUBSPOT__REQUESTS_PER_10_SECONDS": "1000000",
            "SOURCES__HUBSPOT__SEARCH_REQUESTS_PER_SECOND": "1000000",
            "ROUTE_RUN_OPTIONS": '{"objects": ["contacts"]}',
        }
    )
    print(
        f"HubSpot look-alike, {args.contacts:,} contacts, {args.properties} properties; {args.repeats} rounds"
    )
    candidates = products_routes.routes(env, work, pipeline="pipelines.hubspot")
    try:
        for i in range(args.repeats):
            products_routes.run_round(measure, candidates, work)
            print(f"round {i + 1} of {args.repeats} done", file=sys.stderr, flush=True)
        print(products_routes.render(candidates))
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
