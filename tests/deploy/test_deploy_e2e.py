"""`prefect deploy --all` against a real local Prefect server, then one deployment run by a real worker.

The worker clones the code from a bare copy of this repository at HEAD, as production workers clone
GitHub at the deployed commit: uncommitted changes are not in that clone (CI tests a clean checkout).
prefect.yaml itself is read from the working tree, so its changes are tested before they are committed.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from tests.deploy.project import PREFECT_YAML, REPO_ROOT, deployments
from tests.fakes.frankfurter import FakeFrankfurter, catalogue_codes
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.warehouse import Warehouse

pytestmark = pytest.mark.slow

POOL = "data-pipelines-test"


def git(*args: str, cwd: Path = REPO_ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def bare_copy_of_head(tmp_path: Path) -> tuple[Path, str]:
    """A bare repository holding HEAD, detached or not, with its whole history.

    From a shallow copy, the partial clone Prefect makes to check out a commit
    (``git clone --filter=blob:none``) loops for ever, so a shallow checkout is refused up front.
    """
    if git("rev-parse", "--is-shallow-repository") == "true":
        pytest.fail("shallow checkout: run `git fetch --unshallow` (CI checks out with fetch-depth: 0)")
    commit = git("rev-parse", "HEAD")
    bare = tmp_path / "data-pipelines.git"
    git("init", "--quiet", "--bare", str(bare))
    git("fetch", "--quiet", str(REPO_ROOT), "HEAD:refs/heads/main", cwd=bare)
    return bare, commit


def declared_limit(entry: dict[str, Any]) -> int:
    limit = entry["concurrency_limit"]
    return int(limit["limit"] if isinstance(limit, dict) else limit)


def test_deploy_all_then_run_currencies_through_a_worker(
    prefect_server: PrefectServer,
    frankfurter: FakeFrankfurter,
    warehouse: Warehouse,
    tmp_path: Path,
) -> None:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    bare, commit = bare_copy_of_head(tmp_path)
    deploy_env = prefect_server.env(
        PREFECT_WORK_POOL=POOL, DEPLOY_REPOSITORY_URL=str(bare), DEPLOY_COMMIT=commit
    )
    prefect_server.cli("work-pool", "create", POOL, "--type", "process", "--overwrite", cwd=tmp_path)
    timings["bare copy and work pool"] = time.perf_counter() - started

    # The command CD runs (.github/workflows/deploy-environment.yml), from the repository root.
    before = PREFECT_YAML.read_bytes()
    mark = time.perf_counter()
    prefect_server.cli("deploy", "--all", cwd=REPO_ROOT, env=deploy_env)
    timings["prefect deploy --all"] = time.perf_counter() - mark
    assert PREFECT_YAML.read_bytes() == before, "prefect deploy must not rewrite prefect.yaml"

    with SyncPrefectClient(api=prefect_server.api_url) as client:
        registered = {d.name: d for d in client.read_deployments()}
        assert set(registered) == {d["name"] for d in deployments()}
        for entry in deployments():
            found = registered[entry["name"]]
            assert found.entrypoint == entry["entrypoint"]
            assert found.work_pool_name == POOL
            assert found.version == commit
            assert sorted(found.tags) == sorted(entry["tags"])
            assert found.parameters == entry["parameters"]
            assert found.global_concurrency_limit is not None
            assert found.global_concurrency_limit.limit == declared_limit(entry)
            assert [(s.schedule.cron, s.schedule.timezone) for s in found.schedules if s.active] == [  # type: ignore[union-attr]
                (s["cron"], s["timezone"]) for s in entry["schedules"] if s.get("active", True)
            ]
            [clone] = [step["prefect.deployments.steps.git_clone"] for step in found.pull_steps or []]
            assert clone["repository"] == str(bare) and clone["commit_sha"] == commit
            assert found.job_variables["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "dlt,data_pipelines"

        flow_run = client.create_flow_run_from_deployment(registered["currencies-weekly"].id)

    # A fresh worker directory with nothing from this checkout in it: the code must come from the clone.
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    worker_env = prefect_server.env(
        DLT__DESTINATION="duckdb",
        DESTINATION__DUCKDB__CREDENTIALS=str(warehouse.path),
        DLT_DATA_DIR=str(warehouse.data_dir),
        SOURCES__CURRENCIES__BASE_URL=frankfurter.base_url,
    )
    mark = time.perf_counter()
    worker = prefect_server.cli(
        "worker", "start", "--pool", POOL, "--run-once", cwd=worker_dir, env=worker_env, timeout=240
    )
    timings["worker --run-once"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    print("end-to-end timings (s):", {k: round(v, 1) for k, v in timings.items()})

    with SyncPrefectClient(api=prefect_server.api_url) as client:
        finished = client.read_flow_run(flow_run.id)
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
    messages = "\n".join(log.message for log in logs)
    assert finished.state is not None and finished.state.is_completed(), (
        f"{finished.state}\n{messages}\n{worker.stdout}\n{worker.stderr}"
    )
    assert "git_clone" in messages, messages  # the pull step ran

    active = len(catalogue_codes(include_legacy=False))
    assert warehouse.scalar("select count(*) from currencies.currencies") == active
    assert frankfurter.requests_to("/currencies"), "the worker's run did not call the look-alike"
