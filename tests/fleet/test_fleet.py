"""A fleet: one Prefect server, one process work pool, two workers that share nothing on disk.

Each worker has its own HOME, PREFECT_HOME, dlt data directory and working directory; every flow run
clones the code from a bare copy of this repository at HEAD (the pull step of prefect.yaml, deployed
with ``prefect deploy --all`` as CD does). They share only what production workers share: the Prefect
API, the sources (the Frankfurter look-alike, PostgreSQL) and the destination.

The destination is one DuckDB file at a path both workers see. DuckDB allows one writing process per
file, so only runs of *one* pipeline are started together here (single flight must keep those apart;
if it failed, the second run would fail on DuckDB's file lock and the test with it); runs of
different pipelines go one after another. The Snowflake emulator would allow concurrent pipelines, but
dlt needs client-side patches to load into it (``tests/snowflake_emulator``), which worker processes
started by Prefect do not have.

Shown: (a) runs of several deployments, pairs of one pipeline started together on both workers: one
at a time (a paused holder keeps the other waiting), each run carries on from the state the last one
left in the destination whichever worker ran it; (b) flow runs SIGKILLed mid-load (replace, append,
merge): Prefect marks them crashed, the alert webhook fires, the slot comes back when its lease
expires, and the next runs on the other worker leave every row exactly once - as do later runs on
the killed worker, whose stale packages must not be loaded again; (c) a worker that loses the Prefect
API mid-load: the run completes or is retried and the slot is released.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from tests.deploy.project import REPO_ROOT
from tests.deploy.test_deploy_e2e import bare_copy_of_head
from tests.fakes.frankfurter import FakeFrankfurter, catalogue_codes, is_working_day
from tests.fakes.webhook import FakeWebhook
from tests.fixtures.frankfurter import FAKE_TODAY
from tests.fixtures.postgres import ProductsSource
from tests.fixtures.prefect_server import PREFECT_CLI, PrefectServer
from tests.fixtures.warehouse import Warehouse
from tests.fleet.api_proxy import CuttableProxy
from tests.reliability.scenarios import assert_rows_belong_to_completed_loads, completed_loads

pytestmark = [pytest.mark.fleet, pytest.mark.slow, pytest.mark.timeout(900)]

POOL = "fleet"
QUOTES = '["GBP", "USD"]'
BACKFILL = {"start_date": "2026-10-01", "end_date": "2026-11-06"}
KILLED_BACKFILL = {"start_date": "2026-09-01", "end_date": "2026-09-30"}  # new dates, so a package to load
VICTIMS: list[tuple[str, dict[str, str]]] = [
    ("currencies-weekly", {}),  # replace
    ("exchange-rates-backfill", KILLED_BACKFILL),  # append
    ("products-daily", {}),  # merge
]
ALERT_BLOCK = "fleet-alerts"
RUN_TIMEOUT = 240.0
# Prefect's client retries a 503 (the server's SQLite busy) with backoff 2, 4, 8 ... s: 5 tries (its
# default, about a minute) were not enough for this test on a loaded 2-core CI machine; 7 wait ~4 min.
CLIENT_RETRIES = 7
TEST_RUN_ENV = {"UV_COMPILE_BYTECODE": "0", "PYTHONDONTWRITEBYTECODE": ""}
"""Per-run job variables of the fleet tests: instead of compiling every file of a new commit's
environment once (``prefect.yaml``; about a minute on this machine, per worker), Python writes the
bytecode of what the runs import, as they import it."""


@dataclass
class Worker:
    """``prefect worker start`` in a directory of its own, polling the shared queue and its own."""

    name: str
    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "dlt"

    def start(self) -> None:
        log = (self.root / "worker.log").open("ab")
        self.process = subprocess.Popen(
            [
                PREFECT_CLI,
                "worker",
                "start",
                "--pool",
                POOL,
                "--name",
                self.name,
                "--type",
                "process",
                "--work-queue",
                "default",
                "--work-queue",
                self.name,
            ],
            cwd=self.root / "work",
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@dataclass
class Fleet:
    server: PrefectServer
    client: SyncPrefectClient
    workers: list[Worker]
    pause_dir: Path
    deployments: dict[str, Any]
    started: list[Any] = field(default_factory=list)
    crashed_on_purpose: int = 0
    job_variables: dict[str, Any] | None = None
    """Per-run overrides of the deployments' job variables (a shorter heartbeat in tests)."""

    def run(self, deployment: str, queue: str = "default", **parameters: Any) -> Any:
        # the key makes the client's retries safe: a request the server committed but answered with a
        # 503 (SQLite busy under load) is not turned into a second run
        run = self.client.create_flow_run_from_deployment(
            self.deployments[deployment].id,
            parameters=parameters or None,
            work_queue_name=queue,
            idempotency_key=uuid.uuid4().hex,
            job_variables=self.job_variables,
        )
        self.started.append(run)
        return run

    def wait(self, *runs: Any, timeout: float = RUN_TIMEOUT) -> list[Any]:
        deadline = time.monotonic() + timeout
        done: dict[Any, Any] = {}
        while len(done) < len(runs):
            for run in runs:
                if run.id not in done:
                    found = self.client.read_flow_run(run.id)
                    if found.state is not None and found.state.is_final():
                        done[run.id] = found
            if time.monotonic() > deadline:
                pending = [r.name for r in runs if r.id not in done]
                pytest.fail(f"runs {pending} not finished after {timeout} s\n{self.worker_logs()}")
            time.sleep(0.5)
        return [done[r.id] for r in runs]

    def assert_completed(self, *runs: Any) -> list[Any]:
        finished = self.wait(*runs)
        for run in finished:
            assert run.state.is_completed(), f"{run.name}: {run.state}\n{self.logs(run)}"
        return finished

    def logs(self, run: Any) -> str:
        logs = self.client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        return "\n".join(log.message for log in logs)

    def ran_on(self, run: Any) -> str:
        text = self.logs(run)
        names = [w.name for w in self.workers if f"Worker '{w.name}'" in text]
        return names[0] if names else "?"

    def worker_logs(self) -> str:
        logs = [(w.name, w.root / "worker.log") for w in self.workers] + [("server", self.server.log)]
        return "\n".join(f"--- {name}\n" + log.read_text(errors="replace")[-4000:] for name, log in logs)

    def pause_next(self, count: int = 1) -> None:
        for n in range(count):
            (self.pause_dir / f"arm-{uuid.uuid4().hex}-{n}").touch()

    def wait_paused(self, count: int, timeout: float = RUN_TIMEOUT) -> dict[int, str]:
        """pid -> table of the runs now paused at their load step."""
        deadline = time.monotonic() + timeout
        while True:
            paused = {
                int(p.name.split("-")[1]): p.read_text()
                for p in self.pause_dir.glob("paused-*")
                if not p.name.endswith(".tmp")
            }
            if len(paused) >= count:
                return paused
            if time.monotonic() > deadline:
                pytest.fail(f"only {len(paused)} of {count} runs reached their load\n{self.worker_logs()}")
            time.sleep(0.2)

    def release(self, pid: int) -> None:
        (self.pause_dir / f"release-{pid}").touch()
        (self.pause_dir / f"paused-{pid}").unlink()

    def active_slots(self, pipeline: str) -> int:
        limit = self.client.read_global_concurrency_limit_by_name(
            f"dlt-pipeline-{pipeline}".replace("_", "-")
        )
        return int(limit.active_slots)

    def wait_slot_free(self, pipeline: str, timeout: float = 150) -> float:
        started = time.monotonic()
        while self.active_slots(pipeline):
            if time.monotonic() - started > timeout:
                pytest.fail(f"{pipeline}'s single-flight slot still held after {timeout} s")
            time.sleep(1)
        return time.monotonic() - started


# checks of the shared destination ----------------------------------------------------------------------
def expected_rates(since: str) -> set[tuple[dt.date, str]]:
    first = dt.date.fromisoformat(since)
    days = (first + dt.timedelta(n) for n in range((FAKE_TODAY - first).days + 1))
    return {(d, q) for d in days if is_working_day(d) for q in ("GBP", "USD")}


def check_destination(
    warehouse: Warehouse, products: ProductsSource, rates_since: str = KILLED_BACKFILL["start_date"]
) -> dict[str, tuple[int, int]]:
    """Every row exactly once in every dataset: table -> (rows expected, rows found)."""
    figures: dict[str, tuple[int, int]] = {}
    codes = [r[0] for r in warehouse.query("select iso_code from currencies.currencies")]
    active = catalogue_codes(include_legacy=False)
    assert sorted(codes) == active, "currencies: exactly the provider's list, once"
    figures["currencies.currencies"] = (len(active), len(codes))

    rates = warehouse.query("select rate_date, quote_currency from exchange_rates.rates")
    assert len(rates) == len(set(rates)), "exchange_rates: a (date, quote) was written twice"
    assert set(rates) == expected_rates(rates_since), "exchange_rates: every working day of the runs, once"
    figures["exchange_rates.rates"] = (len(expected_rates(rates_since)), len(rates))

    loaded = warehouse.query("select id, price from products.products")
    listed = str(
        products.db.scalar(
            "select string_agg(id || '=' || price, ',') from products where deleted_at is null"
        )
    )
    live = {int(i): f"{float(p):.2f}" for i, p in (pair.split("=") for pair in listed.split(","))}
    assert len({r[0] for r in loaded}) == len(loaded), "products: an id was loaded twice"
    assert {int(r[0]): f"{float(r[1]):.2f}" for r in loaded} == live, "products: exactly the live rows"
    figures["products.products"] = (len(live), len(loaded))
    for dataset in ("currencies", "exchange_rates", "products"):
        assert_rows_belong_to_completed_loads(warehouse, dataset)
    return figures


def make_workers(server: PrefectServer, tmp_path: Path, pause_dir: Path, api_urls: list[str]) -> list[Worker]:
    """One worker (not started) per API URL, each in a directory of its own, with the pause hook."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    shutil.copy(Path(__file__).with_name("pause_hook.py"), hooks / "sitecustomize.py")
    pause_dir.mkdir()
    # Each run syncs its clone's environment from uv's cache: the machine's warm one, not an empty one
    # under the worker's HOME (a cold cache is measured in docs/deploying.md).
    uv_cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True).stdout
    workers = []
    for n, api_url in enumerate(api_urls):
        root = tmp_path / f"w{n}"
        for sub in ("home", "work", "dlt", "prefect"):
            (root / sub).mkdir(parents=True)
        env = server.env(
            HOME=str(root / "home"),
            PREFECT_HOME=str(root / "prefect"),
            PREFECT_API_URL=api_url,
            DLT_DATA_DIR=str(root / "dlt"),
            PYTHONPATH=str(hooks),
            FLEET_PAUSE_DIR=str(pause_dir),
            DATA_PIPELINES_ALERT_BLOCK=ALERT_BLOCK,
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_HEARTBEAT_SECONDS="5",
            PREFECT_CLIENT_MAX_RETRIES=str(CLIENT_RETRIES),
            SOURCES__EXCHANGE_RATES__QUOTES=QUOTES,
            TMPDIR=str(root / "home"),
            UV_CACHE_DIR=uv_cache.strip(),
        )
        workers.append(Worker(f"w{n}", root, env))
    return workers


# the fleet ------------------------------------------------------------------------------------------
@pytest.fixture
def fleet(
    prefect_server: PrefectServer,
    frankfurter: FakeFrankfurter,
    products_source: ProductsSource,
    warehouse: Warehouse,
    webhook_server: FakeWebhook,
    tmp_path: Path,
) -> Any:
    bare, commit = bare_copy_of_head(tmp_path)
    deploy_env = prefect_server.env(
        PREFECT_WORK_POOL=POOL, DEPLOY_REPOSITORY_URL=str(bare), DEPLOY_COMMIT=commit
    )
    prefect_server.cli("work-pool", "create", POOL, "--type", "process", "--overwrite", cwd=tmp_path)
    for n in range(2):
        prefect_server.cli("work-queue", "create", f"w{n}", "--pool", POOL, cwd=tmp_path)
    prefect_server.cli("deploy", "--all", cwd=REPO_ROOT, env=deploy_env)
    webhook_server.reset()
    subprocess.run(
        [sys.executable, "-m", "tools.alerts", "register", "--webhook-url", webhook_server.url],
        cwd=REPO_ROOT,
        env=prefect_server.env(DATA_PIPELINES_ALERT_BLOCK=ALERT_BLOCK),
        check=True,
        capture_output=True,
        timeout=120,
    )

    pause_dir = tmp_path / "pause"
    api = urlsplit(prefect_server.api_url)
    proxy = CuttableProxy(api.hostname or "127.0.0.1", int(api.port or 80))
    # w1 reaches the API through the proxy the test can cut
    workers = make_workers(
        prefect_server, tmp_path, pause_dir, [prefect_server.api_url, f"http://127.0.0.1:{proxy.port}/api"]
    )
    with (
        temporary_settings({PREFECT_CLIENT_MAX_RETRIES: CLIENT_RETRIES}),
        SyncPrefectClient(api=prefect_server.api_url) as client,
    ):
        deployments = {d.name: d for d in client.read_deployments()}
        fleet = Fleet(prefect_server, client, workers, pause_dir, deployments)
        fleet.job_variables = {"env": TEST_RUN_ENV}
        for worker in workers:
            worker.start()
        try:
            yield fleet, proxy
        finally:
            for file in pause_dir.glob("paused-*"):
                (pause_dir / f"release-{file.name.split('-')[1]}").touch()
            for worker in workers:
                worker.stop()
            proxy.stop()


def test_a_fleet_of_workers_loses_nothing_and_duplicates_nothing(
    fleet: Any,
    frankfurter: FakeFrankfurter,
    products_source: ProductsSource,
    warehouse: Warehouse,
    webhook_server: FakeWebhook,
) -> None:
    fleet, proxy = fleet
    timings: dict[str, float] = {}
    mark = time.perf_counter()

    # (a) pairs of runs of one pipeline, started together on both workers --------------------------------
    fleet.assert_completed(fleet.run("exchange-rates-backfill", **BACKFILL))
    fleet.assert_completed(fleet.run("exchange-rates-daily"))
    fleet.assert_completed(fleet.run("currencies-weekly"), fleet.run("currencies-weekly"))
    fleet.assert_completed(fleet.run("products-daily"), fleet.run("products-full-refresh"))
    products_source.db.execute("update products set price = price + 1, updated_at = now() where id in (3, 7)")
    products_source.db.add_products(21, 22)

    # single flight across workers: a holder paused mid-load on w0 keeps w1's run of the same pipeline out
    fleet.pause_next()
    holder = fleet.run("products-daily", queue="w0")
    [(pid, table)] = fleet.wait_paused(1).items()
    waiting = fleet.run("products-full-refresh", queue="w1")
    deadline = time.monotonic() + RUN_TIMEOUT  # a loaded machine takes a while to start a flow run
    while not fleet.client.read_flow_run(waiting.id).state.is_running():
        assert time.monotonic() < deadline, "the second run never started"
        time.sleep(0.5)
    time.sleep(10)  # time enough to clone, start and load, were it not waiting for the slot
    assert fleet.active_slots("products") == 1
    assert not fleet.client.read_flow_run(waiting.id).state.is_final(), "the second run did not wait"
    fleet.release(pid)
    holder_done, waiting_done = fleet.assert_completed(holder, waiting)
    assert waiting_done.end_time > holder_done.end_time
    check_destination(warehouse, products_source, BACKFILL["start_date"])
    timings["(a) runs and single flight"] = time.perf_counter() - mark

    # (b) SIGKILL mid-load on w0: replace, append, merge --------------------------------------------------
    mark = time.perf_counter()
    products_source.db.execute("update products set price = price + 1, updated_at = now() where id in (1, 2)")
    webhook_server.reset()
    victims = []
    # one at a time: a paused load holds the DuckDB file, which a second process could not open
    for deployment, parameters in VICTIMS:
        fleet.pause_next()
        victims.append(fleet.run(deployment, queue="w0", **parameters))
        [(pid, _)] = fleet.wait_paused(1).items()
        os.kill(pid, signal.SIGKILL)
        fleet.release(pid)
        fleet.crashed_on_purpose += 1
        [crashed] = fleet.wait(victims[-1])
        assert crashed.state.is_crashed(), f"{crashed.name}: {crashed.state}"
    deadline = time.monotonic() + 60
    while len(webhook_server.messages) < len(victims):
        assert time.monotonic() < deadline, f"alerts: {webhook_server.messages}"
        time.sleep(0.5)
    alerts = "\n".join(str(m) for m in webhook_server.messages)
    for run in victims:
        assert run.name in alerts or str(run.id) in alerts, alerts
    freed = max(fleet.wait_slot_free(p) for p in ("currencies", "exchange_rates", "products"))
    timings["(b) slots freed (s after the last kill)"] = freed
    # the next runs, on the other worker; then later runs on the killed worker, whose pipeline folders
    # still hold the killed runs' packages
    for queue in ("w1", "w0"):
        for deployment, parameters in VICTIMS:
            fleet.assert_completed(fleet.run(deployment, queue=queue, **parameters))
        check_destination(warehouse, products_source)
    figures = check_destination(warehouse, products_source)
    timings["(b) kill and recovery"] = time.perf_counter() - mark

    # (c) w1 loses the Prefect API mid-load ------------------------------------------------------------
    mark = time.perf_counter()
    products_source.db.execute("update products set price = price + 1, updated_at = now() where id = 4")
    fleet.pause_next()
    cut_run = fleet.run("products-daily", queue="w1")
    [(pid, _)] = fleet.wait_paused(1).items()
    proxy.cut()
    time.sleep(20)
    fleet.release(pid)
    time.sleep(10)
    proxy.restore()
    [finished] = fleet.wait(cut_run)
    outcome = str(finished.state.type.value)
    if not finished.state.is_completed():  # else it was failed or crashed: the next run must recover
        fleet.assert_completed(fleet.run("products-daily", queue="w0"))
    timings["(c) slot free after the outage"] = fleet.wait_slot_free("products")
    fleet.assert_completed(fleet.run("products-daily"))
    figures = check_destination(warehouse, products_source)
    timings["(c) API outage"] = time.perf_counter() - mark

    placement: dict[str, int] = {}
    for run in fleet.started:
        worker = fleet.ran_on(run)
        placement[worker] = placement.get(worker, 0) + 1
    loads = sum(len(completed_loads(warehouse, d)) for d in ("currencies", "exchange_rates", "products"))
    print(
        f"\nfleet: {len(fleet.started)} runs started on {placement}, "
        f"{fleet.crashed_on_purpose} crashed on purpose, API-outage run ended {outcome}, "
        f"completed loads {loads}"
    )
    for table, (expected, found) in figures.items():
        print(f"fleet: {table}: rows expected {expected}, rows found {found}")
    print("fleet timings (s):", {k: round(v, 1) for k, v in timings.items()})
    assert set(placement) >= {"w0", "w1"}, placement
