"""A worker machine lost whole, and the Prefect API restarting under a running flow.

A Prefect server of this module's own (SQLite, with the triggers service on, which automations need),
the deployments of ``prefect.yaml`` (``prefect deploy --all``) and the workspace objects of
``python -m tools.alerts register`` (the notification block and the automations), as CD sets them up.
Two process workers as in ``test_fleet.py``; every flow run clones the deployed commit and runs in the
environment its ``uv.lock`` pins.

Production sends a heartbeat every 60 s and crashes a run after 180 s without one
(``tools/automations.py``); here runs send one every 30 s (Prefect's minimum, as a per-run job
variable) and the automation waits 60 s, so that the test takes about two minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from tests.deploy.project import REPO_ROOT
from tests.deploy.test_deploy_e2e import bare_copy_of_head
from tests.fakes.frankfurter import FakeFrankfurter
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.webhook import FakeWebhook
from tests.fixtures.postgres import ProductsSource
from tests.fixtures.prefect_server import (
    _IDLE_SERVICES,
    PrefectServer,
    free_port,
    server_env,
    start_server,
    stop_server,
)
from tests.fixtures.warehouse import Warehouse
from tests.fleet.test_fleet import (
    ALERT_BLOCK,
    CLIENT_RETRIES,
    POOL,
    RUN_TIMEOUT,
    TEST_RUN_ENV,
    Fleet,
    make_workers,
)
from tests.reliability.scenarios import assert_rows_belong_to_completed_loads
from tools.automations import ZOMBIE_MESSAGE
from utils.orchestration import LEASE_SECONDS

pytestmark = [pytest.mark.fleet, pytest.mark.slow, pytest.mark.timeout(600)]

TEST_HEARTBEAT_SECONDS = 30
TEST_ZOMBIE_AFTER_SECONDS = 60
CRASH_BOUND_SECONDS = TEST_ZOMBIE_AFTER_SECONDS + 5 + 25
"""The automation's window, the server's 5 s proactive evaluation, and room for a loaded machine. The
run's last heartbeat came before the loss, so this bounds the time from the loss to ``Crashed``."""
SLOT_BOUND_SECONDS = LEASE_SECONDS + 15 + 30
"""The single-flight lease, the repossessor's loop, and room for a loaded machine."""


@dataclass
class Workspace:
    """A Prefect server that can be killed and started again on its database."""

    server: PrefectServer
    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    deployments: dict[str, Any]
    bare: Path = Path()
    """The repository workers clone (a bare copy of HEAD)."""

    def restart(self, down_seconds: float) -> None:
        stop_server(self.process, signal.SIGKILL)
        time.sleep(down_seconds)
        self.process = start_server(self.server, self.root, self.env)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, webhook_server: FakeWebhook) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("lost-machine")
    server = PrefectServer(
        api_url=f"http://127.0.0.1:{free_port()}/api", home=root / "home", log=root / "server.log"
    )
    env = server_env(server, root, idle=tuple(s for s in _IDLE_SERVICES if s != "TRIGGERS"))
    # Concurrency leases on disk (PREFECT_HOME), as docs/deploying.md asks of a self-hosted server: in
    # Prefect's default memory storage a restart forgets the leases of slots the database still counts.
    env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] = "prefect.server.concurrency.lease_storage.filesystem"
    space = Workspace(server, root, env, start_server(server, root, env), {})
    try:
        bare, commit = bare_copy_of_head(root)
        space.bare = bare
        deploy_env = server.env(PREFECT_WORK_POOL=POOL, DEPLOY_REPOSITORY_URL=str(bare), DEPLOY_COMMIT=commit)
        server.cli("work-pool", "create", POOL, "--type", "process", "--overwrite", cwd=root)
        for n in range(2):
            server.cli("work-queue", "create", f"w{n}", "--pool", POOL, cwd=root)
        server.cli("deploy", "--all", cwd=REPO_ROOT, env=deploy_env)
        for _ in range(2):  # the command CD runs, twice: it must be idempotent
            subprocess.run(
                [
                    *(sys.executable, "-m", "tools.alerts", "register", "--webhook-url", webhook_server.url),
                    *("--zombie-after", str(TEST_ZOMBIE_AFTER_SECONDS)),
                    *("--heartbeat", str(TEST_HEARTBEAT_SECONDS)),
                ],
                cwd=REPO_ROOT,
                env=server.env(DATA_PIPELINES_ALERT_BLOCK=ALERT_BLOCK),
                check=True,
                capture_output=True,
                timeout=120,
            )
        with SyncPrefectClient(api=server.api_url) as client:
            space.deployments = {d.name: d for d in client.read_deployments()}
            automations = client.read_automations()
        assert len(automations) == 2, [a.name for a in automations]
        yield space
    finally:
        stop_server(space.process)


@pytest.fixture
def lost_fleet(
    workspace: Workspace,
    frankfurter: FakeFrankfurter,
    hubspot: FakeHubSpot,
    products_source: ProductsSource,
    warehouse: Warehouse,
    webhook_server: FakeWebhook,
    tmp_path: Path,
) -> Iterator[Fleet]:
    server = workspace.server
    workers = make_workers(server, tmp_path, tmp_path / "pause", [server.api_url, server.api_url])
    with (
        temporary_settings({PREFECT_CLIENT_MAX_RETRIES: CLIENT_RETRIES}),
        SyncPrefectClient(api=server.api_url) as client,
    ):
        fleet = Fleet(server, client, workers, tmp_path / "pause", workspace.deployments)
        heartbeat = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(TEST_HEARTBEAT_SECONDS)}
        fleet.job_variables = {"env": TEST_RUN_ENV | heartbeat}
        webhook_server.reset()
        for worker in workers:
            worker.start()
        try:
            yield fleet
        finally:
            for file in fleet.pause_dir.glob("paused-*"):
                (fleet.pause_dir / f"release-{file.name.split('-')[1]}").touch()
            for worker in workers:
                worker.stop()


def check_products(warehouse: Warehouse, products: ProductsSource) -> int:
    """Every live product exactly once, and no row of a load that never completed."""
    loaded = warehouse.query("select id, price from products.products")
    sql = "select string_agg(id || '=' || price, ',') from products where deleted_at is null"
    listed = str(products.db.scalar(sql))
    live = {int(i): f"{float(p):.2f}" for i, p in (pair.split("=") for pair in listed.split(","))}
    assert len({r[0] for r in loaded}) == len(loaded), "products: an id was loaded twice"
    assert {int(r[0]): f"{float(r[1]):.2f}" for r in loaded} == live, "products: exactly the live rows"
    assert_rows_belong_to_completed_loads(warehouse, "products")
    return len(loaded)


def probe(fleet: Fleet, pid: int) -> dict[str, Any]:
    """What the paused flow-run process recorded about its Python environment (``pause_hook.py``)."""
    return dict(json.loads((fleet.pause_dir / f"probe-{pid}.json").read_text()))


def alerts_for(webhook: FakeWebhook, run: Any) -> list[dict[str, Any]]:
    return [m for m in webhook.messages if run.name in str(m) or str(run.id) in str(m)]


def test_a_lost_machine_is_crashed_alerted_and_freed_and_the_next_run_loads_once(
    lost_fleet: Fleet,
    products_source: ProductsSource,
    warehouse: Warehouse,
    webhook_server: FakeWebhook,
) -> None:
    fleet = lost_fleet
    w0, _ = fleet.workers
    fleet.pause_next()
    lost_run = fleet.run("products-daily", queue="w0")
    [(pid, _)] = fleet.wait_paused(1).items()
    facts = probe(fleet, pid)
    assert facts["flow_run_id"] == str(lost_run.id)
    assert Path(facts["prefix"]).resolve() != Path(sys.prefix).resolve(), "ran in the worker's environment"
    assert Path(facts["prefix"]).resolve().is_relative_to(w0.root), "not in the clone's environment"
    assert facts["versions"]["pytest-timeout"] is None, "a dev dependency in the run's environment"
    commit = fleet.deployments["products-daily"].version
    assert Path(facts["prefix"]).name == f"data-pipelines-env-{commit}", "not the commit's environment"

    # the machine goes: the worker and the flow run's process group, nothing left to report
    assert w0.process is not None
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    os.killpg(w0.process.pid, signal.SIGKILL)
    lost_at = time.monotonic()
    w0.process.wait(timeout=10)

    deadline = lost_at + CRASH_BOUND_SECONDS
    while not (state := fleet.client.read_flow_run(lost_run.id).state) or not state.is_final():
        assert time.monotonic() < deadline, f"{lost_run.name}: {state} {CRASH_BOUND_SECONDS} s after"
        time.sleep(1)
    crashed_after = time.monotonic() - lost_at
    assert state.is_crashed(), state
    assert state.message == ZOMBIE_MESSAGE

    # the failure alert, through the notification block, exactly once
    while not alerts_for(webhook_server, lost_run):
        assert time.monotonic() < deadline + 30, f"no alert: {webhook_server.messages}"
        time.sleep(0.5)
    time.sleep(10)  # time for a second alert, were one coming
    [alert] = alerts_for(webhook_server, lost_run)
    assert "crashed" in alert["subject"], alert

    # its slots are free: the deployment's concurrency slot (released by Crashed) and the pipeline's
    # single-flight lease (expired: 60 s, then the repossessor's 15 s loop; a production window of
    # 180 s has freed it before the run is Crashed)
    fleet.wait_slot_free("products", timeout=max(1.0, lost_at + SLOT_BOUND_SECONDS - time.monotonic()))
    slot_free_after = time.monotonic() - lost_at
    limit = fleet.client.read_deployment(fleet.deployments["products-daily"].id).global_concurrency_limit
    assert limit is not None and limit.active_slots == 0

    # `python -m pipelines status` shows the crash as the pipeline's last failure
    from pipelines._status import last_failures

    with temporary_settings({PREFECT_API_URL: fleet.server.api_url}):
        failure = last_failures(["products"])["products"]
    assert failure is not None and "Crashed" in failure, failure

    # the next run, on the other worker, loads every row exactly once
    [done] = fleet.assert_completed(fleet.run("products-daily", queue="w1"))
    rows = check_products(warehouse, products_source)
    print(
        f"\nlost machine: Crashed {crashed_after:.0f} s after the loss (bound {CRASH_BOUND_SECONDS} s), "
        f"single-flight slot free after {slot_free_after:.0f} s, 1 alert, "
        f"next run {done.name} loaded {rows} products"
    )


def test_the_api_restarting_under_a_running_flow_loses_no_run_and_frees_its_slot(
    workspace: Workspace,
    lost_fleet: Fleet,
    products_source: ProductsSource,
    warehouse: Warehouse,
) -> None:
    fleet = lost_fleet
    down_seconds = 15
    fleet.pause_next()
    run = fleet.run("products-daily", queue="w0")
    [(pid, _)] = fleet.wait_paused(1).items()
    mark = time.monotonic()
    workspace.restart(down_seconds)
    restarted = time.monotonic() - mark
    fleet.release(pid)
    [finished] = fleet.wait(run, timeout=RUN_TIMEOUT)
    ended = time.monotonic() - mark
    # finished (or failed, or crashed, and the next run recovers): never left running
    assert finished.state.is_final(), finished.state
    # and the pipeline is not locked: the single-flight slot survives the restart only as a lease the
    # server still knows (lease storage on disk), released at the end of the run or expired
    fleet.wait_slot_free("products", timeout=SLOT_BOUND_SECONDS)
    products_source.db.execute("update products set price = price + 1, updated_at = now() where id = 5")
    fleet.assert_completed(fleet.run("products-daily", queue="w1"))
    check_products(warehouse, products_source)
    print(
        f"\nAPI restart ({down_seconds} s down, healthy again after {restarted:.0f} s) under a running flow:"
        f" it ended {finished.state.name} {ended:.0f} s after the kill; the next run loaded every row once"
    )


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip()


def add_runtime_dependency(project: Path, name: str, specifier: str) -> None:
    """Add ``name`` (already in the lock, as a dev dependency) to the project's runtime dependencies in
    ``pyproject.toml`` and ``uv.lock``, as ``uv add`` would. Edited as text rather than re-locked: ``uv
    lock --offline`` needs the index pages of every package, which a machine that only ran ``uv sync
    --frozen`` has never fetched. ``uv lock --check --offline`` then proves the lock matches."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    last = '    "croniter>=7.0.0",\n]'
    assert last in text
    pyproject.write_text(text.replace(last, last[:-1] + f'    "{name}{specifier}",\n]', 1))
    lock = project / "uv.lock"
    text = lock.read_text()
    start = text.index('\nname = "data-pipelines"\n')
    end = text.index("\n[[package]]", start)
    block = text[start:end]
    for before, line in (
        ('    { name = "croniter" },\n', f'    {{ name = "{name}" }},\n'),
        (
            '    { name = "croniter", specifier = ">=7.0.0" },\n',
            f'    {{ name = "{name}", specifier = "{specifier}" }},\n',
        ),
    ):
        assert before in block
        block = block.replace(before, before + line, 1)
    lock.write_text(text[:start] + block + text[end:])
    subprocess.run(
        ["uv", "lock", "--check", "--offline"], cwd=project, check=True, capture_output=True, timeout=120
    )
    assert name in git("diff", "uv.lock", cwd=project), "the lock did not change"


def test_a_deploy_whose_lock_changed_runs_on_the_commits_own_dependencies(
    workspace: Workspace, lost_fleet: Fleet, hubspot: FakeHubSpot, warehouse: Warehouse, tmp_path: Path
) -> None:
    """A commit that adds a runtime dependency (pytest-timeout, until then only in the dev group, so
    the lock already holds it) runs with it installed, without touching the workers. The run is the
    HubSpot pipeline's: it loads every record exactly once through the fleet."""
    work = tmp_path / "change"
    git("clone", "--quiet", "--branch", "main", str(workspace.bare), str(work), cwd=tmp_path)
    add_runtime_dependency(work, "pytest-timeout", ">=2.3")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "add a dependency", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work)

    server = workspace.server
    env = server.env(PREFECT_WORK_POOL=POOL, DEPLOY_REPOSITORY_URL=str(workspace.bare), DEPLOY_COMMIT=commit)
    server.cli("deploy", "--name", "hubspot-daily", cwd=REPO_ROOT, env=env)
    deployment = lost_fleet.client.read_deployment(workspace.deployments["hubspot-daily"].id)
    assert deployment.version == commit

    added = {
        kind: len(hubspot.add(kind, count))
        for kind, count in (("contacts", 120), ("companies", 15), ("deals", 25))
    }
    lost_fleet.pause_next()
    run = lost_fleet.run("hubspot-daily", queue="w1")
    [(pid, _)] = lost_fleet.wait_paused(1).items()
    facts = probe(lost_fleet, pid)
    lost_fleet.release(pid)
    lost_fleet.assert_completed(run)
    assert facts["flow_run_id"] == str(run.id)
    assert Path(facts["prefix"]).resolve().is_relative_to(lost_fleet.workers[1].root)
    assert Path(facts["prefix"]).name == f"data-pipelines-env-{commit}"
    assert facts["versions"]["pytest-timeout"] is not None, "the run did not get its commit's dependencies"

    for kind, count in added.items():
        rows, ids = warehouse.query(f"select count(*), count(distinct id) from hubspot.{kind}")[0]
        assert rows == ids == count, f"hubspot.{kind}: {rows} rows, {ids} ids, {count} records"
    assert_rows_belong_to_completed_loads(warehouse, "hubspot")
