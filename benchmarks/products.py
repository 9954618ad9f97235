"""Benchmark the products pipeline as users run it, side by side with DuckDB's scanner and Sling.

Starts its own PostgreSQL 16 (pgserver) in a temp dir, builds an 11-column ``products`` table (bigint,
uuid, text, numeric(12,2), char(3), int, bool, jsonb, three timestamptz), then times, in fresh
processes and in one sitting, ``--repeats`` rounds of every candidate in turn (so a machine whose speed
drifts during the benchmark moves every candidate alike):

- ``scanner``: DuckDB's own postgres scanner, one ``CREATE TABLE AS SELECT`` (the practical limit),
  in its own environment: ``uv run --isolated --no-project --with duckdb==1.5.5 --with
  duckdb-extension-postgres-scanner==1.5.5`` (the extension is LOADed from that package's
  ``extensions/`` folder, so nothing is downloaded at run time);
- ``sling``: Sling 1.4.11 (the ``sling-linux-amd64`` package) writing to DuckDB with the
  ``duckdb-cli==1.5.5`` package's binary (``DUCKDB_PATH``), ``--mode full-refresh``;
- ``pipeline``: the CLI exactly as the README runs it, ``uv run python -m pipelines.products`` with
  ``DLT__DESTINATION=duckdb`` and the repository's own configuration (only the database's
  credentials, the DuckDB file and the pipeline folder are set, all in the temp dir): first run (a
  merge into an empty table), incremental after ``--change`` of the rows changed, then
  ``--full-refresh``.

Reported per run: median and best wall time, the ratio of the medians to the scanner's, the median CPU
time of the process tree (user + system, from the children's rusage), and the peak memory of the
whole process tree (the RSS of ``uv`` and every process under it, summed, sampled
every 10 ms). The pipeline's lines also count the WARNING lines its log printed. Machines are shared:
compare ratios from one run, never figures from different runs.

    uv sync --compile-bytecode                          # as the README sets up
    uv run python benchmarks/products.py                # 1,000,000 rows, five runs each
    uv run python benchmarks/products.py --rows 10000000 --repeats 2
    uv run python benchmarks/products.py --rows 200000 --repeats 1 --only pipeline   # while developing
    uv run python benchmarks/products.py --many-tables 200 --rows 5000 --repeats 3   # a whole schema
    uv run python benchmarks/products.py --key-sweep --repeats 3     # the key sweep against a full load
    uv run python benchmarks/products.py --destination snowflake   # the Snowflake route beside DuckDB's

``--many-tables N`` builds N tables of the same shape (``--rows`` each) and times one run over all of
them: the scanner with one ``CREATE TABLE AS`` per table in one process, Sling replicating
``public.*``, and the pipeline with ``tables = ["t_*"]`` (a first run, then a run with nothing
changed). ``--key-sweep`` times, on the ``--rows`` table, a run with nothing changed with the key
sweep (``key_sweep_hours = 0``) and without it (``key_sweep = false``), and ``--full-refresh``.

``--destination snowflake`` compares the pipeline's two routes instead (``benchmarks/products_routes.py``
says how the Snowflake one is measured without an account).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DUCKDB = "1.5.5"
COMPARATOR_ENV = [
    "uv",
    "run",
    "--isolated",
    "--no-project",
    "--quiet",
    "--with",
    f"duckdb=={DUCKDB}",
    "--with",
    f"duckdb-extension-postgres-scanner=={DUCKDB}",
    "--with",
    f"duckdb-cli=={DUCKDB}",
    "--with",
    f"duckdb-extension-json=={DUCKDB}",
    "--with",
    f"duckdb-extension-httpfs=={DUCKDB}",
    "--with",
    "sling-linux-amd64==1.4.11",
]
"""One isolated environment for both comparators (DuckDB 1.5.5; the project's DuckDB is newer)."""
CANDIDATES = ("scanner", "sling", "pipeline")

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

SCANNER = """
import glob, os, sys, duckdb, duckdb_extension_postgres_scanner as package
folder = os.path.join(os.path.dirname(package.__file__), "extensions", "*")
extension = glob.glob(os.path.join(folder, "*.duckdb_extension"))[0]
with duckdb.connect(sys.argv[1]) as con:
    con.execute(f"LOAD '{extension}'")
    con.execute(f"ATTACH '{sys.argv[2]}' AS pg (TYPE postgres, READ_ONLY)")
    con.execute("CREATE OR REPLACE TABLE products AS SELECT * FROM pg.public.products")
    print(con.execute("select count(*) from products").fetchone()[0])
"""

PREPARE = """
import glob, os, shutil, duckdb_extension_httpfs, duckdb_extension_json
# Sling's DuckDB CLI installs json and httpfs (it streams CSV over local HTTP): copied from the packages
# into the comparators' own HOME, so nothing is downloaded
target = os.path.expanduser("~/.duckdb/extensions/v{version}/linux_amd64")
os.makedirs(target, exist_ok=True)
for package in (duckdb_extension_httpfs, duckdb_extension_json):
    folder = os.path.join(os.path.dirname(package.__file__), "extensions", "*", "*.duckdb_extension")
    for found in glob.glob(folder):
        shutil.copy(found, target)
""".replace("{version}", DUCKDB)

SLING = """
import os, shutil, sys, sling_linux_amd64
binary = os.path.join(os.path.dirname(sling_linux_amd64.__file__), "bin", "sling-linux-amd64")
os.environ["DUCKDB_PATH"] = shutil.which("duckdb")
os.execv(binary, [binary, *sys.argv[1:]])
"""


# --- PostgreSQL --------------------------------------------------------------------------------------


def start_postgres(data_dir: Path) -> tuple[Any, str, str]:
    """Start pgserver, then restart it to also listen on 127.0.0.1 (Sling needs TCP)."""
    import pgserver
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

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
    return server, socket_uri, f"postgresql://postgres@127.0.0.1:{port}/postgres"


def execute(uri: str, sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(uri, isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        for statement in filter(str.strip, sql.split(";")):
            con.execute(sa.text(statement))
    engine.dispose()


# --- measuring ---------------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mb: float
    warnings: int
    stdout: str


def tree_rss(process: Any) -> int:
    """RSS of ``process`` and all its descendants, in bytes (processes gone meanwhile count 0)."""
    import psutil

    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def measure(command: list[str], env: dict[str, str], cwd: Path = REPO) -> Run:
    """Run ``command``: wall time, peak RSS of its whole process tree, WARNING lines it printed."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    popen = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process = psutil.Process(popen.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(process))
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = popen.communicate()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    done.set()
    sampler.join()
    if popen.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed ({popen.returncode}):\n{err[-3000:]}")
    warnings = sum("WARNING" in line for line in err.splitlines())
    return Run(wall=wall, cpu=cpu, peak_mb=peak / 2**20, warnings=warnings, stdout=out)


@dataclass
class Line:
    name: str
    rows: int
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    def render(self, scanner: float | None) -> str:
        walls = sorted(r.wall for r in self.runs)
        ratio = f"{self.median / scanner:>6.2f}x" if scanner else f"{'-':>7}"
        peak = max(r.peak_mb for r in self.runs)
        warnings = max(r.warnings for r in self.runs)
        cpu = statistics.median(r.cpu for r in self.runs)
        return (
            f"{self.name:<40} {self.rows:>11,} {statistics.median(walls):>8.2f} {walls[0]:>7.2f} {ratio} "
            f"{cpu:>7.2f} {peak:>8.0f} {warnings:>5}"
        )


def bytecode_status() -> str:
    """Whether the project's venv is precompiled (``uv sync --compile-bytecode``), as the README sets up."""
    import importlib.util

    import dlt

    if Path(importlib.util.cache_from_source(dlt.__file__)).exists():
        return "Python bytecode: precompiled (uv sync --compile-bytecode), as the README sets up"
    return (
        "Python bytecode: NOT precompiled: every pipeline run compiles dlt from source (about 1 s); "
        "run `uv sync --compile-bytecode` first, as the README says"
    )


# --- main --------------------------------------------------------------------------------------------


MANY_TABLES = """
create table public.t_{index:04d} (like public.products including all);
insert into public.t_{index:04d} select * from public.products;
analyze public.t_{index:04d};
"""

MANY_SCANNER = """
import glob, os, sys, duckdb, duckdb_extension_postgres_scanner as package
folder = os.path.join(os.path.dirname(package.__file__), "extensions", "*")
extension = glob.glob(os.path.join(folder, "*.duckdb_extension"))[0]
with duckdb.connect(sys.argv[1]) as con:
    con.execute(f"LOAD '{extension}'")
    con.execute(f"ATTACH '{sys.argv[2]}' AS pg (TYPE postgres, READ_ONLY)")
    tables = [row[0] for row in con.execute(
        "select table_name from duckdb_tables() where database_name = 'pg' and schema_name = 'public'"
        " and starts_with(table_name, 't_')"
    ).fetchall()]
    for table in tables:
        con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM pg.public."{table}"')
    print(len(tables))
"""


def many_tables(
    args: argparse.Namespace, work: Path, socket_uri: str, tcp_uri: str, env: dict[str, str]
) -> None:
    """One run over ``args.many_tables`` tables: scanner, Sling and the pipeline side by side."""
    execute(socket_uri, "drop table if exists public.products_unused")
    for index in range(args.many_tables):
        execute(socket_uri, MANY_TABLES.format(index=index))
    execute(socket_uri, "alter table public.products rename to products_template")
    print(f"built {args.many_tables} tables of {args.rows:,} rows", flush=True)
    socket_dir = socket_uri.split("host=")[1].split("&")[0]
    port = tcp_uri.rsplit(":", 1)[1].split("/")[0]
    libpq = f"host={socket_dir} port={port} dbname=postgres user=postgres"
    comparator_env = {**env, "HOME": str(work / "home"), "UV_CACHE_DIR": _uv_cache_dir()}
    subprocess.run([*COMPARATOR_ENV, "python", "-c", PREPARE], check=True, env=comparator_env)
    total = args.many_tables * args.rows
    scanner = Line(f"scanner, {args.many_tables} CTAS in one process", total)
    sling = Line(f"sling 1.4.11, public.t_* ({args.many_tables} streams)", total)
    first = Line(f"pipelines.products, {args.many_tables} tables, first run", total)
    again = Line("pipelines.products, nothing changed", 0)
    replication = work / "replication.yaml"
    replication.write_text(
        "source: PG\ntarget: DUCK\ndefaults:\n  mode: full-refresh\n  object: main.{stream_table}\n"
        "streams:\n  public.t_*:\n"
    )
    cli = ["uv", "run", "python", "-m", "pipelines.products"]
    for i in range(args.repeats):
        target = work / f"scanner-{i}.duckdb"
        scanner.runs.append(
            measure([*COMPARATOR_ENV, "python", "-c", MANY_SCANNER, str(target), libpq], comparator_env)
        )
        target.unlink()
        shutil.rmtree(work / "dlt", ignore_errors=True)
        target = work / f"pipeline-{i}.duckdb"
        pipeline_env = {
            **env,
            "DLT__DESTINATION": "duckdb",
            "SOURCES__PRODUCTS__CREDENTIALS": socket_uri,
            "SOURCES__PRODUCTS__TABLES": '["t_*"]',
            "DESTINATION__DUCKDB__CREDENTIALS": str(target),
            "DLT_DATA_DIR": str(work / "dlt"),
        }
        first.runs.append(measure(cli, pipeline_env))
        again.runs.append(measure(cli, pipeline_env))
        target.unlink()
        target = work / f"sling-{i}.duckdb"
        sling_env = {**comparator_env, "PG": f"{tcp_uri}?sslmode=disable", "DUCK": f"duckdb://{target}"}
        command = [*COMPARATOR_ENV, "python", "-c", SLING, "run", "--replication", str(replication)]
        try:  # bounded: seen stalling with hundreds of streams into DuckDB
            sling.runs.append(measure(["timeout", str(args.sling_timeout), *command], sling_env))
        except RuntimeError as exc:
            print(f"sling did not finish within {args.sling_timeout} s: {str(exc)[-300:]}", flush=True)
        target.unlink(missing_ok=True)
        print(f"round {i + 1} of {args.repeats} done", file=sys.stderr, flush=True)
    for line in (scanner, sling, first, again):
        if line.runs:
            print(line.render(scanner.median))


def key_sweep(args: argparse.Namespace, work: Path, socket_uri: str, env: dict[str, str]) -> None:
    """A run with nothing changed, with and without the key sweep, against a full refresh."""
    cli = ["uv", "run", "python", "-m", "pipelines.products"]
    pipeline_env = {
        **env,
        "DLT__DESTINATION": "duckdb",
        "SOURCES__PRODUCTS__CREDENTIALS": socket_uri,
        "DESTINATION__DUCKDB__CREDENTIALS": str(work / "sweep.duckdb"),
        "DLT_DATA_DIR": str(work / "dlt"),
        "SOURCES__PRODUCTS__KEY_SWEEP_HOURS": "0",
    }
    measure(cli, pipeline_env)  # the first load, untimed
    full = Line("pipelines.products --full-refresh", args.rows)
    swept = Line("nothing changed, key sweep", args.rows)
    unswept = Line("nothing changed, key_sweep = false", 0)
    for i in range(args.repeats):
        full.runs.append(measure([*cli, "--full-refresh"], pipeline_env))
        swept.runs.append(measure(cli, pipeline_env))
        unswept.runs.append(measure(cli, {**pipeline_env, "SOURCES__PRODUCTS__KEY_SWEEP": "false"}))
        print(f"round {i + 1} of {args.repeats} done", file=sys.stderr, flush=True)
    for line in (full, swept, unswept):
        print(line.render(full.median))
    cost = (swept.median - unswept.median) / full.median
    print(f"{'sweep cost (medians: swept - unswept) / full':<40} {cost:>35.2f}x")
    for row in swept.runs[-1].stdout.splitlines():
        if "key sweep" in row:
            print(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--many-tables", type=int, default=0, help="tables of --rows rows each, one run")
    parser.add_argument("--key-sweep", action="store_true", help="the key sweep against a full refresh")
    parser.add_argument("--sling-timeout", type=int, default=600, help="seconds before Sling is stopped")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each candidate (medians shown)")
    parser.add_argument(
        "--change", type=float, default=0.01, help="fraction of rows changed before incremental"
    )
    parser.add_argument("--only", nargs="*", choices=CANDIDATES, default=list(CANDIDATES))
    parser.add_argument(
        "--destination",
        choices=("duckdb", "snowflake"),
        default="duckdb",
        help="snowflake: the pipeline's Snowflake route beside its DuckDB route (extract and normalise)",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="products-bench-"))
    server, socket_uri, tcp_uri = start_postgres(work / "pgdata")
    socket_dir = socket_uri.split("host=")[1].split("&")[0]
    port = tcp_uri.rsplit(":", 1)[1].split("/")[0]
    try:
        started = time.perf_counter()
        execute(socket_uri, CREATE_TABLE.format(rows=args.rows))
        print(f"built public.products: {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        print(bytecode_status())
        print(
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.repeats} runs each\n",
            flush=True,
        )
        if args.destination == "snowflake":
            return compare_routes(args.repeats, socket_uri, work)
        print(
            f"{'run':<40} {'rows':>11} {'median s':>8} {'best s':>7} {'ratio':>7} {'cpu s':>7} "
            f"{'peak MB':>8} {'warn':>5}\n"
            "(ratio: median / the scanner's median; cpu: median CPU time of the process tree, steadier than"
            " wall time on a busy machine;\n peak MB: the whole process tree's RSS, the most of any run;"
            " warn: WARNING lines the run printed)",
            flush=True,
        )
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DLT_", "DESTINATION__", "SOURCES__"))
        }
        (work / "home").mkdir()
        if args.many_tables:
            many_tables(args, work, socket_uri, tcp_uri, env)
            return 0
        if args.key_sweep:
            key_sweep(args, work, socket_uri, env)
            return 0
        comparator_env = {**env, "HOME": str(work / "home"), "UV_CACHE_DIR": _uv_cache_dir()}
        if "scanner" in args.only or "sling" in args.only:
            # resolves (and on a first run installs) the environment, untimed
            subprocess.run([*COMPARATOR_ENV, "python", "-c", PREPARE], check=True, env=comparator_env)
        libpq = f"host={socket_dir} port={port} dbname=postgres user=postgres"
        scanner = Line("duckdb postgres scanner (CTAS)", args.rows)
        sling = Line(f"sling 1.4.11 -> duckdb {DUCKDB} (full-refresh)", args.rows)
        first = Line("pipelines.products, first run (merge)", args.rows)
        incremental = Line(f"pipelines.products, {args.change:.0%} changed", 0)
        full = Line("pipelines.products --full-refresh", 0)
        cli = ["uv", "run", "python", "-m", "pipelines.products"]
        # one round of every candidate per repeat, so a machine that slows down or speeds up during the
        # benchmark moves every candidate's figures alike rather than whichever ran at that moment
        for i in range(args.repeats):
            if "scanner" in args.only:
                target = work / f"scanner-{i}.duckdb"
                scanner.runs.append(
                    measure([*COMPARATOR_ENV, "python", "-c", SCANNER, str(target), libpq], comparator_env)
                )
                target.unlink()
            if "sling" in args.only:
                target = work / f"sling-{i}.duckdb"
                sling_env = {
                    **comparator_env,
                    "PG": f"{tcp_uri}?sslmode=disable",
                    "DUCK": f"duckdb://{target}",
                }
                command = [
                    *COMPARATOR_ENV, "python", "-c", SLING, "run", "--src-conn", "PG", "--src-stream",
                    "public.products", "--tgt-conn", "DUCK", "--tgt-object", "main.products", "--mode",
                    "full-refresh",
                ]  # fmt: skip
                sling.runs.append(measure(command, sling_env))
                target.unlink(missing_ok=True)
            if "pipeline" in args.only:
                shutil.rmtree(work / "dlt", ignore_errors=True)
                target = work / f"pipeline-{i}.duckdb"
                pipeline_env = {
                    **env,
                    "DLT__DESTINATION": "duckdb",
                    "SOURCES__PRODUCTS__CREDENTIALS": socket_uri,
                    "DESTINATION__DUCKDB__CREDENTIALS": str(target),
                    "DLT_DATA_DIR": str(work / "dlt"),
                }
                first.runs.append(measure(cli, pipeline_env))
                execute(socket_uri, CHANGE_ROWS.format(every=round(1 / args.change)))
                incremental.runs.append(measure(cli, pipeline_env))
                incremental.rows = _rows(incremental.runs[-1].stdout)
                full.runs.append(measure([*cli, "--full-refresh"], pipeline_env))
                full.rows = _rows(full.runs[-1].stdout)
                target.unlink()
            print(f"round {i + 1} of {args.repeats} done", file=sys.stderr, flush=True)
        scanner_median = scanner.median if scanner.runs else None
        for line in (scanner, sling, first, full, incremental):
            if line.runs:
                print(line.render(scanner_median))
        if incremental.runs:
            print(f"{'incremental / full refresh (medians)':<40} {incremental.median / full.median:>35.2f}x")
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def compare_routes(repeats: int, socket_uri: str, work: Path) -> int:
    """``--destination snowflake``: the products pipeline's Snowflake and DuckDB routes side by side."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import products_routes

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DLT_", "DESTINATION__", "SOURCES__"))}
    candidates = products_routes.routes({**env, "SOURCES__PRODUCTS__CREDENTIALS": socket_uri}, work)
    for i in range(repeats):
        products_routes.run_round(measure, candidates, work)
        print(f"round {i + 1} of {repeats} done", file=sys.stderr, flush=True)
    print(products_routes.render(candidates))
    return 0


def _uv_cache_dir() -> str:
    """uv's cache, named explicitly: the comparators run with their own HOME."""
    found = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True)
    return found.stdout.strip()


def _rows(report: str) -> int:
    """Rows of ``products`` in the CLI's markdown report (``| products | 1,000,000 |``)."""
    for row in report.splitlines():
        if row.startswith("| products |"):
            return int(row.split("|")[2].strip().replace(",", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
