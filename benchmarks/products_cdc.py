"""Benchmark products by change data capture: one run after mixed changes against a full refresh.

Starts its own PostgreSQL 16 (pgserver, ``wal_level = logical``), builds the 11-column ``products``
table of ``benchmarks/products.py`` (``--rows``, 1,000,000 by default), then, as an operator would:
``uv run python -m tools.postgres_cdc setup`` (publication and slot) and a first run with
``SOURCES__PRODUCTS__CHANGE_CAPTURE=logical`` (the snapshot). Each of ``--repeats`` rounds then
applies ``--changes`` mixed changes (a third inserts of new rows, a third updates, a third hard
deletes, in 100 transactions) and times, in fresh processes and in turn:

- ``logical``: ``uv run python -m pipelines.products`` with ``SOURCES__PRODUCTS__CHANGE_CAPTURE=logical``,
  which reads the changes from the slot and merges them;
- ``full refresh``: ``uv run python -m pipelines.products --full-refresh`` with the default
  configuration (its own DuckDB file and pipeline folder), which reloads the whole table.

Both run as the README runs the pipeline (``DLT__DESTINATION=duckdb``; only the credentials, the
DuckDB file and the pipeline folder are set). After each logical run the warehouse is compared with
the source (row count, sum of prices, sum of name lengths): a run that is fast but wrong says so.
Reported per line: median and best wall time, the ratio of the medians to the full refresh's, CPU
time and peak memory of the process tree (as ``benchmarks/products.py`` measures them), and for the
logical run the changes applied per second of wall time.

    uv sync --compile-bytecode                              # as the README sets up
    uv run python benchmarks/products_cdc.py                # 1,000,000 rows, 100,000 changes, 3 rounds
    uv run python benchmarks/products_cdc.py --rows 100000 --changes 10000 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

from products import CREATE_TABLE, Line, bytecode_status, execute, measure, start_postgres  # noqa: E402

CLI = ["uv", "run", "python", "-m", "pipelines.products"]
SETUP = ["uv", "run", "python", "-m", "tools.postgres_cdc", "setup"]
BATCHES = 100
"""Transactions the changes of a round are spread over."""

CHANGE_BATCH = """
begin;
insert into public.products
select g, md5(g::text)::uuid, 'new product ' || g, (g % 100000) / 100.0, 'EUR', g % 1000, true,
       jsonb_build_object('colour', 'red', 'size', g % 10), now(), now(), null
from generate_series({insert_from}, {insert_to}) as g;
update public.products set price = price + 1, name = name || '+', updated_at = now()
where id between {update_from} and {update_to};
delete from public.products where id between {delete_from} and {delete_to};
commit;
"""

SUMMARY_SQL = "select count(*), coalesce(sum(price), 0), coalesce(sum(length(name)), 0) from {table}"


class Changes:
    """Mixed changes that never touch a row twice in one round: new ids above the table, updates in
    a window that moves up, deletes from the bottom up."""

    def __init__(self, rows: int) -> None:
        self.next_insert = rows + 1
        self.next_update = rows // 2
        self.next_delete = 1

    def apply(self, uri: str, count: int) -> int:
        per_kind = max(1, count // 3 // BATCHES)
        for _ in range(BATCHES):
            execute(
                uri,
                CHANGE_BATCH.format(
                    insert_from=self.next_insert,
                    insert_to=self.next_insert + per_kind - 1,
                    update_from=self.next_update,
                    update_to=self.next_update + per_kind - 1,
                    delete_from=self.next_delete,
                    delete_to=self.next_delete + per_kind - 1,
                ),
            )
            self.next_insert += per_kind
            self.next_update += per_kind
            self.next_delete += per_kind
        return per_kind * 3 * BATCHES


def source_summary(uri: str) -> tuple[int, float, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(uri)
    with engine.connect() as con:
        count, prices, names = con.execute(sa.text(SUMMARY_SQL.format(table="public.products"))).one()
    engine.dispose()
    return int(count), float(prices), int(names)


def warehouse_summary(path: Path) -> tuple[int, float, int]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(SUMMARY_SQL.format(table="products.products")).fetchone()
    assert found is not None
    count, prices, names = found
    return int(count), float(prices), int(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=100_000, help="mixed changes applied each round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (medians shown)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="products-cdc-bench-"))
    server, socket_uri, _ = start_postgres(work / "pgdata")
    try:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        execute(socket_uri, "alter system set wal_level = logical")
        # restart keeps the options start_postgres gave (TCP port, socket folder)
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)
        started = time.perf_counter()
        execute(socket_uri, CREATE_TABLE.format(rows=args.rows))
        print(f"built public.products: {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        print(bytecode_status())
        print(
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.repeats} rounds\n",
            flush=True,
        )
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DLT_", "DESTINATION__", "SOURCES__"))
        }
        logical_env = {
            **env,
            "DLT__DESTINATION": "duckdb",
            "SOURCES__PRODUCTS__CREDENTIALS": socket_uri,
            "SOURCES__PRODUCTS__CHANGE_CAPTURE": "logical",
            "DESTINATION__DUCKDB__CREDENTIALS": str(work / "logical.duckdb"),
            "DLT_DATA_DIR": str(work / "dlt-logical"),
        }
        full_env = {
            **env,
            "DLT__DESTINATION": "duckdb",
            "SOURCES__PRODUCTS__CREDENTIALS": socket_uri,
            "DESTINATION__DUCKDB__CREDENTIALS": str(work / "full.duckdb"),
            "DLT_DATA_DIR": str(work / "dlt-full"),
        }
        print(measure(SETUP, logical_env).stdout)
        snapshot = Line("logical, first run (snapshot)", args.rows)
        snapshot.runs.append(measure(CLI, logical_env))
        changes = Changes(args.rows)
        logical = Line(f"logical, {args.changes:,} changes", args.changes)
        full = Line("--full-refresh (default configuration)", args.rows)
        verdicts = []
        for i in range(args.repeats):
            applied = changes.apply(socket_uri, args.changes)
            logical.rows = applied
            logical.runs.append(measure(CLI, logical_env))
            same = warehouse_summary(work / "logical.duckdb") == source_summary(socket_uri)
            verdicts.append(same)
            full.runs.append(measure([*CLI, "--full-refresh"], full_env))
            print(f"round {i + 1} of {args.repeats} done", file=sys.stderr, flush=True)
        print(
            f"{'run':<40} {'rows':>11} {'median s':>8} {'best s':>7} {'ratio':>7} {'cpu s':>7} "
            f"{'peak MB':>8} {'warn':>5}\n"
            "(rows: changes for the logical line; ratio: median / the full refresh's median; cpu: median CPU"
            " time of the process tree;\n peak MB: the whole process tree's RSS, the most of any run; warn:"
            " WARNING lines the run printed)"
        )
        for line in (full, snapshot, logical):
            print(line.render(full.median))
        per_second = logical.rows / statistics.median(r.wall for r in logical.runs)
        print(f"{'logical: changes per second (median run)':<40} {per_second:>11,.0f}")
        print(f"warehouse equals source after each logical run: {', '.join(map(str, verdicts))}")
    finally:
        with_slot = "select pg_drop_replication_slot(slot_name) from pg_replication_slots where not active"
        try:
            execute(socket_uri, with_slot)
        finally:
            server.cleanup()
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
