"""`prefect deploy --all` without its environment fails first, naming what to set, and registers nothing.

Against a real local Prefect server (``prefect_server``); with the variables set, the deploy and a
worker's run are covered by ``test_deploy_e2e.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prefect.client.orchestration import SyncPrefectClient

from tests.deploy.project import REPO_ROOT, env_placeholders
from tests.fixtures.prefect_server import PREFECT_CLI, PrefectServer
from utils.deploy_env import REQUIRED, MissingDeployEnvError, missing, require_env

POOL = "data-pipelines-env-test"


def registered(server: PrefectServer) -> dict[str, object]:
    with SyncPrefectClient(api=server.api_url) as client:
        return {d.name: d.updated for d in client.read_deployments()}


def deploy(server: PrefectServer, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in server.env(**env).items() if k not in REQUIRED or k in env}
    return subprocess.run(
        [PREFECT_CLI, "--no-prompt", "deploy", "--all"],
        cwd=REPO_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_required_variables_are_the_ones_prefect_yaml_reads() -> None:
    assert set(REQUIRED) == env_placeholders()


def test_missing_names_unset_and_blank_variables_only() -> None:
    assert missing({"PREFECT_WORK_POOL": "p", "DEPLOY_COMMIT": "  "}) == [
        "DEPLOY_REPOSITORY_URL",
        "DEPLOY_COMMIT",
    ]
    require_env(dict.fromkeys(REQUIRED, "x"))
    with pytest.raises(MissingDeployEnvError, match="PREFECT_WORK_POOL: the work pool"):
        require_env({})


@pytest.mark.slow
def test_deploy_with_nothing_set_names_all_three_and_registers_nothing(prefect_server: PrefectServer) -> None:
    before = registered(prefect_server)
    result = deploy(prefect_server)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for name, what in REQUIRED.items():
        assert f"{name}: {what}" in " ".join(output.split()), output
    assert "does not exist" not in output  # the check runs before Prefect's work pool lookup
    assert registered(prefect_server) == before


@pytest.mark.slow
def test_deploy_with_only_the_pool_set_names_the_other_two(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    prefect_server.cli("work-pool", "create", POOL, "--type", "process", "--overwrite", cwd=tmp_path)
    before = registered(prefect_server)
    result = deploy(prefect_server, PREFECT_WORK_POOL=POOL)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert "DEPLOY_REPOSITORY_URL:" in output and "DEPLOY_COMMIT:" in output, output
    assert "PREFECT_WORK_POOL:" not in output, output
    assert registered(prefect_server) == before


def test_outside_a_deploy_the_check_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from utils.deploy_env import DEPLOY_MODULE, check_when_deploying

    for name in REQUIRED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, DEPLOY_MODULE, sys.modules[__name__])
    monkeypatch.setattr(sys, "argv", ["prefect", "worker", "start"])
    check_when_deploying()  # a worker process: no exit
    monkeypatch.setattr(sys, "argv", ["prefect", "--no-prompt", "deploy", "--all"])
    with pytest.raises(SystemExit):
        check_when_deploying()
