"""Benchmark the products pipeline: PostgreSQL -> DuckDB, full and incremental loads, with comparators.

Starts its own PostgreSQL 16 (pgserver) in a temp dir, builds an 11-column ``products`` table (bigint,
uuid, text, numeric(12,2), char(3), int, bool, jsonb, three timestamptz), then runs each candidate
in a fresh process, ``--repeat`` times, and prints wall time, rows/s, CPU time and peak memory
(``ru_maxrss`` of the process and its children). The machines are shared, so compare the best and
median of the same run, not figures from different runs. Start-up depends on whether Python's
bytecode is precompiled (the script says which): these machines set PYTHONDONTWRITEBYTECODE, so
without ``uv sync --compile-bytecode`` every run compiles dlt and its dependencies from source.

    uv sync --compile-bytecode                                 # as workers are set up (README)
    uv run python benchmarks/products.py                      # 1,000,000 rows
    uv run python benchmarks/products.py --rows 5000000 --repeat 2
    uv run --with sling-linux-amd64 python benchmarks/products.py   # adds Sling, when installable

Candidates: ``pipeline`` (this repository's pipeline: ADBC streaming, full refresh, then an
incremental merge after 1 % of rows change), ``pyarrow`` (dlt's pyarrow backend, 100k chunks),
``read`` (the ADBC driver reading the table, writing nothing: the floor here), ``duckdb`` (DuckDB's own
postgres scanner, the practical limit; needs its extension, which is downloaded from the internet) and
``sling`` (the Sling CLI, PostgreSQL -> DuckDB, and -> a CSV file, which runs offline).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DUCKDB_MEMORY = "256MB"
"""DuckDB ``memory_limit`` for the runs; override with DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG."""
CANDIDATES = ("pipeline", "pyarrow", "read", "duckdb", "sling")

CREATE_TABLE = """
drop table if exists public.products;
create table public.products (
    id bigint primary key,
    sku uuid not null,
    name text not null,
    price numeric(12, 2),
    currency char(3),
    stock int,
    is_active boolean,
    attributes jsonb,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    deleted_at timestamptz
);
insert into public.products
select g,
       md5(g::text)::uuid,
       'product ' || g || ' ' || repeat(chr(97 + g % 26), 1 + g % 20),
       (g % 1000000) / 100.0,
       case g % 3 when 0 then 'EUR' when 1 then 'GBP' else 'USD' end,
       g % 1000,
       g % 7 <> 0,
       jsonb_build_object('colour', (array['red', 'green', 'blue'])[1 + g % 3], 'size', g % 10,
                          'weight', g * 0.25),
       timestamptz '2024-01-01' + g * interval '1 second',
       timestamptz '2025-01-01' + g * interval '1 second',
       null
from generate_series(1, {rows}) as g;
create index products_updated_at on public.products (updated_at);
vacuum analyze public.products;
"""

CHANGE_ROWS = """
update public.products
set price = price + 1, updated_at = now(), deleted_at = case when id % 1000 = 0 then now() end
where id % {every} = 0;
"""


# --- PostgreSQL --------------------------------------------------------------------------------------


def start_postgres(data_dir: Path, port: int) -> tuple[Any, str, str]:
    """Start pgserver, then restart it to also listen on 127.0.0.1:port (Sling needs TCP)."""
    import pgserver
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir
    pg_ctl(
        ["-w", "-o", f"-h 127.0.0.1 -p {port} -k {socket_dir}", "-l", str(server.log), "restart"],
        pgdata=server.pgdata,
        user=server.system_user,
    )
    socket_uri = f"postgresql+psycopg2://postgres:@/postgres?host={socket_dir}&port={port}"
    tcp_uri = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return server, socket_uri, tcp_uri


def execute(uri: str, sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(uri, isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        for statement in filter(str.strip, sql.split(";")):
            con.execute(sa.text(statement))
    engine.dispose()


# --- children: one candidate per process -----------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    """Run one candidate in this process and print a JSON line with what it did."""
    started = time.perf_counter()
    rows: int | None = None
    steps: dict[str, float] = {}
    if args.child in ("pipeline-full", "pipeline-incremental", "pyarrow-full"):
        from pipelines import products

        report = products.run(full_refresh=args.child.endswith("-full"))
        rows = report.rows_by_table.get("products", 0)
        steps = report.step_seconds
    elif args.child == "read-full":
        import adbc_driver_postgresql.dbapi

        with adbc_driver_postgresql.dbapi.connect(args.libpq) as connection, connection.cursor() as cursor:
            cursor.execute("select * from public.products")
            rows = sum(batch.num_rows for batch in cursor.fetch_record_batch())
    elif args.child == "duckdb-full":
        import duckdb

        with duckdb.connect(args.duckdb) as con:
            con.execute("LOAD postgres")
            con.execute(f"ATTACH '{args.libpq}' AS pg (TYPE postgres, READ_ONLY)")
            con.execute("CREATE OR REPLACE TABLE products AS SELECT * FROM pg.public.products")
            rows = con.execute("select count(*) from products").fetchone()[0]  # type: ignore[index]
    print(json.dumps({"rows": rows, "inner_seconds": time.perf_counter() - started, "steps": steps}))


def measure(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``; wall time, CPU time and peak RSS (the process and its children)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[-1]} failed:\n{err[-2000:]}")
    last = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(last[-1]) if last else {}
    result.update(wall=wall, cpu=usage.ru_utime + usage.ru_stime, peak_mb=usage.ru_maxrss / 1024)
    return result


def sling_binary() -> str | None:
    """The Sling CLI: ``SLING_BINARY``, ``sling`` on PATH, or the ``sling-linux-amd64`` wheel."""
    if os.environ.get("SLING_BINARY"):
        return os.environ["SLING_BINARY"]
    try:
        import sling_linux_amd64

        found = Path(sling_linux_amd64.__file__).parent / "bin" / "sling-linux-amd64"
        return str(found) if found.exists() else None
    except ImportError:
        return shutil.which("sling")


def bytecode_status() -> str:
    """Whether the children start from precompiled bytecode, which decides about 1.5 s of each run."""
    import importlib.util

    import dlt

    if Path(importlib.util.cache_from_source(dlt.__file__)).exists():
        return "Python bytecode: precompiled (uv sync --compile-bytecode)"
    if sys.flags.dont_write_bytecode:
        return (
            "Python bytecode: NOT precompiled, and PYTHONDONTWRITEBYTECODE is set, so every run compiles "
            "dlt and its dependencies from source (about 1.5 s here); run `uv sync --compile-bytecode` first"
        )
    return "Python bytecode: written on first import (the first run of each candidate pays for it)"


# --- parent -----------------------------------------------------------------------------------------


def summarise(name: str, runs: list[dict[str, Any]], rows: int) -> str:
    walls = sorted(r["wall"] for r in runs)
    best, median = walls[0], statistics.median(walls)
    peak = max(r["peak_mb"] for r in runs)
    cpu = min(r["cpu"] for r in runs)
    fastest = min(runs, key=lambda r: r["wall"])
    steps = ", ".join(f"{k} {v:.2f}" for k, v in fastest.get("steps", {}).items())
    return (
        f"{name:<26} {rows:>10,} {best:>8.2f} {median:>8.2f} {rows / best:>12,.0f} {cpu:>8.2f} {peak:>8.0f}"
        + (f"  (steps of the best run, s: {steps}; the rest is start-up)" if steps else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per candidate (best and median shown)")
    parser.add_argument(
        "--change", type=float, default=0.01, help="fraction of rows changed before the incremental run"
    )
    parser.add_argument("--only", nargs="*", choices=CANDIDATES, default=list(CANDIDATES))
    parser.add_argument("--port", type=int, default=0, help="TCP port for Sling (default: a free one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--duckdb", help=argparse.SUPPRESS)
    parser.add_argument("--libpq", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    work = Path(tempfile.mkdtemp(prefix="products-bench-"))
    server, socket_uri, tcp_uri = start_postgres(work / "pgdata", args.port)
    results: list[str] = []
    notes: list[str] = []
    try:
        started = time.perf_counter()
        execute(socket_uri, CREATE_TABLE.format(rows=args.rows))
        print(
            f"built public.products: {args.rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True
        )
        print(bytecode_status(), flush=True)
        me = [sys.executable, str(Path(__file__).resolve())]
        base_env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DLT__DESTINATION": "duckdb",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "RUNTIME__LOG_LEVEL": "ERROR",
            "SOURCES__PRODUCTS__CREDENTIALS": socket_uri,
            "DLT_DATA_DIR": str(work / "dlt"),
            # DuckDB caches up to 80 % of RAM by default, so its buffer pool, not the pipeline, would
            # set the peak as the table grows; Snowflake loads run out of process.
            "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": os.environ.get(
                "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", json.dumps({"memory_limit": DUCKDB_MEMORY})
            ),
        }

        def pipeline_runs(name: str, extra: dict[str, str]) -> None:
            full: list[dict[str, Any]] = []
            incremental: list[dict[str, Any]] = []
            for attempt in range(args.repeat):
                target = work / f"{name}-{attempt}.duckdb"
                env = {**base_env, **extra, "DESTINATION__DUCKDB__CREDENTIALS": str(target)}
                shutil.rmtree(work / "dlt", ignore_errors=True)
                full.append(measure([*me, "--child", f"{name}-full"], env))
                if name == "pipeline":
                    execute(socket_uri, CHANGE_ROWS.format(every=round(1 / args.change)))
                    incremental.append(measure([*me, "--child", "pipeline-incremental"], env))
                target.unlink(missing_ok=True)
            results.append(summarise(f"{name} full", full, full[0]["rows"]))
            print(results[-1], flush=True)
            if incremental:
                results.append(summarise(f"{name} incremental", incremental, incremental[0]["rows"]))
                print(results[-1], flush=True)

        print(
            f"{'candidate':<26} {'rows':>10} {'best s':>8} {'median s':>8} {'rows/s':>12} "
            f"{'cpu s':>8} {'peak MB':>8}"
        )
        if "pipeline" in args.only:
            pipeline_runs("pipeline", {})
        if "pyarrow" in args.only:
            pipeline_runs("pyarrow", {"SOURCES__PRODUCTS__BACKEND": "pyarrow"})
        if "read" in args.only:
            url = tcp_uri.replace("postgresql://", "postgresql://", 1)
            runs = [
                measure([*me, "--child", "read-full", "--libpq", url], base_env) for _ in range(args.repeat)
            ]
            results.append(summarise("adbc read only", runs, runs[0]["rows"]))
            print(results[-1], flush=True)
        if "duckdb" in args.only:
            try:
                import duckdb

                duckdb.connect().execute("INSTALL postgres")
                libpq = f"host=127.0.0.1 port={args.port} dbname=postgres user=postgres"
                runs = [
                    measure(
                        [
                            *me,
                            "--child",
                            "duckdb-full",
                            "--duckdb",
                            str(work / f"scan-{i}.duckdb"),
                            "--libpq",
                            libpq,
                        ],
                        base_env,
                    )
                    for i in range(args.repeat)
                ]
                results.append(summarise("duckdb postgres scanner", runs, runs[0]["rows"]))
                print(results[-1], flush=True)
            except Exception as exc:
                notes.append(
                    f"duckdb postgres scanner: cannot run here ({type(exc).__name__}: {str(exc)[:90]})"
                )
        if "sling" in args.only:
            binary = sling_binary()
            if binary is None:
                notes.append("sling: not installed (try `uv run --with sling-linux-amd64 ...`)")
            else:
                env = {**base_env, "PG": f"{tcp_uri}?sslmode=disable"}
                to_duckdb = ["--tgt-conn", "DUCK", "--tgt-object", "main.products"]
                # Sling downloads the DuckDB CLI (and uses it for parquet) on first use; offline it can
                # only write CSV, which still measures its PostgreSQL reading.
                to_csv = ["--tgt-object", f"file://{work}/sling.csv"]
                for label, target in (("sling -> duckdb", to_duckdb), ("sling -> csv file", to_csv)):
                    runs = []
                    try:
                        for i in range(args.repeat):
                            env["DUCK"] = f"duckdb://{work}/sling-{i}.duckdb"
                            command = [
                                binary,
                                "run",
                                "--src-conn",
                                "PG",
                                "--src-stream",
                                "public.products",
                                *target,
                                "--mode",
                                "full-refresh",
                            ]
                            runs.append({**measure(command, env), "rows": args.rows})
                    except RuntimeError as exc:
                        notes.append(f"{label}: cannot run here ({str(exc).strip().splitlines()[-1][:110]})")
                        continue
                    results.append(summarise(label, runs, args.rows))
                    print(results[-1], flush=True)
                    break
        for note in notes:
            print(note)
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
